//! Enrichment's counters: every event that leaves without the metadata it should have had is
//! counted with its cause, and so is every lookup that failed.

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
    pub const ALL: [Self; 17] = [
        Self::LookupsRequested,
        Self::LookupsFound,
        Self::LookupFailedUnavailable,
        Self::LookupFailedTimeout,
        Self::LookupFailedNotFound,
        Self::LookupFailedInvalid,
        Self::LookupFailedError,
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

    /// The metric name and its label, if any.
    pub const fn metric(self) -> (&'static str, Option<(&'static str, &'static str)>) {
        const LOOKUPS: &str = "vigil_enrich_lookups_total";
        const FAILURES: &str = "vigil_enrich_lookup_failures_total";
        const INCOMPLETE: &str = "vigil_enrich_incomplete_total";
        match self {
            Self::LookupsRequested => (LOOKUPS, Some(("result", "requested"))),
            Self::LookupsFound => (LOOKUPS, Some(("result", "found"))),
            Self::LookupFailedUnavailable => (FAILURES, Some(("cause", "unavailable"))),
            Self::LookupFailedTimeout => (FAILURES, Some(("cause", "timeout"))),
            Self::LookupFailedNotFound => (FAILURES, Some(("cause", "not_found"))),
            Self::LookupFailedInvalid => (FAILURES, Some(("cause", "invalid"))),
            Self::LookupFailedError => (FAILURES, Some(("cause", "error"))),
            Self::LookupRequestsDropped => ("vigil_enrich_lookup_requests_dropped_total", None),
            Self::EventsHeld => ("vigil_enrich_events_held_total", None),
            Self::IncompleteTimeout => (INCOMPLETE, Some(("cause", "timeout"))),
            Self::IncompleteLookupFailed => (INCOMPLETE, Some(("cause", "lookup_failed"))),
            Self::IncompleteOverflow => (INCOMPLETE, Some(("cause", "pending_overflow"))),
            Self::IncompleteUnresolved => (INCOMPLETE, Some(("cause", "unresolved"))),
            Self::IncompleteShutdown => (INCOMPLETE, Some(("cause", "shutdown"))),
            Self::ContainersGone => ("vigil_enrich_containers_gone_total", None),
            Self::CacheEvictions => ("vigil_enrich_cache_evictions_total", None),
            Self::CgroupPathsFromProc => ("vigil_enrich_cgroup_paths_from_proc_total", None),
        }
    }

    /// The failure counter for a lookup failure cause ([`super::cri::CriError::cause`]).
    pub fn for_failure(cause: &str) -> Self {
        match cause {
            "unavailable" => Self::LookupFailedUnavailable,
            "timeout" => Self::LookupFailedTimeout,
            "not_found" => Self::LookupFailedNotFound,
            "invalid" => Self::LookupFailedInvalid,
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

    /// Prometheus text samples (`name{label="value"} n`), one per counter.
    pub fn samples(&self) -> Vec<String> {
        EnrichCounter::ALL
            .iter()
            .map(|&counter| {
                let (name, label) = counter.metric();
                let value = self.get(counter);
                match label {
                    Some((key, label)) => format!("{name}{{{key}=\"{label}\"}} {value}"),
                    None => format!("{name} {value}"),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_own_sample() {
        let mut names: Vec<String> = EnrichStats::default()
            .samples()
            .into_iter()
            .map(|s| s.rsplit_once(' ').map(|(n, _)| n.to_owned()).unwrap_or(s))
            .collect();
        assert!(names.iter().all(|n| n.starts_with("vigil_enrich_")));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EnrichCounter::ALL.len());
        for (i, counter) in EnrichCounter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, i, "ALL is in declaration order");
        }
    }
}
