//! Every metric family the agent serves: name, type, labels and help, in one place.
//! `docs/metrics.md` documents the same table; a unit test keeps the two equal.

/// A Prometheus metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn family(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Family {
    Family {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge};

pub const EVENTS: Family = family(
    "vigil_events_total",
    Counter,
    &["kind"],
    "Events handed to the exporters, by kind.",
);
pub const LOST_EVENTS: Family = family(
    "vigil_lost_events_total",
    Counter,
    &["cause"],
    "Events lost, by cause: before the exporters (kernel ring buffer, queue, decode), or by a gRPC API client that fell behind (api_client_lagged, once per client).",
);
pub const KERNEL_RECORDS: Family = family(
    "vigil_kernel_records_total",
    Counter,
    &["counter"],
    "Records the kernel side submitted, and field-level read failures, by counter.",
);
pub const FINDINGS: Family = family(
    "vigil_findings_total",
    Counter,
    &["rule", "severity"],
    "Findings emitted, by rule and severity.",
);
pub const RING_BUFFER_USED: Family = family(
    "vigil_ring_buffer_used_bytes",
    Gauge,
    &[],
    "Bytes in the kernel ring buffer not yet read by the agent (records with their headers), sampled once per tick.",
);
pub const RING_BUFFER_SIZE: Family = family(
    "vigil_ring_buffer_size_bytes",
    Gauge,
    &[],
    "Size of the kernel ring buffer, as the kernel reports it.",
);
pub const PROCESS_CACHE_ENTRIES: Family = family(
    "vigil_process_cache_entries",
    Gauge,
    &[],
    "Processes in the cache.",
);
pub const PROCESS_CACHE_BYTES: Family = family(
    "vigil_process_cache_bytes",
    Gauge,
    &[],
    "Accounted memory of the process cache.",
);
pub const PROCESS_CACHE_REMOVALS: Family = family(
    "vigil_process_cache_removals_total",
    Counter,
    &["reason"],
    "Processes removed from the cache, by reason.",
);
pub const PROCESS_CACHE_MISSES: Family = family(
    "vigil_process_cache_misses_total",
    Counter,
    &[],
    "Events whose process or parent was not in the cache.",
);
pub const DNS_MALFORMED: Family = family(
    "vigil_dns_malformed_total",
    Counter,
    &[],
    "Packets to port 53 whose payload was no DNS message (reported as dns events with dns.malformed).",
);
pub const API_DROPPED: Family = family(
    "vigil_api_dropped_total",
    Counter,
    &[],
    "Events not delivered to gRPC API clients that fell behind (each got a loss event); also vigil_lost_events_total{cause=\"api_client_lagged\"}.",
);
pub const ENFORCEMENT_ACTIONS: Family = family(
    "vigil_enforcement_actions_total",
    Counter,
    &["action", "outcome"],
    "Containment actions taken by the kernel or the responder, by action and outcome (dropped: the responder's queue was full).",
);
pub const ENRICH_LOOKUPS: Family = family(
    "vigil_enrich_lookups_total",
    Counter,
    &["result"],
    "Container metadata lookups asked of the CRI runtime (requested) and answered (found).",
);
pub const ENRICH_LOOKUP_FAILURES: Family = family(
    "vigil_enrich_lookup_failures_total",
    Counter,
    &["cause"],
    "Container metadata lookups that failed, by cause.",
);
pub const ENRICH_LOOKUP_REQUESTS_DROPPED: Family = family(
    "vigil_enrich_lookup_requests_dropped_total",
    Counter,
    &[],
    "Lookups not asked because the lookup task's queue was full.",
);
pub const ENRICH_EVENTS_HELD: Family = family(
    "vigil_enrich_events_held_total",
    Counter,
    &[],
    "Events held while their container's metadata was on its way.",
);
pub const ENRICH_INCOMPLETE: Family = family(
    "vigil_enrich_incomplete_total",
    Counter,
    &["cause"],
    "Enrichment misses: events of a container released without its metadata, by cause.",
);
pub const ENRICH_CONTAINERS_GONE: Family = family(
    "vigil_enrich_containers_gone_total",
    Counter,
    &[],
    "Containers dropped from the cache because the runtime no longer has them.",
);
pub const ENRICH_CACHE_EVICTIONS: Family = family(
    "vigil_enrich_cache_evictions_total",
    Counter,
    &[],
    "Cgroups or containers dropped from the enrichment cache to stay within cache_max_entries.",
);
pub const ENRICH_CGROUP_PATHS_FROM_PROC: Family = family(
    "vigil_enrich_cgroup_paths_from_proc_total",
    Counter,
    &[],
    "Cgroup paths read from /proc because no event carried one.",
);
pub const ENRICH_PENDING_EVENTS: Family = family(
    "vigil_enrich_pending_events",
    Gauge,
    &[],
    "Events waiting in the pending queue for their container's metadata.",
);
pub const ENRICH_CONTAINERS: Family = family(
    "vigil_enrich_containers",
    Gauge,
    &[],
    "Containers whose metadata is cached.",
);
pub const BPF_PROGRAM_RUN_SECONDS: Family = family(
    "vigil_bpf_program_run_seconds_total",
    Counter,
    &["program"],
    "Time the kernel spent running each of the sensor's programs (counted only while kernel BPF statistics are on).",
);
pub const BPF_PROGRAM_RUNS: Family = family(
    "vigil_bpf_program_runs_total",
    Counter,
    &["program"],
    "Runs of each of the sensor's programs (counted only while kernel BPF statistics are on).",
);

