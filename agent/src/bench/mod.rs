//! `vigil bench`: benchmark commands that print numbers (they are not tests).

mod churn;
mod connect;
mod exec;
mod latency;
mod open;
mod peer;
mod report;
mod response;
mod response_events;
mod spawner;
mod storm;
mod stream;
mod syscall;
mod worker;

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
    /// A loopback TCP connect storm (connect, accept, close both ends), with no tracer, with
    /// Vigil and with libbpf-tools `tcpstates`: slowdown, kernel ns per connect, captured.
    Connect {
        #[arg(long, default_value_t = 20_000)]
        count: u32,
        /// Runs of each variant; medians are reported.
        #[arg(long, default_value_t = 5)]
        runs: u32,
    },
    /// open+close of a file in a watched folder, with no tracer, with Vigil's file sensor
    /// and with libbpf-tools `opensnoop -p`: slowdown, kernel ns per open, captured.
    Open {
        #[arg(long, default_value_t = 100_000)]
        count: u32,
        /// Runs of each variant; medians are reported.
        #[arg(long, default_value_t = 5)]
        runs: u32,
    },
    /// The storm process of `connect` and `open` (internal).
    #[command(hide = true)]
    StormWorker {
        #[arg(long, value_enum)]
        kind: worker::Kind,
        #[arg(long)]
        count: u32,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// A loop of a syscall the sensor does not select (getpid), with and without Vigil:
    /// the kernel ns per run of `sys_enter`/`sys_exit` on the filtered-out path.
    Syscalls {
        #[arg(long, default_value_t = 1_000_000)]
        count: u32,
    },
    /// Rules in enforce mode: a userspace `kill` and a kernel `kill_on_exec` on exec of copies
    /// of `sleep`, `count` children each, one at a time; p50/p90/p99/max from the exec to the
    /// process gone, the responder's latency, the delivery of the events.
    Response {
        #[arg(long, default_value_t = 200)]
        count: u32,
    },
    /// The process that spawns the children of `response` (internal).
    #[command(hide = true)]
    ResponseWorker {
        /// Spawned in turn, `count` children each.
        #[arg(long, required = true)]
        binary: Vec<PathBuf>,
        #[arg(long)]
        count: u32,
        #[arg(long)]
        timeout_ms: u64,
        #[arg(long)]
        max_gap_ms: u64,
        /// The children's arguments.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// A churn of short-lived processes (fork, exec, exit) generated in userspace and fed
    /// through the real pipeline (decode, process cache, enrichment, the default policy pack,
    /// the JSON exporter): throughput, CPU time per stage, memory.
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
        Storm::Connect { count, runs } => connect::run(count, runs).await,
        Storm::Open { count, runs } => open::run(count, runs).await,
        Storm::StormWorker { kind, count, file } => worker::serve(kind, count, file.as_deref()),
        Storm::Syscalls { count } => syscall::run(count).await,
        Storm::Response { count } => response::run(count).await,
        Storm::ResponseWorker {
            binary,
            count,
            timeout_ms,
            max_gap_ms,
            args,
        } => spawner::serve(&spawner::Plan {
            binaries: &binary,
            args: &args,
            count,
            timeout: std::time::Duration::from_millis(timeout_ms),
            max_gap: std::time::Duration::from_millis(max_gap_ms),
        }),
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

/// How long a storm took, and how much CPU time the storming thread itself used (user +
/// system; unlike wall time, not inflated by other load on a shared machine) when known.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub wall: std::time::Duration,
    pub cpu: Option<std::time::Duration>,
}

impl From<std::time::Duration> for Timing {
    fn from(wall: std::time::Duration) -> Self {
        Self { wall, cpu: None }
    }
}

/// User + system CPU time so far of this process (`libc::RUSAGE_SELF`) or of the calling
/// thread (`libc::RUSAGE_THREAD`); zero if it cannot be read.
pub(crate) fn cpu_time(who: libc::c_int) -> std::time::Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return std::time::Duration::ZERO;
    }
    let tv = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
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
