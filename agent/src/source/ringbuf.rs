//! The ring-buffer reader: the one task that drains the kernel's event buffer.
//!
//! Records are submitted without a wake-up (see `agent-ebpf/src/emit.rs`), so the reader
//! drains on a short timer, and also whenever the kernel forces a wake-up because the backlog
//! passed the threshold. Records are copied into batches and handed to the pipeline over a
//! bounded queue; when the queue is full, the batch is dropped and counted by kind.

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
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                guard = self.ring.readable_mut() => {
                    if let Ok(mut guard) = guard {
                        guard.clear_ready();
                    }
                }
                _ = tick.tick() => {}
            }
            self.drain().await;
        }
        self.drain().await;
    }

    /// Moves everything in the ring into batches for the pipeline. A batch is read from the
    /// ring only once the queue has room for it: when the pipeline falls behind, records wait
    /// in the kernel's ring buffer (megabytes) instead of being dropped here, and only a full
    /// ring loses records, counted by kind in the kernel.
    async fn drain(&mut self) {
        loop {
            let Ok(permit) = self.tx.reserve().await else {
                // The pipeline is gone: what is left is lost, counted.
                self.drop_rest();
                return;
            };
            let batch = next_batch(self.ring.get_mut());
            if batch.is_empty() {
                return;
            }
            let full = batch.len() == BATCH_RECORDS;
            permit.send(batch);
            if !full {
                return;
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
