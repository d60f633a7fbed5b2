//! `vigil bench`: benchmark commands that print numbers (they are not tests).

mod churn;
mod connect;
mod exec;
mod latency;
mod machine;
mod open;
mod outage;
mod peer;
mod report;
mod response;
mod response_events;
mod spawner;
mod storm;
mod stream;
mod sustained;
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
        count: u64,
        #[arg(long)]
        file: Option<PathBuf>,
        /// Stop after this long, whatever the count.
        #[arg(long)]
        seconds: Option<f64>,
        /// At most this many iterations per second.
        #[arg(long)]
        rate: Option<u32>,
    },
    /// The full agent (embedded default config plus a watched temporary folder) under an open
    /// storm as fast as the generator goes for `seconds`: generated (the worker's count and
    /// `perf stat`), captured, every loss by cause; before it, the same agent idle for
    /// `idle_seconds`: CPU (% of a core) and RSS.
    Sustained {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 60)]
        idle_seconds: u64,
        /// Opens per second (default: as fast as the worker goes).
        #[arg(long)]
        rate: Option<u32>,
    },
    /// Forwarding through a collector outage under load: an open storm at `rate` per second
    /// with every event forwarded to `vigil collect`, which is killed (SIGKILL) after
    /// `before_seconds`, restarted `outage_seconds` later, and given `after_seconds` more of
    /// storm; then every sequence number at the collector is checked (once each, none
    /// missing) and the spool's peak size printed.
    Outage {
        #[arg(long, default_value_t = 60)]
        outage_seconds: u64,
        #[arg(long, default_value_t = 10)]
        before_seconds: u64,
        #[arg(long, default_value_t = 10)]
        after_seconds: u64,
        #[arg(long, default_value_t = 2000)]
        rate: u32,
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
    /// A stream generated in userspace, short-lived processes (fork, exec, exit) or with
    /// `--mix service` a service node's, fed through the real pipeline (decode, process
    /// cache, enrichment, the default policy pack, the JSON exporter): throughput, CPU time
    /// per stage, memory.
    Churn {
        /// Lifecycles of the churn; units of 20 records of the service mix.
        #[arg(long, default_value_t = 1_000_000)]
        count: u32,
        /// The stream: short-lived processes only (the worst case), or a service node's mix.
        #[arg(long, value_enum, default_value_t = stream::Mix::Churn)]
        mix: stream::Mix,
        #[arg(long, default_value_t = 65_536)]
        max_entries: usize,
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        max_bytes: usize,
    },
}

pub async fn run(storm: Storm) -> anyhow::Result<()> {
    // Every bench ends with what the machine's CPUs did meanwhile; not the internal workers,
    // whose stdout their parent bench reads.
    let internal = matches!(
        storm,
        Storm::StormWorker { .. } | Storm::ResponseWorker { .. }
    );
    let watch = (!internal).then(machine::Watch::start);
    run_storm(storm).await?;
    if let Some(watch) = watch {
        println!("{}", watch.report());
    }
    Ok(())
}

async fn run_storm(storm: Storm) -> anyhow::Result<()> {
    match storm {
        Storm::Exec {
            count,
            runs,
            binary,
        } => exec::run(count, runs, binary).await,
        Storm::Connect { count, runs } => connect::run(count, runs).await,
        Storm::Open { count, runs } => open::run(count, runs).await,
        Storm::StormWorker {
            kind,
            count,
            file,
            seconds,
            rate,
        } => worker::serve(
            kind,
            worker::Pace {
                count,
                seconds,
                rate,
            },
            file.as_deref(),
        ),
        Storm::Sustained {
            seconds,
            idle_seconds,
            rate,
        } => sustained::run(seconds, idle_seconds, rate).await,
        Storm::Outage {
            outage_seconds,
            before_seconds,
            after_seconds,
            rate,
        } => {
            outage::run(outage::Plan {
                before: std::time::Duration::from_secs(before_seconds),
                outage: std::time::Duration::from_secs(outage_seconds),
                after: std::time::Duration::from_secs(after_seconds),
                rate,
            })
            .await
        }
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
            mix,
            max_entries,
            max_bytes,
        } => {
            churn::run(mix, count, max_entries, max_bytes);
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

/// Per class, the smaller of two runs' counts: what a tracer captured in the worse of them.
pub(crate) fn worse(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| *x.min(y)).collect()
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
    status_field_kib(
        &std::fs::read_to_string("/proc/self/status").unwrap_or_default(),
        field,
    )
}

/// A field of /proc/PID/status in KiB (zero when the process is gone).
pub(crate) fn status_kib_of(pid: u32, field: &str) -> u64 {
    status_field_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default(),
        field,
    )
}

fn status_field_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets this process's peak resident memory (`VmHWM`) to its current RSS, so that a later
/// read gives the peak of what ran in between (`/proc/self/clear_refs`, Linux 4.0+).
pub(crate) fn reset_peak_rss() {
    if let Err(error) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::warn!(%error, "Cannot reset the peak RSS; it covers the whole bench run.");
    }
}
