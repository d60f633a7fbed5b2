//! `vigil bench syscalls`: what the syscall sensor costs a syscall it does not capture (the
//! common case: `sys_enter`/`sys_exit` run on every syscall of the node). A loop of
//! `getpid` (never selected) runs without Vigil, with it, and with it and BPF run-time
//! statistics on, which give the kernel cost per run of each program.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::{config::Config, event::Event, export::Exporter, runtime::Agent, syscall::Arch};

/// Discards events: only the kernel side is measured here.
struct Discard;

impl Exporter for Discard {
    fn export(&mut self, _events: &[Event]) -> std::io::Result<()> {
        Ok(())
    }
}

fn getpid_loop(count: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..count {
        // SAFETY: getpid takes no arguments and cannot fail; called directly so that no
        // library cache skips the syscall.
        unsafe { libc::syscall(libc::SYS_getpid) };
    }
    start.elapsed()
}

pub async fn run(count: u32) -> anyhow::Result<()> {
    let count = count.max(1);
    let base = tokio::task::spawn_blocking(move || getpid_loop(count)).await?;
    let agent = Agent::start(&Config::default(), Box::new(Discard)).context("starting Vigil")?;
    // As deployed first (BPF statistics off), then again with them on for the kernel ns.
    let plain = tokio::task::spawn_blocking(move || getpid_loop(count)).await?;
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("enabling BPF run-time statistics")?;
    let stats = |agent: &Agent| {
        agent
            .sensor()
            .map(|s| s.program_stats())
            .unwrap_or_default()
    };
    let before = stats(&agent);
    let traced = tokio::task::spawn_blocking(move || getpid_loop(count)).await?;
    let after = stats(&agent);
    // A selected syscall without strings (personality query), in a child: the agent's own
    // syscalls are never captured.
    let selected = count.min(200_000);
    let nr = Arch::NATIVE
        .number("personality")
        .context("personality has a number")?;
    let script = format!(
        "import ctypes\nl = ctypes.CDLL(None)\nf = l.syscall\nfor _ in range({selected}): f({nr}, 0xffffffff)\n"
    );
    let child = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", &script])
            .status()
    });
    let status = child.await?.context("running python3")?;
    anyhow::ensure!(status.success(), "python3 failed: {status}");
    let after_selected = stats(&agent);
    let summary = agent.stop().await;
    let per_call = |d: Duration| d.as_nanos() as f64 / f64::from(count);
    println!("getpid x {count} (not selected), wall ns per call:");
    println!("  no tracer  {:.0} ns", per_call(base));
    println!("  vigil      {:.0} ns", per_call(plain));
    println!(
        "  vigil      {:.0} ns with BPF statistics on",
        per_call(traced)
    );
    println!("kernel ns per run (every syscall of the node during the loop):");
    for ((name, t1, n1), (_, t0, n0)) in after.iter().zip(&before) {
        if !name.starts_with("syscall_") {
            continue;
        }
        let runs = n1.saturating_sub(*n0);
        let ns = t1.saturating_sub(*t0).as_nanos() as f64 / runs.max(1) as f64;
        println!("  {name:<14} {ns:.1} ns ({runs} runs)");
    }
    // Every run in the window costs the filtered-out price except the selected calls.
    let mut selected_ns = 0.0;
    for (((name, t2, n2), (_, t1, n1)), (_, t0, n0)) in
        after_selected.iter().zip(&after).zip(&before)
    {
        if !name.starts_with("syscall_") {
            continue;
        }
        let filtered =
            t1.saturating_sub(*t0).as_nanos() as f64 / n1.saturating_sub(*n0).max(1) as f64;
        let runs = n2.saturating_sub(*n1) as f64;
        let time = t2.saturating_sub(*t1).as_nanos() as f64;
        let ns = (time - filtered * (runs - f64::from(selected)).max(0.0)) / f64::from(selected);
        println!("  {name:<14} {ns:.0} ns per selected call (personality x {selected}, estimated)");
        selected_ns += ns;
    }
    println!(
        "selected call, enter + exit: {selected_ns:.0} ns; syscall records submitted {}, lost {}",
        summary.submitted(vigil_common::stats::KernelCounter::SubmittedSyscall),
        summary.lost
    );
    Ok(())
}
