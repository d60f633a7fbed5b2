//! The middle of the agent: decode -> process cache -> events for the exporters.
//! Plain synchronous code owned by one task; unit-tested without a kernel.

use std::sync::Arc;

use crate::{
    decode::decode,
    event::{Detail, Event, Loss},
    process::{ProcessCache, ProcessCacheConfig},
    source::Batch,
    telemetry::{Counters, Drop},
};

pub struct Pipeline {
    cache: ProcessCache,
    counters: Arc<Counters>,
    decode_errors_logged: u64,
}

impl Pipeline {
    pub fn new(cache: ProcessCacheConfig, counters: Arc<Counters>) -> Self {
        Self {
            cache: ProcessCache::new(cache),
            counters,
            decode_errors_logged: 0,
        }
    }

    pub fn cache(&self) -> &ProcessCache {
        &self.cache
    }

    /// Seeds the process cache from /proc (processes that started before Vigil).
    pub fn seed_from_proc(&mut self) {
        let cgroups = crate::cgroup::CgroupFs::discover();
        let (entries, skipped) =
            crate::process::snapshot::read_proc(std::path::Path::new("/proc"), &cgroups);
        let count = entries.len();
        self.cache
            .seed(entries, crate::process::snapshot::tick_ns());
        tracing::info!(
            processes = count,
            skipped,
            "Read running processes from /proc."
        );
    }

    /// Decodes and resolves every record of `batch`, appending the events to `out`.
    pub fn process_batch(&mut self, batch: &Batch, out: &mut Vec<Event>) {
        for record in batch.iter() {
            self.process_record(record, out);
        }
    }

    /// One record: a decode error is counted (and logged, rate-limited), never fatal.
    pub fn process_record(&mut self, record: &[u8], out: &mut Vec<Event>) {
        match decode(record) {
            Ok(event) => out.push(self.cache.apply(event)),
            Err(error) => {
                self.counters.count(Drop::for_decode(&error));
                // Logged for the first few and then every 1000th: never per event.
                self.decode_errors_logged += 1;
                if self.decode_errors_logged <= 10 || self.decode_errors_logged.is_multiple_of(1000)
                {
                    tracing::error!(%error, count = self.decode_errors_logged, "Dropped a record that failed to decode.");
                }
            }
        }
    }

    /// Periodic housekeeping: drops exited processes past their grace period.
    pub fn tick(&mut self, now_ns: u64) {
        self.cache.sweep(now_ns);
    }

    /// A `loss` event for `loss`, stamped `now_ns`.
    pub fn loss_event(loss: Loss, now_ns: u64) -> Event {
        Event::new(now_ns, 0, None, None, Detail::Loss(loss))
    }
}

#[cfg(test)]
mod tests;
