//! The agent's state as `GetInfo` reports it past its identity (`vigil status`): event rate,
//! drops by cause, cache sizes, exporters, policy rules. The pipeline task refreshes one
//! [`Status`] on every tick (`runtime/status.rs`); the API only reads it.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::proto;

/// The longest window the event rate is averaged over.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    pub events_per_second: f64,
    pub rate_window: Duration,
    /// Causes that counted, with their totals since start.
    pub drops: Vec<(&'static str, u64)>,
    pub caches: Vec<(&'static str, u64)>,
    pub exporters: Vec<ExporterStatus>,
    pub rules: Vec<RuleStatus>,
    pub policy_sources: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExporterStatus {
    pub name: &'static str,
    pub state: &'static str,
    pub target: String,
    pub counters: Vec<(&'static str, u64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleStatus {
    pub name: String,
    pub severity: &'static str,
    pub mode: &'static str,
    pub action: &'static str,
    pub source: String,
}

impl Status {
    /// Fills the status fields of `info`.
    pub fn fill(&self, info: &mut proto::Info) {
        let pairs = |v: &[(&'static str, u64)]| v.iter().map(|&(k, n)| (k.to_owned(), n)).collect();
        info.events_per_second = self.events_per_second;
        // Whole seconds, rounded up: a rate measured over 0.4 s says 1 s, never 0.
        info.rate_window_seconds = self.rate_window.as_secs_f64().ceil() as u32;
        info.drops = pairs(&self.drops);
        info.caches = pairs(&self.caches);
        info.exporters = self
            .exporters
            .iter()
            .map(|e| proto::ExporterState {
                name: e.name.to_owned(),
                state: e.state.to_owned(),
                target: e.target.clone(),
                counters: pairs(&e.counters),
            })
            .collect();
        info.rules = self
            .rules
            .iter()
            .map(|r| proto::PolicyRule {
                name: r.name.clone(),
                severity: r.severity.to_owned(),
                mode: r.mode.to_owned(),
                action: r.action.to_owned(),
                source: r.source.clone(),
            })
            .collect();
        info.policy_sources.clone_from(&self.policy_sources);
    }
}

/// Events per second over the samples of the last [`RATE_WINDOW`] (one sample per tick).
#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// Adds the running total `events` seen at `at`; returns the rate over the window the
    /// samples now span (zero until there are two).
    pub fn sample(&mut self, at: Instant, events: u64) -> (f64, Duration) {
        self.samples.push_back((at, events));
        while let Some(&(oldest, _)) = self.samples.front() {
            if at.duration_since(oldest) > RATE_WINDOW && self.samples.len() > 2 {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        let (Some(&(t0, n0)), Some(&(t1, n1))) = (self.samples.front(), self.samples.back()) else {
            return (0.0, Duration::ZERO);
        };
        let span = t1.duration_since(t0);
        if span.is_zero() {
            return (0.0, Duration::ZERO);
        }
        (n1.saturating_sub(n0) as f64 / span.as_secs_f64(), span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_averaged_over_the_last_minute_only() {
        let start = Instant::now();
        let mut rate = Rate::default();
        assert_eq!(rate.sample(start, 0), (0.0, Duration::ZERO));
        // 100 events/s for 30 s.
        let (per_s, window) = rate.sample(start + Duration::from_secs(30), 3000);
        assert_eq!((per_s, window), (100.0, Duration::from_secs(30)));
        // Then 10/s: after 90 s the first 30 s have left the window.
        for s in 31..=90 {
            rate.sample(start + Duration::from_secs(s), 3000 + 10 * (s - 30));
        }
        let (per_s, window) = rate.sample(start + Duration::from_secs(91), 3610);
        assert_eq!(window, Duration::from_secs(60));
        assert!((per_s - 10.0).abs() < 1e-9, "{per_s}");
    }

    #[test]
    fn fill_names_every_field() {
        let status = Status {
            events_per_second: 2.5,
            rate_window: Duration::from_secs(60),
            drops: vec![("ringbuf_full_exec", 3)],
            caches: vec![("process_cache_entries", 120)],
            exporters: vec![ExporterStatus {
                name: "output",
                state: "running",
                target: "stdout".into(),
                counters: vec![("events", 10)],
            }],
            rules: vec![RuleStatus {
                name: "r".into(),
                severity: "high",
                mode: "enforce",
                action: "kill",
                source: "a.yaml".into(),
            }],
            policy_sources: vec!["a.yaml".into()],
        };
        let mut info = proto::Info::default();
        status.fill(&mut info);
        assert_eq!(info.rate_window_seconds, 60);
        assert_eq!(info.drops.get("ringbuf_full_exec"), Some(&3));
        assert_eq!(info.caches.get("process_cache_entries"), Some(&120));
        assert_eq!(info.exporters[0].counters.get("events"), Some(&10));
        assert_eq!(info.rules[0].mode, "enforce");
        assert_eq!(info.policy_sources, ["a.yaml"]);
    }
}
