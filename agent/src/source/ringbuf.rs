//! The ring-buffer reader: the one task that drains the kernel's event buffer.
//!
//! Records are submitted without a wake-up (see `agent-ebpf/src/emit.rs`), except the one
//! that takes the backlog past the threshold and, while the reader sleeps until woken, the
//! first one into an empty ring. So the reader:
//! - while records keep coming, drains every `poll_interval` (one wake-up per batch, not per
//!   record), and at once when a burst passes the threshold;
//! - once a drain finds nothing, tells the kernel (the `VIGIL_READER` map) that it sleeps until
//!   woken, looks once more (a record submitted before the kernel knew), and sleeps until the
//!   kernel wakes it for the next record, with a slow timer ([`IDLE_POLL`]) as a safety net.
//!   An idle node costs a few wake-ups a second, not 100; and while records keep coming, the
//!   first record after each drain wakes nobody.
//!
//! Records are copied into batches and handed to the pipeline over a bounded queue; the reader
//! waits for room, so records wait in the kernel's ring, where a full ring is counted by kind.

use std::{sync::Arc, time::Duration};

use aya::maps::{Array, MapData, RingBuf};
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
    /// Whether the reader sleeps until woken (1) or drains on its timer (0), for the kernel.
    state: Array<MapData, u32>,
    config: RingReaderConfig,
    tx: mpsc::Sender<Batch>,
    counters: Arc<Counters>,
}

impl RingReader {
    pub fn new(
        ring: RingBuf<MapData>,
        state: Array<MapData, u32>,
        config: RingReaderConfig,
        tx: mpsc::Sender<Batch>,
        counters: Arc<Counters>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged, for as
            // long as it lives, which is as long as the AsyncFd that owns it.
            ring: unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }?,
            state,
            config,
            tx,
            counters,
        })
    }

    /// Drains until `shutdown` turns true, then drains once more and returns.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut asleep = false;
        loop {
            let found = self.drain().await;
            if found == asleep {
                // Found records while asleep: back to the timer. Found none while on the
                // timer: ask for a wake-up, then look once more before sleeping.
                asleep = !found;
                self.tell_kernel(asleep);
                if asleep {
                    continue;
                }
            }
            let period = if found {
                self.config.poll_interval
            } else {
                IDLE_POLL
            };
            // The timer, or the kernel's wake-up (a burst past the threshold; or, asleep, the
            // first record).
            let wait = async {
                if let Ok(Ok(mut guard)) =
                    tokio::time::timeout(period, self.ring.readable_mut()).await
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

    /// Tells the kernel whether the reader sleeps until woken. A failed update leaves the
    /// kernel's view stale: at worst an idle reader finds a record on its slow timer, or one
    /// wake-up per drain is spent on a reader that is awake; so it is logged, not fatal.
    fn tell_kernel(&mut self, asleep: bool) {
        if let Err(error) = self.state.set(0, u32::from(asleep), 0) {
            tracing::debug!(%error, asleep, "Cannot update the ring reader's state map.");
        }
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