pub const FORWARD_SPOOL_BYTES: Family = family(
    "vigil_forward_spool_bytes",
    Gauge,
    &[],
    "Bytes in the forwarding spool (records not yet acknowledged by every destination, by whole segments).",
);
pub const FORWARD_LAG: Family = family(
    "vigil_forward_lag_records",
    Gauge,
    &["destination"],
    "Records spooled and not yet acknowledged by the destination.",
);
pub const FORWARD_CONNECTED: Family = family(
    "vigil_forward_connected",
    Gauge,
    &["destination"],
    "1 while a session with the destination is up.",
);
pub const FORWARD_SENT: Family = family(
    "vigil_forward_sent_total",
    Counter,
    &["destination"],
    "Records sent to the destination, resends after a reconnect included.",
);
pub const FORWARD_ERRORS: Family = family(
    "vigil_forward_errors_total",
    Counter,
    &["destination"],
    "Failed connects and broken sessions with the destination.",
);
pub const FORWARD_REJECTED: Family = family(
    "vigil_forward_rejected_total",
    Counter,
    &["destination"],
    "Records the destination read and refused (OTLP partial success).",
);

/// Every family, in the order of the exposition.
pub const ALL: &[&Family] = &[
    &EVENTS,
    &LOST_EVENTS,
    &KERNEL_RECORDS,
    &FINDINGS,
    &RING_BUFFER_USED,
    &RING_BUFFER_SIZE,
    &PROCESS_CACHE_ENTRIES,
    &PROCESS_CACHE_BYTES,
    &PROCESS_CACHE_REMOVALS,
    &PROCESS_CACHE_MISSES,
    &DNS_MALFORMED,
    &API_DROPPED,
    &ENFORCEMENT_ACTIONS,
    &ENRICH_LOOKUPS,
    &ENRICH_LOOKUP_FAILURES,
    &ENRICH_LOOKUP_REQUESTS_DROPPED,
    &ENRICH_EVENTS_HELD,
    &ENRICH_INCOMPLETE,
    &ENRICH_CONTAINERS_GONE,
    &ENRICH_CACHE_EVICTIONS,
    &ENRICH_CGROUP_PATHS_FROM_PROC,
    &ENRICH_PENDING_EVENTS,
    &ENRICH_CONTAINERS,
    &BPF_PROGRAM_RUN_SECONDS,
    &BPF_PROGRAM_RUNS,
    &FORWARD_SPOOL_BYTES,
    &FORWARD_LAG,
    &FORWARD_CONNECTED,
    &FORWARD_SENT,
    &FORWARD_ERRORS,
    &FORWARD_REJECTED,
];
