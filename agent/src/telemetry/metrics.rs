//! The agent's metrics in the Prometheus text format. The pipeline task renders a snapshot
//! once per tick (`render`); the HTTP endpoint (`export/metrics_http.rs`) serves the latest
//! one, so scraping never touches the pipeline's state. Names, types and help: `families.rs`
//! (documented in docs/metrics.md); a new family is a const there, a field in [`Snapshot`]
//! and a few lines in [`render`].

pub mod families;
#[cfg(test)]
mod tests;
pub mod text;

use vigil_common::stats::KernelCounter;

use self::{families as f, text::Text};
use super::{Drop, KernelStats, programs::ProgramRun};
use crate::{enrich::EnrichStats, process::CacheStats};

/// Everything one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Events handed to the exporters, by kind.
    pub events: Vec<(&'static str, u64)>,
    pub kernel: KernelStats,
    pub drops: [u64; Drop::ALL.len()],
    /// Findings emitted, by rule and severity.
    pub findings: Vec<(String, &'static str, u64)>,
    /// The kernel ring buffer's fill (`None`: its positions could not be mapped).
    pub ring: Option<RingUsage>,
    pub cache: CacheStats,
    pub cache_entries: usize,
    pub cache_bytes: usize,
    /// Container enrichment (`None`: off).
    pub enrich: Option<EnrichMetrics>,
    /// DNS events whose payload was no DNS message.
    pub dns_malformed: u64,
    /// Events the gRPC API dropped for clients that fell behind (`None`: API off).
    pub api_dropped: Option<u64>,
    /// Containment actions (kernel and userspace), by action and outcome.
    pub enforcement: Vec<(&'static str, &'static str, u64)>,
    /// Per-program run totals (`None`: kernel BPF statistics off).
    pub programs: Option<Vec<ProgramRun>>,
    /// The forwarder (`None`: no destination configured).
    pub forward: Option<ForwardMetrics>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardMetrics {
    pub spool_bytes: u64,
    pub destinations: Vec<DestinationMetrics>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationMetrics {
    pub name: &'static str,
    pub lag: u64,
    pub connected: u64,
    pub sent: u64,
    pub errors: u64,
    pub rejected: u64,
}

impl ForwardMetrics {
    /// A snapshot of the forwarder's counters.
    pub fn of(stats: &crate::forward::ForwardStats) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            spool_bytes: stats.spool_bytes.load(Relaxed),
            destinations: stats
                .destinations()
                .map(|(name, d)| DestinationMetrics {
                    name,
                    lag: stats.lag(d),
                    connected: d.connected.load(Relaxed),
                    sent: d.sent_total.load(Relaxed),
                    errors: d.errors_total.load(Relaxed),
                    rejected: d.rejected_total.load(Relaxed),
                })
                .collect(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingUsage {
    pub used_bytes: u64,
    pub size_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnrichMetrics {
    pub stats: EnrichStats,
    /// Events in the pending queue now.
    pub pending_events: usize,
    /// Containers cached now.
    pub containers: usize,
}

/// The text exposition of `s`. Every family is listed, with no samples when its part of the
/// agent is off.
pub fn render(s: &Snapshot) -> String {
    let mut t = Text::with_capacity(8192);
    t.family(&f::EVENTS);
    for (kind, n) in &s.events {
        t.sample(&f::EVENTS, &[kind], *n);
    }
    render_losses(&mut t, s);
    t.family(&f::KERNEL_RECORDS);
    for counter in KernelCounter::ALL.iter().filter(|c| !c.is_loss()) {
        let n = s.kernel[*counter as usize];
        t.sample(&f::KERNEL_RECORDS, &[counter.name()], n);
    }
    t.family(&f::FINDINGS);
    for (rule, severity, n) in &s.findings {
        t.sample(&f::FINDINGS, &[rule, severity], *n);
    }
    for (family, value) in [
        (&f::RING_BUFFER_USED, s.ring.map(|r| r.used_bytes)),
        (&f::RING_BUFFER_SIZE, s.ring.map(|r| r.size_bytes)),
    ] {
        t.family(family);
        if let Some(value) = value {
            t.sample(family, &[], value);
        }
    }
    render_process_cache(&mut t, s);
    t.family(&f::DNS_MALFORMED);
    t.sample(&f::DNS_MALFORMED, &[], s.dns_malformed);
    t.family(&f::API_DROPPED);
    if let Some(dropped) = s.api_dropped {
        t.sample(&f::API_DROPPED, &[], dropped);
    }
    t.family(&f::ENFORCEMENT_ACTIONS);
    for (action, outcome, n) in &s.enforcement {
        t.sample(&f::ENFORCEMENT_ACTIONS, &[action, outcome], *n);
    }
    render_enrich(&mut t, s.enrich.as_ref());
    render_programs(&mut t, s.programs.as_deref());
    render_forward(&mut t, s.forward.as_ref());
    t.finish()
}

fn render_losses(t: &mut Text, s: &Snapshot) {
    t.family(&f::LOST_EVENTS);
    for counter in KernelCounter::ALL.iter().filter(|c| c.is_loss()) {
        let n = s.kernel[*counter as usize];
        t.sample(&f::LOST_EVENTS, &[counter.name()], n);
    }
    for (i, cause) in Drop::ALL.iter().enumerate() {
        t.sample(&f::LOST_EVENTS, &[cause.name()], s.drops[i]);
    }
    if let Some(dropped) = s.api_dropped {
        // The cause the client's own loss event names.
        t.sample(&f::LOST_EVENTS, &["api_client_lagged"], dropped);
    }
}

fn render_process_cache(t: &mut Text, s: &Snapshot) {
    t.family(&f::PROCESS_CACHE_ENTRIES);
    t.sample(&f::PROCESS_CACHE_ENTRIES, &[], s.cache_entries as u64);
    t.family(&f::PROCESS_CACHE_BYTES);
    t.sample(&f::PROCESS_CACHE_BYTES, &[], s.cache_bytes as u64);
    t.family(&f::PROCESS_CACHE_REMOVALS);
    for (reason, n) in [
        ("evicted", s.cache.evictions),
        ("evicted_ancestor", s.cache.evicted_ancestors),
        ("expired", s.cache.expired),
    ] {
        t.sample(&f::PROCESS_CACHE_REMOVALS, &[reason], n);
    }
    t.family(&f::PROCESS_CACHE_MISSES);
    t.sample(&f::PROCESS_CACHE_MISSES, &[], s.cache.misses);
}

fn render_enrich(t: &mut Text, enrich: Option<&EnrichMetrics>) {
    use crate::enrich::EnrichCounter;
    for family in [
        &f::ENRICH_LOOKUPS,
        &f::ENRICH_LOOKUP_FAILURES,
        &f::ENRICH_LOOKUP_REQUESTS_DROPPED,
        &f::ENRICH_EVENTS_HELD,
        &f::ENRICH_INCOMPLETE,
        &f::ENRICH_CONTAINERS_GONE,
        &f::ENRICH_CACHE_EVICTIONS,
        &f::ENRICH_CGROUP_PATHS_FROM_PROC,
    ] {
        t.family(family);
        let Some(enrich) = enrich else { continue };
        for &counter in &EnrichCounter::ALL {
            let (of, label) = counter.metric();
            if of == family {
                let labels: &[&str] = label.as_slice();
                t.sample(family, labels, enrich.stats.get(counter));
            }
        }
    }
    for (family, value) in [
        (&f::ENRICH_PENDING_EVENTS, enrich.map(|e| e.pending_events)),
        (&f::ENRICH_CONTAINERS, enrich.map(|e| e.containers)),
    ] {
        t.family(family);
        if let Some(value) = value {
            t.sample(family, &[], value as u64);
        }
    }
}

fn render_forward(t: &mut Text, forward: Option<&ForwardMetrics>) {
    t.family(&f::FORWARD_SPOOL_BYTES);
    if let Some(forward) = forward {
        t.sample(&f::FORWARD_SPOOL_BYTES, &[], forward.spool_bytes);
    }
    let destinations = forward
        .map(|f| f.destinations.as_slice())
        .unwrap_or_default();
    type Read = fn(&DestinationMetrics) -> u64;
    let per_destination: [(&f::Family, Read); 5] = [
        (&f::FORWARD_LAG, |d| d.lag),
        (&f::FORWARD_CONNECTED, |d| d.connected),
        (&f::FORWARD_SENT, |d| d.sent),
        (&f::FORWARD_ERRORS, |d| d.errors),
        (&f::FORWARD_REJECTED, |d| d.rejected),
    ];
    for (family, value) in per_destination {
        t.family(family);
        for d in destinations {
            t.sample(family, &[d.name], value(d));
        }
    }
}

fn render_programs(t: &mut Text, programs: Option<&[ProgramRun]>) {
    t.family(&f::BPF_PROGRAM_RUN_SECONDS);
    for p in programs.unwrap_or_default() {
        let seconds = p.run_time.as_secs_f64();
        t.sample(&f::BPF_PROGRAM_RUN_SECONDS, &[p.name], seconds);
    }
    t.family(&f::BPF_PROGRAM_RUNS);
    for p in programs.unwrap_or_default() {
        t.sample(&f::BPF_PROGRAM_RUNS, &[p.name], p.runs);
    }
}
