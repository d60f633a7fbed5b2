//! The ring-buffer reader: the one task that drains the kernel's event buffer.
//!
//! Records are submitted without a wake-up (see `agent-ebpf/src/emit.rs`), except the one
//! that takes the backlog past the threshold and, while the reader has told the kernel (the
//! `VIGIL_READER` map) that it waits for wake-ups, the first one into an empty ring. So the
//! reader ([`Pacing`]):
//! - on a quiet node waits for the kernel's wake-up, and reads each event at once (a slow
//!   timer, [`IDLE_POLL`], covers a record submitted without a wake-up while a drain ended);
//! - once woken more than [`WAKES_PER_INTERVAL`] times in a `poll_interval`, drains on that
//!   timer instead (one wake-up per batch, not per record; at once when a burst passes the
//!   threshold), until a drain finds no more records than that.
//!
//! Records are copied into batches and handed to the pipeline over a bounded queue; the reader
//! waits for room, so records wait in the kernel's ring, where a full ring is counted by kind.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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

/// Kernel wake-ups in one `poll_interval` past which the reader drains on its timer instead:
/// a wake-up costs the producing CPU an irq_work and the reader a thread wake-up, cheaper than
/// a timer's wait while records are few, not when they stream.
const WAKES_PER_INTERVAL: u32 = 8;

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
        let mut pacing = Pacing::new(self.config.poll_interval);
        loop {
            let found = self.drain().await;
            if let Some(on_wake) = pacing.after_drain(found, Instant::now()) {
                self.tell_kernel(on_wake);
                if on_wake {
                    // A record submitted before the kernel knew woke nobody: look once more.
                    continue;
                }
            }
            let period = if pacing.on_wake {
                IDLE_POLL
            } else {
                self.config.poll_interval
            };
            // The timer, or the kernel's wake-up (the first record into an empty ring when
            // woken by the kernel; a burst past the threshold).
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

    /// Tells the kernel whether the reader waits for its wake-ups. A failed update leaves the
    /// kernel's view stale: at worst a quiet node's record waits for the slow timer, or one
    /// wake-up per drain is spent on a reader that drains on its timer; so it is logged, not
    /// fatal.
    fn tell_kernel(&mut self, on_wake: bool) {
        if let Err(error) = self.state.set(0, u32::from(on_wake), 0) {
            tracing::debug!(%error, on_wake, "Cannot update the ring reader's state map.");
        }
    }

    /// Moves everything in the ring into batches for the pipeline. A batch is read from the
    /// ring only once the queue has room for it: when the pipeline falls behind, records wait
    /// in the kernel's ring buffer (megabytes) instead of being dropped here, and only a full
    /// ring loses records, counted by kind in the kernel. Returns how many there were.
    async fn drain(&mut self) -> usize {
        let mut found = 0;
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
            found += batch.len();
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

/// When the reader reads: woken by the kernel for each first record into an empty ring (a quiet
/// node: an event is read at once, and a fork, exec and exit a few µs apart are three
/// wake-ups, not a timer's wait), or on its timer (a busy node: one wake-up per batch).
struct Pacing {
    interval: Duration,
    /// Woken by the kernel (and told it so), or on the timer.
    on_wake: bool,
    /// Wake-ups since `window`, a `poll_interval` long.
    wakes: u32,
    window: Instant,
}

impl Pacing {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            on_wake: false,
            wakes: 0,
            window: Instant::now(),
        }
    }

    /// After a drain that found `found` records: `Some(on_wake)` when the mode changes (the
    /// kernel must be told). Woken more than [`WAKES_PER_INTERVAL`] times in one interval,
    /// the reader goes to its timer; a timer's drain with no more records than that goes
    /// back to wake-ups.
    fn after_drain(&mut self, found: usize, now: Instant) -> Option<bool> {
        if self.on_wake {
            if found == 0 {
                return None;
            }
            if now.duration_since(self.window) >= self.interval {
                self.window = now;
                self.wakes = 0;
            }
            self.wakes += 1;
            if self.wakes <= WAKES_PER_INTERVAL {
                return None;
            }
            self.on_wake = false;
        } else {
            if found > WAKES_PER_INTERVAL as usize {
                return None;
            }
            self.on_wake = true;
            self.wakes = 0;
            self.window = now;
        }
        Some(self.on_wake)
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

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(10);

    #[test]
    fn a_quiet_reader_goes_to_wake_ups_and_stays_there_while_records_are_few() {
        let start = Instant::now();
        let mut pacing = Pacing::new(TICK);
        // The first drain finds nothing: wait for the kernel from now on.
        assert_eq!(pacing.after_drain(0, start), Some(true));
        // Wake-ups of a fork, an exec and an exit, and drains that found nothing.
        for found in [1, 1, 1, 0, 0] {
            assert_eq!(pacing.after_drain(found, start), None);
        }
        assert!(pacing.on_wake);
    }

    #[test]
    fn a_stream_of_wake_ups_moves_the_reader_to_its_timer_and_a_lull_moves_it_back() {
        let start = Instant::now();
        let mut pacing = Pacing::new(TICK);
        assert_eq!(pacing.after_drain(0, start), Some(true));
        for _ in 0..WAKES_PER_INTERVAL {
            assert_eq!(pacing.after_drain(1, start), None);
        }
        // One more wake-up within the same interval: the timer.
        assert_eq!(pacing.after_drain(1, start), Some(false));
        // A timer's drain with a batch keeps the timer; a thin one goes back to wake-ups.
        assert_eq!(pacing.after_drain(500, start + TICK), None);
        let few = WAKES_PER_INTERVAL as usize;
        assert_eq!(pacing.after_drain(few, start + 2 * TICK), Some(true));
    }

    #[test]
    fn wake_ups_spread_over_intervals_keep_the_reader_on_wake_ups() {
        let start = Instant::now();
        let mut pacing = Pacing::new(TICK);
        assert_eq!(pacing.after_drain(0, start), Some(true));
        // Twice the limit, but each interval holds only half of it.
        for i in 0..2 * WAKES_PER_INTERVAL {
            let now = start + TICK * (i / (WAKES_PER_INTERVAL / 2));
            assert_eq!(pacing.after_drain(1, now), None, "wake-up {i}");
        }
        assert!(pacing.on_wake);
    }
}
