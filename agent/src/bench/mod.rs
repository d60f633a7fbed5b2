//! `vigil bench`: benchmark commands that print numbers (they are not tests).

mod churn;
mod exec;
mod peer;
mod syscall;

use std::path::PathBuf;

#[derive(Clone, Debug, clap::Subcommand)]
pub enum Storm {
    /// fork+exec of a tiny static binary, `count` times, serially, with and without Vigil;
    /// kernel ns per event from BPF statistics, captured/generated, slowdown.
    Exec {
        #[arg(long, default_value_t = 3000)]
        count: u32,
        /// Runs of each variant; medians are reported.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Binary to exec (default: busybox-static's `true`, else /bin/true).
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// A loop of a syscall the sensor does not select (getpid), with and without Vigil:
    /// the kernel ns per run of `sys_enter`/`sys_exit` on the filtered-out path.
    Syscalls {
        #[arg(long, default_value_t = 1_000_000)]
        count: u32,
    },
    /// A churn of short-lived processes (fork, exec, exit) generated in userspace and fed
    /// through the real pipeline (decode, process cache, JSON): throughput and memory.
    Churn {
        #[arg(long, default_value_t = 1_000_000)]
        count: u32,
        #[arg(long, default_value_t = 65_536)]
        max_entries: usize,
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        max_bytes: usize,
    },
}

pub async fn run(storm: Storm) -> anyhow::Result<()> {
    match storm {
        Storm::Exec {
            count,
            runs,
            binary,
        } => exec::run(count, runs, binary).await,
        Storm::Syscalls { count } => syscall::run(count).await,
        Storm::Churn {
            count,
            max_entries,
            max_bytes,
        } => {
            churn::run(count, max_entries, max_bytes);
            Ok(())
        }
    }
}

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
pub(crate) fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
