//! `vigil bench exec`: the cost of Vigil on an exec storm, measured against no tracer in the
//! same run. Prints numbers; it is a benchmark, not a test.
//!
//! Kernel cost per event comes from BPF run-time statistics (enabled through
//! `BPF_ENABLE_STATS` for the duration, restored when the fd closes); captured/generated
//! compares the events the full pipeline produced for the storm's own children with the
//! number of children spawned.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::peer;
use crate::{
    clock::BootClock,
    config::Config,
    event::{Detail, Event},
    export::{Exporter, json::JsonRenderer},
    runtime::Agent,
};

/// Counts exec events whose parent is this process, rendering every event as JSON on the way
/// so the whole pipeline's cost is paid.
struct StormCounter {
    parent: u32,
    execs: Arc<AtomicU64>,
    renderer: JsonRenderer,
    buf: Vec<u8>,
}

impl Exporter for StormCounter {
    fn export(&mut self, events: &[Event]) -> std::io::Result<()> {
        self.buf.clear();
        for event in events {
            self.renderer.render(event, &mut self.buf);
            if let (Detail::Exec(exec), true) = (&event.detail, event.process.is_some()) {
                if exec.parent.tgid == self.parent {
                    self.execs.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}

fn default_binary() -> (PathBuf, Vec<&'static str>) {
    for busybox in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(busybox).exists() {
            return (busybox.into(), vec!["true"]);
        }
    }
    ("/bin/true".into(), vec![])
}

fn storm(binary: &Path, args: &[&str], count: u32) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..count {
        let status = Command::new(binary)
            .args(args)
            .status()
            .with_context(|| format!("running {}", binary.display()))?;
        anyhow::ensure!(status.success(), "{} failed: {status}", binary.display());
    }
    Ok(start.elapsed())
}

pub(super) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

struct RunResult {
    base: Duration,
    traced: Duration,
    captured: u64,
    lost: u64,
    /// (program, ns per run, runs)
    programs: Vec<(&'static str, f64, u64)>,
    /// Vigil's kernel ns per storm iteration, all programs together.
    kernel_ns_per_exec: f64,
    /// CPU time of this process (the agent) from the storm's start until it had stopped.
    cpu: Duration,
    /// Peak resident memory of this process (the agent) from its start until it stopped, KiB.
    peak_rss_kib: u64,
    /// One per [`PEERS`]; `None` when the tool is not installed.
    peers: Vec<Option<peer::PeerRun>>,
}

/// (tool, name) of the peers, run in turn on the same storm.
const PEERS: &[(&str, &str)] = &[(peer::EXECSNOOP, "execsnoop"), (peer::BPFTRACE, "bpftrace")];

async fn one_run(binary: &Path, args: &[&str], count: u32) -> anyhow::Result<RunResult> {
    let (b, a) = (
        binary.to_owned(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let base = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        storm(&b, &a, count)
    })
    .await??;

    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("enabling BPF run-time statistics")?;
    let execs = Arc::new(AtomicU64::new(0));
    let exporter = StormCounter {
        parent: std::process::id(),
        execs: execs.clone(),
        renderer: JsonRenderer::new("bench".into(), BootClock::now()),
        buf: Vec::with_capacity(1 << 20),
    };
    super::reset_peak_rss();
    let agent = Agent::start(&Config::default(), Box::new(exporter)).context("starting Vigil")?;
    let before = agent
        .sensor()
        .map(|s| s.program_stats())
        .unwrap_or_default();
    let cpu_before = super::cpu_time(libc::RUSAGE_SELF);
    let (b, a) = (
        binary.to_owned(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let traced = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        storm(&b, &a, count)
    })
    .await??;
    let after = agent
        .sensor()
        .map(|s| s.program_stats())
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let summary = agent.stop().await;
    let cpu = super::cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu_before);
    let peak_rss_kib = super::status_kib("VmHWM");
    let programs = after
        .iter()
        .zip(&before)
        .map(|((name, t1, n1), (_, t0, n0))| {
            let runs = n1.saturating_sub(*n0);
            let ns = t1.saturating_sub(*t0).as_nanos() as f64 / runs.max(1) as f64;
            (*name, ns, runs)
        })
        .collect::<Vec<_>>();
    // The process programs only: the syscall programs run on every syscall and are reported
    // per program above (and by `vigil bench syscalls`).
    let total_ns: f64 = after
        .iter()
        .zip(&before)
        .filter(|((name, _, _), _)| name.starts_with("process_"))
        .map(|((_, t1, _), (_, t0, _))| t1.saturating_sub(*t0).as_nanos() as f64)
        .sum();
    let mut peers = Vec::new();
    for &(tool, _) in PEERS {
        if !peer::available(tool) {
            peers.push(None);
            continue;
        }
        let (b, a) = (
            binary.to_owned(),
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        let parent = std::process::id();
        let (tool_args, children): (Vec<String>, super::storm::LineClassifier) =
            if tool == peer::BPFTRACE {
                (
                    peer::bpftrace_exec(),
                    Box::new(peer::bpftrace_exec_child_of(parent)),
                )
            } else {
                (Vec::new(), Box::new(peer::execsnoop_child_of(parent)))
            };
        peers.push(Some(
            tokio::task::spawn_blocking(move || {
                peer::run(tool, &tool_args, count, 1, children, || {
                    let a: Vec<&str> = a.iter().map(String::as_str).collect();
                    storm(&b, &a, count).map(super::Timing::from)
                })
            })
            .await??,
        ));
    }
    Ok(RunResult {
        base,
        traced,
        captured: execs.load(Ordering::Relaxed),
        lost: summary.lost,
        programs,
        kernel_ns_per_exec: total_ns / f64::from(count.max(1)),
        cpu,
        peak_rss_kib,
        peers,
    })
}

pub async fn run(count: u32, runs: u32, binary: Option<PathBuf>) -> anyhow::Result<()> {
    let (binary, args) = match binary {
        Some(b) => (b, vec![]),
        None => default_binary(),
    };
    println!(
        "exec storm: {count} x fork+exec of {} {}, {runs} runs per variant (medians)",
        binary.display(),
        args.join(" ")
    );
    let mut results = Vec::new();
    for run in 0..runs {
        let r = one_run(&binary, &args, count).await?;
        println!(
            "  run {}: no tracer {:.3} s, vigil {:.3} s, captured {}/{}, lost {}",
            run + 1,
            r.base.as_secs_f64(),
            r.traced.as_secs_f64(),
            r.captured,
            count,
            r.lost
        );
        for (&(_, name), p) in PEERS.iter().zip(&r.peers) {
            if let Some(p) = p {
                println!(
                    "         {name} {:.3} s, captured {}/{}, lost {}",
                    p.storm.wall.as_secs_f64(),
                    p.captured[0],
                    count,
                    p.lost
                );
            }
        }
        results.push(r);
    }
    let mut base: Vec<f64> = results.iter().map(|r| r.base.as_secs_f64()).collect();
    let mut traced: Vec<f64> = results.iter().map(|r| r.traced.as_secs_f64()).collect();
    let mut ratio: Vec<f64> = results
        .iter()
        .map(|r| r.traced.as_secs_f64() / r.base.as_secs_f64())
        .collect();
    let captured_min = results.iter().map(|r| r.captured).min().unwrap_or(0);
    let lost_max = results.iter().map(|r| r.lost).max().unwrap_or(0);
    println!();
    println!(
        "no tracer wall           {:.3} s (median)",
        median(&mut base)
    );
    println!(
        "vigil wall               {:.3} s (median)",
        median(&mut traced)
    );
    println!(
        "slowdown ratio           {:.3} (median of per-run ratios)",
        median(&mut ratio)
    );
    println!("captured/generated       {captured_min}/{count} (worst run), lost {lost_max}");
    if let Some(first) = results.first() {
        for (i, (name, _, _)) in first.programs.iter().enumerate() {
            let mut ns: Vec<f64> = results
                .iter()
                .filter_map(|r| r.programs.get(i))
                .map(|p| p.1)
                .collect();
            let runs = results
                .iter()
                .filter_map(|r| r.programs.get(i))
                .map(|p| p.2)
                .max()
                .unwrap_or(0);
            println!(
                "kernel ns/event {name:<13} {:.0} ns (median; {runs} runs in the last window)",
                median(&mut ns)
            );
        }
    }
    let mut vigil_total: Vec<f64> = results.iter().map(|r| r.kernel_ns_per_exec).collect();
    let vigil_total = median(&mut vigil_total);
    println!("kernel ns per exec, vigil  {vigil_total:.0} ns (exec + fork + exit programs)");
    let mut cpu: Vec<f64> = results.iter().map(|r| r.cpu.as_secs_f64()).collect();
    let mut rss: Vec<f64> = results.iter().map(|r| r.peak_rss_kib as f64).collect();
    println!(
        "vigil process CPU         {:.0} ms (median; storm start to agent stopped), peak RSS {:.1} MiB",
        median(&mut cpu) * 1e3,
        median(&mut rss) / 1024.0
    );
    for (i, &(tool, name)) in PEERS.iter().enumerate() {
        let peers: Vec<(&RunResult, &peer::PeerRun)> = results
            .iter()
            .filter_map(|r| Some((r, r.peers.get(i)?.as_ref()?)))
            .collect();
        if peers.is_empty() {
            println!("peer: {tool} not installed (Debian package); no side-by-side figures");
            continue;
        }
        let med = |f: &dyn Fn(&RunResult, &peer::PeerRun) -> f64| {
            let mut v: Vec<f64> = peers.iter().map(|(r, p)| f(r, p)).collect();
            median(&mut v)
        };
        let peer_ns = med(&|_, p| p.kernel_ns_per_event);
        let captured = peers.iter().map(|(_, p)| p.captured[0]).min().unwrap_or(0);
        let lost = peers.iter().map(|(_, p)| p.lost).max().unwrap_or(0);
        println!("kernel ns per exec, {name}  {peer_ns:.0} ns (all its programs)");
        println!(
            "{name} slowdown ratio  {:.3}, captured/generated {captured}/{count} (worst run), \
             it reported {lost} lost",
            med(&|r, p| p.storm.wall.as_secs_f64() / r.base.as_secs_f64())
        );
        println!(
            "{name} process CPU {:.0} ms, peak RSS {:.1} MiB (medians)",
            med(&|_, p| p.cpu.as_secs_f64()) * 1e3,
            med(&|_, p| p.peak_rss_kib as f64) / 1024.0
        );
        println!(
            "vigil / {name}: kernel cost per exec {:.2}, wall {:.2} (medians of same-run ratios)",
            med(&|r, p| r.kernel_ns_per_exec / p.kernel_ns_per_event),
            med(&|r, p| r.traced.as_secs_f64() / p.storm.wall.as_secs_f64())
        );
    }
    Ok(())
}
