//! Run time and run count of the sensor's programs, from their fdinfo. The kernel counts
//! only while BPF statistics are on (`kernel.bpf_stats_enabled`, or a `BPF_ENABLE_STATS`
//! fd such as `vigil bench` holds); the metrics show them then, and not as misleading zeros.

use std::{os::fd::AsFd, time::Duration};

use aya::programs::ProgramFd;

use super::fdinfo;

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// One program's totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramRun {
    pub name: &'static str,
    pub run_time: Duration,
    pub runs: u64,
}

/// Duplicated fds of the attached programs, so that the pipeline task can read them while
/// the sensor is owned by the supervisor.
#[derive(Debug, Default)]
pub struct ProgramRuns {
    programs: Vec<(&'static str, ProgramFd)>,
}

impl ProgramRuns {
    pub fn new(programs: Vec<(&'static str, ProgramFd)>) -> Self {
        Self { programs }
    }

    /// The totals, when statistics are on or have counted something; `None` otherwise.
    pub fn sample(&self) -> Option<Vec<ProgramRun>> {
        let runs: Vec<ProgramRun> = self
            .programs
            .iter()
            .filter_map(|(name, fd)| {
                let info = fdinfo::read(fd.as_fd()).ok()?;
                Some(ProgramRun {
                    name,
                    run_time: Duration::from_nanos(fdinfo::field(&info, "run_time_ns")?),
                    runs: fdinfo::field(&info, "run_cnt")?,
                })
            })
            .collect();
        let counted = runs.iter().any(|r| r.runs > 0);
        (counted || stats_enabled()).then_some(runs)
    }
}

fn stats_enabled() -> bool {
    std::fs::read_to_string(STATS_SYSCTL).is_ok_and(|v| v.trim() == "1")
}
