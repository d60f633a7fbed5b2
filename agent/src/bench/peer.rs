//! A peer tracer run on the same storm, for side-by-side figures: Debian's libbpf-tools
//! `execsnoop` (CO-RE, a ring/perf buffer event per exec, printed by a C consumer).
//!
//! Its kernel cost comes from the same BPF run-time statistics, summed over the programs it
//! loaded (found as the programs that appeared after it started); what it captured is counted
//! from its own output (lines whose PPID is this process).

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

pub const EXECSNOOP: &str = "/usr/sbin/execsnoop";

pub struct PeerRun {
    pub wall: Duration,
    pub captured: u64,
    /// Kernel ns per storm iteration, all of its programs together.
    pub kernel_ns_per_exec: f64,
}

fn program_ids() -> HashSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .collect()
}

/// Total (run time, run count) of the programs in `ids`.
fn run_totals(ids: &HashSet<u32>) -> (Duration, u64) {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| ids.contains(&p.id()))
        .fold((Duration::ZERO, 0), |(t, n), p| {
            (t + p.run_time(), n + p.run_count())
        })
}

/// Runs `storm` while execsnoop traces it. BPF statistics must be enabled by the caller.
pub fn execsnoop_run(
    count: u32,
    storm: impl FnOnce() -> anyhow::Result<Duration>,
) -> anyhow::Result<PeerRun> {
    let before = program_ids();
    let mut child = Command::new(EXECSNOOP)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {EXECSNOOP}"))?;
    let stdout = child.stdout.take().context("execsnoop's stdout")?;
    let me = std::process::id().to_string();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.split_whitespace().nth(2) == Some(me.as_str()))
            .count() as u64
    });
    // Wait until its programs are loaded (they appear in the kernel's list), then a moment
    // for the attach.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ids = loop {
        let new: HashSet<u32> = program_ids().difference(&before).copied().collect();
        if !new.is_empty() {
            break new;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "execsnoop loaded no program in 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    let (t0, _) = run_totals(&ids);
    let wall = storm()?;
    let (t1, _) = run_totals(&ids);
    std::thread::sleep(Duration::from_millis(300));
    // SIGINT: execsnoop flushes its output and exits cleanly on it.
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    child.wait().context("waiting for execsnoop")?;
    let captured = reader.join().unwrap_or(0);
    Ok(PeerRun {
        wall,
        captured,
        kernel_ns_per_exec: (t1 - t0).as_nanos() as f64 / f64::from(count.max(1)),
    })
}

pub fn available() -> bool {
    Path::new(EXECSNOOP).exists()
}
