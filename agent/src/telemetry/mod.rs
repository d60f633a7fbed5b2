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

/// At most `max` bytes of `detail`: its start and, mostly, its end (a verifier log says what
/// went wrong at its end). A log can be 100 KiB: too long for a console under emulation or a
/// log line.
pub fn shorten(detail: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if detail.len() <= max {
        return detail.into();
    }
    let boundary = |mut at: usize| {
        while !detail.is_char_boundary(at) {
            at += 1;
        }
        at
    };
    let head = boundary(max / 5);
    let tail = boundary(detail.len() - (max - max / 5));
    format!(
        "{} [... {} bytes cut ...] {}",
        &detail[..head],
        tail - head,
        &detail[tail..]
    )
    .into()
}

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
