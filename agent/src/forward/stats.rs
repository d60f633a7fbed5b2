//! The forwarder's gauges and counters, written by its thread and read by the metrics tick.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct ForwardStats {
    /// The sequence number of the newest spooled record.
    pub last_seq: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub collector: DestinationStats,
    pub otlp: DestinationStats,
}

#[derive(Debug, Default)]
pub struct DestinationStats {
    /// 1 when configured.
    pub configured: AtomicU64,
    pub connected: AtomicU64,
    pub acked_seq: AtomicU64,
    pub sent_total: AtomicU64,
    /// Failed connects and broken sessions.
    pub errors_total: AtomicU64,
    /// Records an OTLP receiver reported as rejected (partial success).
    pub rejected_total: AtomicU64,
}

impl ForwardStats {
    pub fn destination(&self, name: &str) -> &DestinationStats {
        if name == "otlp" {
            &self.otlp
        } else {
            &self.collector
        }
    }

    /// `(destination, stats)` of the configured destinations.
    pub fn destinations(&self) -> impl Iterator<Item = (&'static str, &DestinationStats)> {
        [("collector", &self.collector), ("otlp", &self.otlp)]
            .into_iter()
            .filter(|(_, s)| s.configured.load(Relaxed) == 1)
    }

    /// Records spooled and not yet acknowledged by `dest`.
    pub fn lag(&self, dest: &DestinationStats) -> u64 {
        self.last_seq
            .load(Relaxed)
            .saturating_sub(dest.acked_seq.load(Relaxed))
    }
}
