//! The agent's own accounting: every place an event can be lost has a counter with its cause,
//! and moved counters become `loss` events.

mod counters;
mod kernel;
mod loss;
pub mod metrics;

pub use counters::{Counters, Drop};
pub use kernel::{KernelStats, read_kernel_totals};
pub use loss::LossTracker;
