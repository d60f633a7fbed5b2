//! `vigil bench sustained`: the full agent (the embedded default config, as `vigil run` with no
//! file, plus a temporary folder added to the watched prefixes) first idle, then under an open
//! storm in that folder for a minute, as fast as the storm's worker goes (or at `--rate`).
//!
//! Idle: this process's CPU time over the window (the agent is all it runs), as a share of
//! one core, and its RSS sampled every second. The node's own activity (other processes'
//! execs, watched files) flows through the agent meanwhile: idle means no storm, not no events.
//!
//! Under load: generated is the worker's own count of successful opens, checked against
//! `perf stat`'s count of its `openat` calls; captured is the agent's file events for the
//! storm's file; every loss is printed by cause (the loss events' counts) with the agent's
//! total of lost events.

use std::{path::PathBuf, time::Duration, time::Instant};

use anyhow::Context as _;

use super::{
    storm::{Counter, PerfStat, Target},
    worker::{Kind, Pace, Worker},
};
use crate::{config::Config, runtime::Agent};

/// RSS samples of this process, KiB: (first, last, max).
#[derive(Default)]
struct RssSamples {
    first: u64,
    last: u64,
    max: u64,
}

impl RssSamples {
    fn add(&mut self, kib: u64) {
        if self.first == 0 {
            self.first = kib;
        }
        self.last = kib;
        self.max = self.max.max(kib);
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The embedded default config with `dir` watched as well.
fn config(dir: &std::path::Path) -> anyhow::Result<Config> {
    let mut config = Config::load(None).context("the embedded default config")?;
    config.files.watch.push(format!("{}/", dir.display()));
    Ok(config)
}

async fn idle(config: &Config, seconds: u64) -> anyhow::Result<()> {
    let target = Target {
        pid: 0,
        port: 0,
        file: None,
    };
    let (exporter, _) = Counter::new(target, |_, _| Some(0), 1);
    super::reset_peak_rss();
    let cpu_start = super::cpu_time(libc::RUSAGE_SELF);
    let agent = Agent::start(config, Box::new(exporter)).context("starting Vigil")?;
    // Start-up (the /proc walk, policy compilation) is reported on its own.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let startup_cpu = super::cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu_start);
    let mut rss = RssSamples::default();
    let (start, cpu0) = (Instant::now(), super::cpu_time(libc::RUSAGE_SELF));
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss.add(super::status_kib("VmRSS"));
    }
    let cpu = super::cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu0);
    let wall = start.elapsed();
    let peak = super::status_kib("VmHWM");
    let summary = agent.stop().await;
    println!(
        "idle, {seconds} s (embedded default config, no storm; the shared node's own activity \
         flows through):"
    );
    println!(
        "  CPU {:.3}% of a core ({:.0} ms over {:.1} s; target <= 0.5%); start-up {:.0} ms in \
         its first 2 s",
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        cpu.as_secs_f64() * 1e3,
        wall.as_secs_f64(),
        startup_cpu.as_secs_f64() * 1e3
    );
    println!(
        "  RSS {:.1} MiB after start-up, {:.1} MiB at the end, {:.1} MiB max of the samples, \
         {:.1} MiB peak (VmHWM, start-up included; target <= 64 MiB)",
        mib(rss.first),
        mib(rss.last),
        mib(rss.max),
        mib(peak)
    );
    println!(
        "  events through the pipeline meanwhile {}, lost {}",
        summary.events, summary.lost
    );
    Ok(())
}

/// `seconds` of open storm with no tracer: the generator's own rate.
fn baseline(file: &PathBuf, seconds: f64, rate: Option<u32>) -> anyhow::Result<f64> {
    let pace = Pace {
        count: u64::MAX,
        seconds: Some(seconds),
        rate,
    };
    let (timing, n) = Worker::spawn_paced(Kind::Open, pace, Some(file))?.go_counted()?;
    Ok(n as f64 / timing.wall.as_secs_f64())
}

async fn storm(
    config: &Config,
    file: PathBuf,
    seconds: u64,
    rate: Option<u32>,
) -> anyhow::Result<()> {
    let pace = Pace {
        count: u64::MAX,
        seconds: Some(seconds as f64),
        rate,
    };
    let worker = Worker::spawn_paced(Kind::Open, pace, Some(&file))?;
    let target = Target {
        pid: worker.pid,
        port: 0,
        file: Some(file),
    };
    let (exporter, counts) = Counter::new(target, super::open::classify, 1);
    super::reset_peak_rss();
    let agent = Agent::start(config, Box::new(exporter)).context("starting Vigil")?;
    let perf = if super::storm::perf_installed() {
        Some(tokio::task::block_in_place(|| {
            PerfStat::start("syscalls:sys_enter_openat", worker.pid)
        })?)
    } else {
        None
    };
    let cpu0 = super::cpu_time(libc::RUSAGE_SELF);
    let (timing, generated) = tokio::task::spawn_blocking(move || worker.go_counted()).await??;
    let perf_counts = match perf {
        Some(perf) => Some(tokio::task::block_in_place(|| perf.finish())?),
        None => None,
    };
    // What is still in the ring and the queue drains on stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let summary = agent.stop().await;
    let cpu = super::cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu0);
    let peak = super::status_kib("VmHWM");
    let counts = std::mem::take(&mut *counts.lock().unwrap_or_else(|e| e.into_inner()));
    let captured = counts.classes.first().copied().unwrap_or(0);
    let wall = timing.wall.as_secs_f64();
    println!(
        "sustained open storm, {seconds} s, {} (full agent: embedded default config + the \
         storm's folder watched, JSON rendering of every event):",
        rate.map_or_else(
            || "as fast as the worker goes".to_owned(),
            |r| format!("paced at {r}/s")
        )
    );
    println!(
        "  generated {generated} opens in {wall:.1} s ({:.0}/s), the worker's count",
        generated as f64 / wall
    );
    if let Some(counts) = perf_counts {
        for (event, n) in counts {
            println!("  ground truth: perf stat {event} {n}");
        }
    }
    println!(
        "  captured {captured} / {generated} ({:.4}%), missing {}",
        captured as f64 / generated.max(1) as f64 * 100.0,
        generated.saturating_sub(captured)
    );
    println!(
        "  lost (the agent's total, all events of the node) {}; by cause: {}",
        summary.lost,
        counts.causes()
    );
    println!(
        "  agent CPU {:.1} s ({:.0}% of a core over the storm); peak RSS {:.1} MiB",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() / wall * 100.0,
        mib(peak)
    );
    println!(
        "  events through the pipeline {} (the storm's and the node's)",
        summary.events
    );
    Ok(())
}

pub async fn run(seconds: u64, idle_seconds: u64, rate: Option<u32>) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-bench-sustained-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("target");
    let config = config(&dir)?;
    let result = async {
        if idle_seconds > 0 {
            idle(&config, idle_seconds).await?;
        }
        let base = tokio::task::block_in_place(|| baseline(&file, 5.0, rate))?;
        println!("no tracer, 5 s: the worker opens {base:.0}/s");
        storm(&config, file.clone(), seconds, rate).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
