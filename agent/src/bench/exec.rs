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
    peer: Option<peer::PeerRun>,
}

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
    let agent = Agent::start(&Config::default(), Box::new(exporter)).context("starting Vigil")?;
    let before = agent
        .sensor()
        .map(|s| s.program_stats())
        .unwrap_or_default();
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
    let peer = if peer::available(peer::EXECSNOOP) {
        let (b, a) = (
            binary.to_owned(),
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        let children = peer::execsnoop_child_of(std::process::id());
        Some(
            tokio::task::spawn_blocking(move || {
                peer::run(peer::EXECSNOOP, &[], count, 1, children, || {
                    let a: Vec<&str> = a.iter().map(String::as_str).collect();
                    storm(&b, &a, count).map(super::Timing::from)
                })
            })
            .await??,
        )
    } else {
        None
    };
    Ok(RunResult {
        base,
        traced,
        captured: execs.load(Ordering::Relaxed),
        lost: summary.lost,
        programs,
        kernel_ns_per_exec: total_ns / f64::from(count.max(1)),
        peer,
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
        if let Some(p) = &r.peer {
            println!(
                "         execsnoop {:.3} s, captured {}/{}, lost {}",
                p.storm.wall.as_secs_f64(),
                p.captured[0],
                count,
                p.lost
            );
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
    let peers: Vec<&peer::PeerRun> = results.iter().filter_map(|r| r.peer.as_ref()).collect();
    if peers.is_empty() {
        println!(
            "peer: {} not installed (Debian libbpf-tools); no side-by-side figures",
            peer::EXECSNOOP
        );
        return Ok(());
    }
    let mut peer_ns: Vec<f64> = peers.iter().map(|p| p.kernel_ns_per_event).collect();
    let peer_ns = median(&mut peer_ns);
    let mut peer_ratio: Vec<f64> = results
        .iter()
        .filter_map(|r| Some(r.peer.as_ref()?.storm.wall.as_secs_f64() / r.base.as_secs_f64()))
        .collect();
    let peer_captured = peers.iter().map(|p| p.captured[0]).min().unwrap_or(0);
    println!("kernel ns per exec, execsnoop  {peer_ns:.0} ns (all its programs)");
    println!(
        "execsnoop slowdown ratio  {:.3}, captured/generated {peer_captured}/{count} (worst run)",
        median(&mut peer_ratio)
    );
    println!(
        "vigil / execsnoop kernel cost per exec  {:.2}",
        vigil_total / peer_ns
    );
    Ok(())
}
