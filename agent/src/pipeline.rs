//! The middle of the agent: decode -> process cache -> enrich -> events for the exporters.
//! Plain synchronous code owned by one task; unit-tested without a kernel.

use std::sync::Arc;

use crate::{
    clock::boot_now_ns,
    decode::decode,
    enrich::{EnrichStats, Enricher, LookupResult},
    event::{Detail, Event, Loss},
    process::{ProcessCache, ProcessCacheConfig},
    source::Batch,
    telemetry::{Counters, Drop},
};

pub struct Pipeline {
    cache: ProcessCache,
    counters: Arc<Counters>,
    decode_errors_logged: u64,
    /// Container and pod metadata; `None`: events leave without.
    enricher: Option<Enricher>,
    /// Rules and response (after enrichment); `None`: no findings.
    policy: Option<crate::policy::PolicyStage>,
}

impl Pipeline {
    pub fn new(cache: ProcessCacheConfig, counters: Arc<Counters>) -> Self {
        Self {
            cache: ProcessCache::new(cache),
            counters,
            decode_errors_logged: 0,
            enricher: None,
            policy: None,
        }
    }

    /// Adds the enrichment stage (after the process cache).
    pub fn set_enricher(&mut self, enricher: Enricher) {
        self.enricher = Some(enricher);
    }

    pub fn enricher(&self) -> Option<&Enricher> {
        self.enricher.as_ref()
    }

    pub fn cache(&self) -> &ProcessCache {
        &self.cache
    }

    /// Seeds the process cache from /proc (processes that started before Vigil). Processes
    /// that exit during the walk are normal: counted in the one line logged, never an error.
    pub fn seed_from_proc(&mut self) {
        let cgroups = crate::cgroup::CgroupFs::discover();
        let proc_root = std::path::Path::new("/proc");
        let (entries, skipped) = match crate::process::snapshot::read_proc(proc_root, &cgroups) {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%error, "Cannot list /proc; processes that started before Vigil are known only once they act.");
                return;
            }
        };
        let count = entries.len();
        self.cache
            .seed(entries, crate::process::snapshot::tick_ns());
        tracing::info!(
            processes = count,
            vanished = skipped.vanished,
            unreadable = skipped.unreadable,
            "Read running processes from /proc."
        );
    }

    /// Decodes and resolves every record of `batch`, appending the events to `out`.
    pub fn process_batch(&mut self, batch: &Batch, out: &mut Vec<Event>) {
        let now_ns = self.enricher.as_ref().map_or(0, |_| boot_now_ns());
        for record in batch.iter() {
            self.process_record_at(record, now_ns, out);
        }
    }

    /// One record: a decode error is counted (and logged, rate-limited), never fatal.
    pub fn process_record(&mut self, record: &[u8], out: &mut Vec<Event>) {
        let now_ns = self.enricher.as_ref().map_or(0, |_| boot_now_ns());
        self.process_record_at(record, now_ns, out);
    }

    fn process_record_at(&mut self, record: &[u8], now_ns: u64, out: &mut Vec<Event>) {
        match decode(record) {
            Ok(event) => {
                let event = self.cache.apply(event);
                match &mut self.enricher {
                    Some(enricher) => enricher.push(event, now_ns, out),
                    None => out.push(event),
                }
            }
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

    /// A container lookup's answer: releases the events that waited for it.
    pub fn on_lookup(&mut self, result: LookupResult, now_ns: u64, out: &mut Vec<Event>) {
        if let Some(enricher) = &mut self.enricher {
            enricher.on_result(result, now_ns, out);
        }
    }

    /// When held events must be released next (see [`Pipeline::release_due`]).
    pub fn enrich_deadline(&self) -> Option<u64> {
        self.enricher.as_ref().and_then(Enricher::next_deadline)
    }

    /// Releases held events whose wait ended at `now_ns`.
    pub fn release_due(&mut self, now_ns: u64, out: &mut Vec<Event>) {
        if let Some(enricher) = &mut self.enricher {
            enricher.tick(now_ns, out);
        }
    }

    /// Releases every held event (at shutdown).
    pub fn drain(&mut self, out: &mut Vec<Event>) {
        if let Some(enricher) = &mut self.enricher {
            enricher.drain(out);
        }
    }

    /// Adds the rules and response stages (after enrichment).
    pub fn set_policy(&mut self, stage: crate::policy::PolicyStage) {
        self.policy = Some(stage);
    }

    pub fn policy(&self) -> Option<&crate::policy::PolicyStage> {
        self.policy.as_ref()
    }

    /// The policy stage, to plug a responder into it.
    pub fn policy_mut(&mut self) -> Option<&mut crate::policy::PolicyStage> {
        self.policy.as_mut()
    }

    /// Puts a reloaded policy set in force (between two batches: never half a set).
    pub fn replace_policies(&mut self, set: Arc<crate::policy::PolicySet>) {
        if let Some(stage) = &mut self.policy {
            stage.replace(set);
        }
    }

    /// Evaluates the events of `out` from `start` on (complete, enriched events: what leaves
    /// for the exporters) and appends a finding event for every rule that fires.
    pub fn evaluate_policies(&mut self, out: &mut Vec<Event>, start: usize) {
        if let Some(stage) = &mut self.policy {
            stage.process(out, start);
        }
    }

    pub fn enrich_stats(&self) -> Option<EnrichStats> {
        self.enricher.as_ref().map(Enricher::stats)
    }

    /// A `loss` event for `loss`, stamped `now_ns`.
    pub fn loss_event(loss: Loss, now_ns: u64) -> Event {
        Event::new(now_ns, 0, None, None, Detail::Loss(loss))
    }
}

#[cfg(test)]
mod tests;
