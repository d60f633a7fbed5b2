//! Sources: where records enter the agent.

mod batch;
mod ringbuf;

pub use batch::Batch;
pub use ringbuf::{RingReader, RingReaderConfig};
