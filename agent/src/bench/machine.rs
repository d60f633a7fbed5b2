//! What the machine's CPUs did while a bench ran, from `/proc/stat`.
//!
//! On a VM the host can take a vCPU away (steal). That time inflates a bench's wall times
//! and its BPF statistics too: a program's run that the host interrupts counts the stolen
//! time. Other processes compete for the same CPUs. Each bench ends with this line, so its
//! figures can be judged: a run with a tenth of the CPUs' time stolen is not comparable with
//! one on a quiet host.

use std::fmt;

use procfs::{CpuTime, Current, CurrentSI, KernelStats, LoadAverage};

/// The node-wide CPU time counters at one moment, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticks {
    /// User, nice, system, irq and softirq (a guest's time is inside user).
    pub busy: u64,
    /// Idle and iowait.
    pub idle: u64,
    /// Taken by the hypervisor for something else.
    pub steal: u64,
}

impl From<&CpuTime> for Ticks {
    fn from(time: &CpuTime) -> Self {
        Self {
            busy: time.user
                + time.nice
                + time.system
                + time.irq.unwrap_or(0)
                + time.softirq.unwrap_or(0),
            idle: time.idle + time.iowait.unwrap_or(0),
            steal: time.steal.unwrap_or(0),
        }
    }
}

/// Shares of all CPUs' time between two samples (each in 0..=1, together 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Shares {
    pub busy: f64,
    pub idle: f64,
    pub steal: f64,
}

impl Shares {
    /// The shares from `before` to `after`; `None` when no tick passed (or the counters went
    /// backwards, which `/proc/stat` allows for iowait).
    pub(crate) fn between(before: Ticks, after: Ticks) -> Option<Self> {
        let busy = after.busy.checked_sub(before.busy)?;
        let idle = after.idle.saturating_sub(before.idle);
        let steal = after.steal.checked_sub(before.steal)?;
        let total = (busy + idle + steal) as f64;
        (total > 0.0).then(|| Self {
            busy: busy as f64 / total,
            idle: idle as f64 / total,
            steal: steal as f64 / total,
        })
    }
}

impl fmt::Display for Shares {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            out,
            "{:.1}% of the CPUs' time stolen by the host, {:.1}% busy, {:.1}% idle",
            100.0 * self.steal,
            100.0 * self.busy,
            100.0 * self.idle
        )
    }
}

/// A `/proc/stat` sample taken when a bench starts.
pub(crate) struct Watch {
    start: Option<Ticks>,
}

fn now() -> Option<(Ticks, usize)> {
    let stats = KernelStats::current().ok()?;
    Some((Ticks::from(&stats.total), stats.cpu_time.len()))
}

impl Watch {
    pub(crate) fn start() -> Self {
        Self {
            start: now().map(|(ticks, _)| ticks),
        }
    }

    /// The line that closes a bench's report.
    pub(crate) fn report(&self) -> String {
        let shares = self
            .start
            .zip(now())
            .and_then(|(before, (after, cpus))| Some((Shares::between(before, after)?, cpus)));
        let load = LoadAverage::current()
            .map(|load| format!("; load average {:.2} at the end", load.one))
            .unwrap_or_default();
        match shares {
            Some((shares, cpus)) => {
                format!("machine during the bench (/proc/stat, {cpus} CPUs): {shares}{load}")
            }
            None => format!("machine during the bench: /proc/stat unreadable{load}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_of_the_ticks_that_passed() {
        let before = Ticks {
            busy: 1_000,
            idle: 5_000,
            steal: 100,
        };
        let after = Ticks {
            busy: 1_600,
            idle: 5_300,
            steal: 200,
        };
        let shares = Shares::between(before, after).unwrap();
        assert_eq!(
            (shares.busy, shares.idle, shares.steal),
            (0.6, 0.3, 0.1),
            "{shares:?}"
        );
        assert_eq!(
            shares.to_string(),
            "10.0% of the CPUs' time stolen by the host, 60.0% busy, 30.0% idle"
        );
    }

    #[test]
    fn no_ticks_or_counters_going_back_give_no_shares() {
        let at = Ticks {
            busy: 10,
            idle: 10,
            steal: 10,
        };
        assert_eq!(Shares::between(at, at), None);
        let back = Ticks { busy: 9, ..at };
        assert_eq!(Shares::between(at, back), None);
        // Only iowait may go back: it is clamped, not refused.
        let idle_back = Ticks {
            busy: 20,
            idle: 5,
            steal: 10,
        };
        assert_eq!(Shares::between(at, idle_back).map(|s| s.busy), Some(1.0));
    }

    #[test]
    fn this_machine_has_a_reading() {
        let watch = Watch::start();
        // Let a few ticks pass (USER_HZ is 100).
        std::thread::sleep(std::time::Duration::from_millis(50));
        let line = watch.report();
        assert!(
            line.starts_with("machine during the bench (/proc/stat, "),
            "{line}"
        );
        assert!(
            line.contains("stolen by the host") && line.contains("load average"),
            "{line}"
        );
    }
}
