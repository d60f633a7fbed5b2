//! The agent's metrics in the Prometheus text format. The pipeline task renders a snapshot
//! once per tick (`render`); the HTTP endpoint (`export/metrics_http.rs`) serves the latest
//! one, so scraping never touches the pipeline's state.

use std::fmt::Write as _;

use vigil_common::stats::KernelCounter;

use super::{Drop, KernelStats};
use crate::{enrich::EnrichStats, process::CacheStats};

/// Everything one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Events handed to the exporters, by kind.
    pub events: Vec<(&'static str, u64)>,
    pub kernel: KernelStats,
    pub drops: [u64; Drop::ALL.len()],
    pub cache: CacheStats,
    pub cache_entries: usize,
    pub cache_bytes: usize,
    pub enrich: Option<EnrichStats>,
    /// DNS events whose payload was no DNS message.
    pub dns_malformed: u64,
    /// Events the gRPC API dropped for clients that fell behind (`None`: API off).
    pub api_dropped: Option<u64>,
    /// Containment actions (kernel and userspace), by action and outcome.
    pub enforcement: Vec<(&'static str, &'static str, u64)>,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, label: Option<(&str, &str)>, value: u64) {
    let _ = match label {
        Some((key, val)) => writeln!(out, "{name}{{{key}=\"{val}\"}} {value}"),
        None => writeln!(out, "{name} {value}"),
    };
}

/// The text exposition of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "vigil_events_total",
        "counter",
        "Events handed to the exporters, by kind.",
    );
    for (kind, n) in &s.events {
        sample(&mut out, "vigil_events_total", Some(("kind", kind)), *n);
    }
    family(
        &mut out,
        "vigil_lost_events_total",
        "counter",
        "Events lost before the exporters, by cause (kernel ring buffer, queue, decode).",
    );
    for counter in KernelCounter::ALL.iter().filter(|c| c.is_loss()) {
        let n = s.kernel[*counter as usize];
        sample(
            &mut out,
            "vigil_lost_events_total",
            Some(("cause", counter.name())),
            n,
        );
    }
    for (i, cause) in Drop::ALL.iter().enumerate() {
        sample(
            &mut out,
            "vigil_lost_events_total",
            Some(("cause", cause.name())),
            s.drops[i],
        );
    }
    family(
        &mut out,
        "vigil_kernel_records_total",
        "counter",
        "Records the kernel side submitted, and field-level read failures, by counter.",
    );
    for counter in KernelCounter::ALL.iter().filter(|c| !c.is_loss()) {
        let n = s.kernel[*counter as usize];
        sample(
            &mut out,
            "vigil_kernel_records_total",
            Some(("counter", counter.name())),
            n,
        );
    }
    family(
        &mut out,
        "vigil_process_cache_entries",
        "gauge",
        "Processes in the cache.",
    );
    sample(
        &mut out,
        "vigil_process_cache_entries",
        None,
        s.cache_entries as u64,
    );
    family(
        &mut out,
        "vigil_process_cache_bytes",
        "gauge",
        "Accounted memory of the process cache.",
    );
    sample(
        &mut out,
        "vigil_process_cache_bytes",
        None,
        s.cache_bytes as u64,
    );
    family(
        &mut out,
        "vigil_process_cache_removals_total",
        "counter",
        "Processes removed from the cache, by reason.",
    );
    for (reason, n) in [
        ("evicted", s.cache.evictions),
        ("evicted_ancestor", s.cache.evicted_ancestors),
        ("expired", s.cache.expired),
    ] {
        sample(
            &mut out,
            "vigil_process_cache_removals_total",
            Some(("reason", reason)),
            n,
        );
    }
    family(
        &mut out,
        "vigil_process_cache_misses_total",
        "counter",
        "Events whose process or parent was not in the cache.",
    );
    sample(
        &mut out,
        "vigil_process_cache_misses_total",
        None,
        s.cache.misses,
    );
    family(
        &mut out,
        "vigil_dns_malformed_total",
        "counter",
        "Packets to port 53 whose payload was no DNS message (reported as dns events with dns.malformed).",
    );
    sample(&mut out, "vigil_dns_malformed_total", None, s.dns_malformed);
    if let Some(dropped) = s.api_dropped {
        family(
            &mut out,
            "vigil_api_dropped_total",
            "counter",
            "Events not delivered to gRPC API clients that fell behind (each got a loss event).",
        );
        sample(&mut out, "vigil_api_dropped_total", None, dropped);
    }
    family(
        &mut out,
        "vigil_enforcement_actions_total",
        "counter",
        "Containment actions taken by the kernel or the responder, by action and outcome (dropped: the responder's queue was full).",
    );
    for (action, outcome, n) in &s.enforcement {
        let _ = writeln!(
            out,
            "vigil_enforcement_actions_total{{action=\"{action}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    if let Some(enrich) = &s.enrich {
        family(
            &mut out,
            "vigil_enrich",
            "counter",
            "Container enrichment: lookups, failures by cause, events released without metadata by cause.",
        );
        for line in enrich.samples() {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_labels() {
        let mut kernel = [0; KernelCounter::ALL.len()];
        kernel[KernelCounter::RingbufFullExec as usize] = 7;
        let mut drops = [0; Drop::ALL.len()];
        drops[Drop::QueueFullFork as usize] = 2;
        let text = render(&Snapshot {
            events: vec![("exec", 10), ("exit", 9)],
            kernel,
            drops,
            cache_entries: 5,
            cache_bytes: 4096,
            enrich: Some(EnrichStats::default()),
            dns_malformed: 3,
            api_dropped: Some(4),
            enforcement: vec![("exec_killed", "ok", 2)],
            ..Snapshot::default()
        });
        assert!(text.contains("vigil_dns_malformed_total 3\n"), "{text}");
        assert!(text.contains("vigil_api_dropped_total 4\n"), "{text}");
        assert!(
            text.contains(
                "vigil_enforcement_actions_total{action=\"exec_killed\",outcome=\"ok\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("vigil_events_total{kind=\"exec\"} 10\n"),
            "{text}"
        );
        assert!(text.contains("vigil_lost_events_total{cause=\"ringbuf_full_exec\"} 7\n"));
        assert!(text.contains("vigil_lost_events_total{cause=\"queue_full_fork\"} 2\n"));
        assert!(text.contains("vigil_process_cache_entries 5\n"));
        assert!(
            text.contains("vigil_enrich_incomplete_total{cause=\"timeout\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE vigil_process_cache_bytes gauge\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().expect("a value");
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
