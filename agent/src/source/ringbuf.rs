//! The ring-buffer reader: the one task that drains the kernel's event buffer.
//!
//! Records are submitted without a wake-up (see `agent-ebpf/src/emit.rs`), except the first
//! one into an empty ring and any that takes the backlog past the threshold. So the reader:
//! - while records keep coming, drains every `poll_interval` (one wake-up per batch, not per
//!   record), and at once when a burst passes the threshold;
//! - once a drain finds nothing, sleeps until the kernel wakes it for the next record, with a
//!   slow timer ([`IDLE_POLL`]) as a safety net for a record submitted without a wake-up while
//!   the last drain was finishing. An idle node costs a few wake-ups a second, not 100.
//!
//! Records are copied into batches and handed to the pipeline over a bounded queue; the reader
//! waits for room, so records wait in the kernel's ring, where a full ring is counted by kind.

use std::{sync::Arc, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, watch},
};
use vigil_common::event::{EventKind, Header};

use super::Batch;
use crate::telemetry::{Counters, Drop};

/// At most this many records go in one batch.
const BATCH_RECORDS: usize = 1024;

/// How long the reader sleeps, when the ring was empty, before it looks again without having
/// been woken (see the module doc).
const IDLE_POLL: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug)]
pub struct RingReaderConfig {
    pub poll_interval: Duration,
}

pub struct RingReader {
    ring: AsyncFd<RingBuf<MapData>>,
    config: RingReaderConfig,
    tx: mpsc::Sender<Batch>,
    counters: Arc<Counters>,
}

impl RingReader {
    pub fn new(
        ring: RingBuf<MapData>,
        config: RingReaderConfig,
        tx: mpsc::Sender<Batch>,
        counters: Arc<Counters>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged, for as
            // long as it lives, which is as long as the AsyncFd that owns it.
            ring: unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }?,
            config,
            tx,
            counters,
        })
    }

    /// Drains until `shutdown` turns true, then drains once more and returns.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let found = self.drain().await;
            let wait = async {
                if found {
                    // Records are coming: the next batch gathers for `poll_interval`, whatever
                    // the kernel's wake-ups say (a burst past the threshold is drained next).
                    tokio::time::sleep(self.config.poll_interval).await;
                } else if let Ok(Ok(mut guard)) =
                    tokio::time::timeout(IDLE_POLL, self.ring.readable_mut()).await
                {
                    guard.clear_ready();
                }
            };
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                () = wait => {}
            }
        }
        self.drain().await;
    }

    /// Moves everything in the ring into batches for the pipeline. A batch is read from the
    /// ring only once the queue has room for it: when the pipeline falls behind, records wait
    /// in the kernel's ring buffer (megabytes) instead of being dropped here, and only a full
    /// ring loses records, counted by kind in the kernel. Returns whether there were any.
    async fn drain(&mut self) -> bool {
        let mut found = false;
        loop {
            let Ok(permit) = self.tx.reserve().await else {
                // The pipeline is gone: what is left is lost, counted.
                self.drop_rest();
                return found;
            };
            let batch = next_batch(self.ring.get_mut());
            if batch.is_empty() {
                return found;
            }
            found = true;
            let full = batch.len() == BATCH_RECORDS;
            permit.send(batch);
            if !full {
                return found;
            }
        }
    }

    /// Counts every record still in the ring as dropped (the pipeline stopped early).
    fn drop_rest(&mut self) {
        loop {
            let batch = next_batch(self.ring.get_mut());
            if batch.is_empty() {
                return;
            }
            for record in batch.iter() {
                self.counters.count(queue_drop_cause(record));
            }
        }
    }
}

/// Up to [`BATCH_RECORDS`] records from the ring.
fn next_batch(ring: &mut RingBuf<MapData>) -> Batch {
    let mut batch = Batch::with_capacity(BATCH_RECORDS, BATCH_RECORDS * 128);
    while batch.len() < BATCH_RECORDS {
        let Some(item) = ring.next() else { break };
        batch.push(&item);
    }
    batch
}

/// The drop cause for a record the pipeline could not take, by its kind.
fn queue_drop_cause(record: &[u8]) -> Drop {
    let kind = (record.len() >= size_of::<Header>())
        .then(|| u16::from_ne_bytes([record[0], record[1]]))
        .and_then(EventKind::from_u16);
    match kind {
        Some(EventKind::Exec) => Drop::QueueFullExec,
        Some(EventKind::Fork) => Drop::QueueFullFork,
        Some(EventKind::Exit) => Drop::QueueFullExit,
        Some(EventKind::CredChange) => Drop::QueueFullCred,
        Some(EventKind::Syscall) => Drop::QueueFullSyscall,
        Some(EventKind::TcpState | EventKind::Dns) => Drop::QueueFullNetwork,
        None => Drop::QueueFullOther,
    }
}
