//! Enrichment's counters: every event that leaves without the metadata it should have had is
//! counted with its cause, and so is every lookup that failed.

use crate::telemetry::metrics::families::{self as f, Family};

/// One counter, named as the Prometheus sample it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrichCounter {
    LookupsRequested,
    LookupsFound,
    LookupFailedUnavailable,
    LookupFailedTimeout,
    LookupFailedNotFound,
    LookupFailedInvalid,
    LookupFailedError,
    /// The socket closed under the call or did not speak gRPC.
    LookupFailedTransport,
    /// The lookup task's request queue was full: no lookup asked.
    LookupRequestsDropped,
    /// Events held while metadata was on its way.
    EventsHeld,
    /// Released without metadata because the lookup took longer than `pending_timeout_ms`.
    IncompleteTimeout,
    /// Released without metadata because the lookup failed.
    IncompleteLookupFailed,
    /// Released early, without metadata, to stay within the pending bounds.
    IncompleteOverflow,
    /// Not held (the lookup had failed, had timed out, or the runtime was failing).
    IncompleteUnresolved,
    /// Released without metadata at shutdown.
    IncompleteShutdown,
    /// Containers dropped from the cache because the runtime no longer has them.
    ContainersGone,
    /// Cache entries (cgroups or containers) dropped to stay within `cache_max_entries`.
    CacheEvictions,
    /// Cgroup paths read from /proc because no event carried one.
    CgroupPathsFromProc,
}

impl EnrichCounter {
    pub const ALL: [Self; 18] = [
        Self::LookupsRequested,
        Self::LookupsFound,
        Self::LookupFailedUnavailable,
        Self::LookupFailedTimeout,
        Self::LookupFailedNotFound,
        Self::LookupFailedInvalid,
        Self::LookupFailedError,
        Self::LookupFailedTransport,
        Self::LookupRequestsDropped,
        Self::EventsHeld,
        Self::IncompleteTimeout,
        Self::IncompleteLookupFailed,
        Self::IncompleteOverflow,
        Self::IncompleteUnresolved,
        Self::IncompleteShutdown,
        Self::ContainersGone,
        Self::CacheEvictions,
        Self::CgroupPathsFromProc,
    ];

    /// The metric family and the value of its one label, if it has one.
    pub const fn metric(self) -> (&'static Family, Option<&'static str>) {
        match self {
            Self::LookupsRequested => (&f::ENRICH_LOOKUPS, Some("requested")),
            Self::LookupsFound => (&f::ENRICH_LOOKUPS, Some("found")),
            Self::LookupFailedUnavailable => (&f::ENRICH_LOOKUP_FAILURES, Some("unavailable")),
            Self::LookupFailedTimeout => (&f::ENRICH_LOOKUP_FAILURES, Some("timeout")),
            Self::LookupFailedNotFound => (&f::ENRICH_LOOKUP_FAILURES, Some("not_found")),
            Self::LookupFailedInvalid => (&f::ENRICH_LOOKUP_FAILURES, Some("invalid")),
            Self::LookupFailedError => (&f::ENRICH_LOOKUP_FAILURES, Some("error")),
            Self::LookupFailedTransport => (&f::ENRICH_LOOKUP_FAILURES, Some("transport")),
            Self::LookupRequestsDropped => (&f::ENRICH_LOOKUP_REQUESTS_DROPPED, None),
            Self::EventsHeld => (&f::ENRICH_EVENTS_HELD, None),
            Self::IncompleteTimeout => (&f::ENRICH_INCOMPLETE, Some("timeout")),
            Self::IncompleteLookupFailed => (&f::ENRICH_INCOMPLETE, Some("lookup_failed")),
            Self::IncompleteOverflow => (&f::ENRICH_INCOMPLETE, Some("pending_overflow")),
            Self::IncompleteUnresolved => (&f::ENRICH_INCOMPLETE, Some("unresolved")),
            Self::IncompleteShutdown => (&f::ENRICH_INCOMPLETE, Some("shutdown")),
            Self::ContainersGone => (&f::ENRICH_CONTAINERS_GONE, None),
            Self::CacheEvictions => (&f::ENRICH_CACHE_EVICTIONS, None),
            Self::CgroupPathsFromProc => (&f::ENRICH_CGROUP_PATHS_FROM_PROC, None),
        }
    }

    /// The failure counter for a lookup failure cause ([`super::cri::CriError::cause`]).
    pub fn for_failure(cause: &str) -> Self {
        match cause {
            "unavailable" => Self::LookupFailedUnavailable,
            "timeout" => Self::LookupFailedTimeout,
            "not_found" => Self::LookupFailedNotFound,
            "invalid" => Self::LookupFailedInvalid,
            "transport" => Self::LookupFailedTransport,
            _ => Self::LookupFailedError,
        }
    }
}

/// Counter values since start, owned by the pipeline task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnrichStats([u64; EnrichCounter::ALL.len()]);

impl Default for EnrichStats {
    fn default() -> Self {
        Self([0; EnrichCounter::ALL.len()])
    }
}

impl EnrichStats {
    pub fn add(&mut self, counter: EnrichCounter, n: u64) {
        self.0[counter as usize] += n;
    }

    pub fn get(&self, counter: EnrichCounter) -> u64 {
        self.0[counter as usize]
    }

    /// Events released without the metadata they should have had, all causes.
    pub fn incomplete(&self) -> u64 {
        [
            EnrichCounter::IncompleteTimeout,
            EnrichCounter::IncompleteLookupFailed,
            EnrichCounter::IncompleteOverflow,
            EnrichCounter::IncompleteUnresolved,
            EnrichCounter::IncompleteShutdown,
        ]
        .iter()
        .map(|&c| self.get(c))
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_own_sample() {
        let mut samples: Vec<(&str, Option<&str>)> = EnrichCounter::ALL
            .iter()
            .map(|c| {
                let (family, label) = c.metric();
                assert!(family.name.starts_with("vigil_enrich_"));
                assert_eq!(family.labels.len(), usize::from(label.is_some()));
                (family.name, label)
            })
            .collect();
        samples.sort();
        samples.dedup();
        assert_eq!(samples.len(), EnrichCounter::ALL.len());
        for (i, counter) in EnrichCounter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, i, "ALL is in declaration order");
        }
    }
}
