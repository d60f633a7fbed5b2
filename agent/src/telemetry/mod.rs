//! The agent's own accounting: every place an event can be lost has a counter with its cause,
//! and moved counters become `loss` events.

mod counters;
mod fdinfo;
mod kernel;
mod loss;
pub mod metrics;
mod programs;
mod ring;

pub use counters::{Counters, Drop};
pub use kernel::{KernelStats, read_kernel_totals};
pub use loss::LossTracker;
pub use programs::{ProgramRun, ProgramRuns};
pub use ring::RingFill;

/// `error` and its sources on one line, joined by `: ` (transport errors say little alone).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}
