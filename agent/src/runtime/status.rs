//! The pipeline task's side of `vigil status`: on every tick it rebuilds the API's
//! [`Status`] from what it owns (counters, caches, exporters, the policy set).

use std::{sync::atomic::Ordering::Relaxed, time::Instant};

use vigil_common::stats::KernelCounter;

use super::PipelineTask;
use crate::{
    api::status::{ExporterStatus, Rate, RuleStatus, Status},
    config::Config,
    telemetry::{Drop, KernelStats},
};

/// What the status needs from the config (where each exporter goes), and the rate's samples.
#[derive(Debug, Default)]
pub(super) struct StatusTracker {
    output: String,
    metrics: String,
    api: String,
    collector: String,
    otlp: String,
    recorder: String,
    rate: Rate,
}

impl StatusTracker {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            output: config.output.target.clone(),
            metrics: config.telemetry.metrics_address.clone(),
            api: config.api.socket.display().to_string(),
            collector: config.forward.collector.endpoint.clone(),
            otlp: config.forward.otlp.endpoint.clone(),
            recorder: config.recorder.dir.display().to_string(),
            rate: Rate::default(),
        }
    }
}

impl PipelineTask {
    /// Rebuilds the API's status; nothing to do without the API.
    pub(super) fn publish_status(&mut self, kernel: &KernelStats) {
        let Some(api) = &self.api else {
            return;
        };
        let exported = api.events.load(Relaxed);
        let (events_per_second, rate_window) = self.status.rate.sample(Instant::now(), exported);
        let mut drops: Vec<(&'static str, u64)> = KernelCounter::ALL
            .iter()
            .filter(|c| c.is_loss())
            .map(|&c| (c.name(), kernel[c as usize]))
            .chain(
                Drop::ALL
                    .iter()
                    .zip(self.counters.snapshot())
                    .map(|(d, n)| (d.name(), n)),
            )
            .collect();
        drops.push(("api_client_lagged", api.dropped()));
        drops.retain(|&(_, n)| n > 0);
        let cache = self.pipeline.cache();
        let mut caches = vec![
            ("process_cache_entries", cache.len() as u64),
            ("process_cache_bytes", cache.bytes() as u64),
        ];
        if let Some(enricher) = self.pipeline.enricher() {
            caches.push(("enrich_containers", enricher.containers_len() as u64));
            caches.push(("enrich_pending_events", enricher.pending_len() as u64));
        }
        let mut exporters = vec![
            ExporterStatus {
                name: "output",
                state: "running",
                target: self.status.output.clone(),
                counters: vec![("events", exported)],
            },
            ExporterStatus {
                name: "api",
                state: "running",
                target: self.status.api.clone(),
                counters: vec![
                    ("clients", api.events_tx.receiver_count() as u64),
                    ("dropped", api.dropped()),
                ],
            },
        ];
        if !self.status.metrics.is_empty() {
            exporters.push(ExporterStatus {
                name: "metrics",
                state: "running",
                target: self.status.metrics.clone(),
                counters: Vec::new(),
            });
        }
        if let Some(recorder) = &self.recorder {
            let stats = recorder.stats();
            caches.push(("recorder_events", stats.events.load(Relaxed)));
            caches.push(("recorder_bytes", stats.bytes.load(Relaxed)));
            exporters.push(ExporterStatus {
                name: "recorder",
                state: "running",
                target: self.status.recorder.clone(),
                counters: vec![
                    ("dumps_written", stats.dumps_written.load(Relaxed)),
                    ("dumps_dropped", stats.dumps_dropped.load(Relaxed)),
                    ("dumps_failed", stats.dumps_failed.load(Relaxed)),
                ],
            });
        }
        if let Some(forward) = &self.forward {
            let stats = forward.stats();
            caches.push(("spool_bytes", stats.spool_bytes.load(Relaxed)));
            for (name, dest) in stats.destinations() {
                let (name, target) = if name == "otlp" {
                    ("forward.otlp", self.status.otlp.clone())
                } else {
                    ("forward.collector", self.status.collector.clone())
                };
                exporters.push(ExporterStatus {
                    name,
                    state: if dest.connected.load(Relaxed) == 1 {
                        "connected"
                    } else {
                        "disconnected"
                    },
                    target,
                    counters: vec![
                        ("sent", dest.sent_total.load(Relaxed)),
                        ("errors", dest.errors_total.load(Relaxed)),
                        ("rejected", dest.rejected_total.load(Relaxed)),
                        ("lag", stats.lag(dest)),
                    ],
                });
            }
        }
        let (rules, policy_sources) = match self.pipeline.policy() {
            Some(stage) => (
                stage
                    .set()
                    .rules()
                    .iter()
                    .map(|rule| RuleStatus {
                        name: rule.info.name.clone(),
                        severity: rule.info.severity.name(),
                        mode: rule.mode.name(),
                        action: rule.action.name(),
                        source: rule.info.source.clone(),
                    })
                    .collect(),
                stage.set().sources().to_vec(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let status = Status {
            events_per_second,
            rate_window,
            drops,
            caches,
            exporters,
            rules,
            policy_sources,
        };
        if let Ok(mut shared) = api.status.lock() {
            *shared = status;
        }
    }
}
