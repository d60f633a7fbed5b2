//! `vigil bench response`: how long rules in `mode: enforce` take to act, with the real agent
//! in this process and a policy set of two rules written to a temporary directory. Prints
//! numbers; it is a benchmark, not a test.
//!
//! - A userspace `kill` on exec of a copy of `sleep`: a worker process spawns it `count`
//!   times, one at a time (`sleep 30`, each killed before the next starts). From the exec
//!   event's kernel time to the exit event's (the process is gone) and to the worker's reaping
//!   it, and the finding's own `latency_ns` (the responder thread: match to kill done).
//! - A kernel `kill_on_exec` of another copy: spawn to reaped in the worker, against an
//!   allowed third copy (`sleep 0`, the baseline), and from the kernel's record to the
//!   enforcement event reaching the exporter.
//!
//! Enforcement is pinned under a private bpffs directory with its rule record in the temporary
//! directory; both are cleared at the end, also on error.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    latency::{Percentiles, human},
    response_events::{Collector, Role, Seen, SeenMap},
    spawner::{self, Child, End, Plan},
};
use crate::{config::Config, enforce::Layout, policy::Status, runtime::Agent};

const KILL_RULE: &str = "bench-response-kill";
const DENY_RULE: &str = "bench-response-kill-on-exec";
/// How long a child may live before the worker gives up on the agent killing it.
const CHILD_TIMEOUT: Duration = Duration::from_secs(5);
const SIGKILL: i32 = 9;
/// The longest random pause before a spawn: one period of the responder's drain timer, a
/// multiple of the ring buffer's poll interval, so that execs fall at any point of both.
const MAX_GAP: Duration = crate::response::worker::DRAIN_INTERVAL;

/// The temporary directory, the copies of `sleep` and the private enforcement layout;
/// cleared on drop.
struct Scratch {
    dir: PathBuf,
    layout: Layout,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.layout.bpffs_dir.exists() {
            if let Err(error) = crate::enforce::clear(&self.layout) {
                tracing::error!(%error, dir = %self.layout.bpffs_dir.display(), "Clearing the bench's enforcement failed.");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("vigil-bench-response-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .context("canonical temporary directory")?;
        let layout = Layout {
            bpffs_dir: PathBuf::from(format!(
                "/sys/fs/bpf/vigil-bench-response-{}",
                std::process::id()
            )),
            state_dir: dir.join("state"),
        };
        Ok(Self { dir, layout })
    }

    /// A copy of `source` named `sleep` (busybox picks its applet by that name) in its own
    /// folder: each copy is a file of its own for the kernel's deny map.
    fn copy(&self, source: &Path, role: Role) -> anyhow::Result<PathBuf> {
        let folder = self.dir.join(format!("{role:?}").to_lowercase());
        std::fs::create_dir_all(&folder)?;
        let path = folder.join("sleep");
        std::fs::copy(source, &path)
            .with_context(|| format!("copying {} to {}", source.display(), path.display()))?;
        Ok(path)
    }

    fn config(&self, killed: &Path, denied: &Path, count: u32) -> anyhow::Result<Config> {
        let policies = self.dir.join("policies");
        std::fs::create_dir_all(&policies)?;
        let rule = |name: &str, binary: &Path, action: &str| {
            format!(
                "  - name: {name}\n    match: {{kind: exec, process.binary: '{}'}}\n    action: {action}\n    mode: enforce\n",
                binary.display()
            )
        };
        let rules = format!(
            "rules:\n{}{}",
            rule(KILL_RULE, killed, "kill"),
            rule(DENY_RULE, denied, "kill_on_exec")
        );
        std::fs::write(policies.join("bench.yaml"), rules).context("writing the policy file")?;
        let mut config = Config::default();
        config.policy.default_pack = false;
        config.policy.directory = policies.display().to_string();
        config.policy.reload_interval_ms = 0;
        config.enforcement.bpffs_dir = self.layout.bpffs_dir.clone();
        config.enforcement.state_dir = self.layout.state_dir.clone();
        // The bench kills `count` processes in a few seconds; the default bucket (10, then 30
        // a minute) would refuse most of them.
        config.enforcement.rate_limit_burst = count.max(1);
        config.enforcement.rate_limit_per_minute = u32::MAX;
        Ok(config)
    }
}

/// busybox-static (its `sleep` applet), else coreutils' `sleep`.
fn sleep_binary() -> anyhow::Result<(PathBuf, &'static str)> {
    for (path, what) in [
        ("/bin/busybox", "busybox sleep"),
        ("/usr/bin/busybox", "busybox sleep"),
        ("/usr/bin/sleep", "coreutils sleep"),
        ("/bin/sleep", "coreutils sleep"),
    ] {
        if Path::new(path).exists() {
            return Ok((path.into(), what));
        }
    }
    anyhow::bail!("neither busybox nor sleep is installed")
}

/// `count` children of each binary, in turn, with `arg`.
async fn spawn(binaries: Vec<PathBuf>, arg: &str, count: u32) -> anyhow::Result<Vec<Child>> {
    let args = vec![arg.to_owned()];
    tokio::task::spawn_blocking(move || {
        spawner::run(&Plan {
            binaries: &binaries,
            args: &args,
            count,
            timeout: CHILD_TIMEOUT,
            max_gap: MAX_GAP,
        })
    })
    .await?
}

/// Waits (at most the correlator's timeout and a drain) until every child that should have
/// a finding or an enforcement event has it.
async fn settle(seen: &Mutex<SeenMap>, killed: &[Child], denied: &[Child]) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let done = {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let has =
                |c: &Child, role, f: fn(&Seen) -> bool| seen.get(&(c.pid, role)).is_some_and(f);
            killed.iter().all(|c| {
                has(c, Role::Killed, |s| {
                    s.exit_ns.is_some()
                        && s.finding
                            .as_ref()
                            .is_some_and(|f| f.status != Status::Pending)
                })
            }) && denied
                .iter()
                .all(|c| has(c, Role::Denied, |s| s.enforcement.is_some()))
        };
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(count: u32) -> anyhow::Result<()> {
    let (source, what) = sleep_binary()?;
    let scratch = Scratch::new()?;
    let killed_copy = scratch.copy(&source, Role::Killed)?;
    let denied_copy = scratch.copy(&source, Role::Denied)?;
    let allowed_copy = scratch.copy(&source, Role::Allowed)?;
    let config = scratch.config(&killed_copy, &denied_copy, count)?;
    println!(
        "response latency: rules in enforce mode on {count} execs each of copies of {what} ({}), \
         spawned one at a time by a worker process after a random pause of up to {} ms; the agent \
         in this process with only these rules",
        source.display(),
        MAX_GAP.as_millis()
    );
    println!(
        "ring buffer read every {} ms or at {} KiB (ring_buffer.poll_interval_ms, \
         wakeup_threshold_bytes); kernel enforcement records drained every {} ms",
        config.ring_buffer.poll_interval_ms,
        config.ring_buffer.wakeup_threshold_bytes / 1024,
        crate::response::worker::DRAIN_INTERVAL.as_millis()
    );
    let seen = Arc::new(Mutex::new(SeenMap::new()));
    let collector = Collector::new(
        vec![
            (killed_copy.clone(), Role::Killed),
            (denied_copy.clone(), Role::Denied),
            (allowed_copy.clone(), Role::Allowed),
        ],
        vec![
            (KILL_RULE.into(), Role::Killed),
            (DENY_RULE.into(), Role::Denied),
        ],
        seen.clone(),
    );
    let agent = Agent::start(&config, Box::new(collector)).context("starting Vigil")?;
    let result = async {
        let killed = spawn(vec![killed_copy.clone()], "30", count).await?;
        // In turn, so that the machine's other load weighs on both alike.
        let (allowed, denied): (Vec<Child>, Vec<Child>) =
            spawn(vec![allowed_copy.clone(), denied_copy.clone()], "0", count)
                .await?
                .into_iter()
                .partition(|c| c.which == 0);
        settle(&seen, &killed, &denied).await;
        anyhow::Ok((killed, allowed, denied))
    }
    .await;
    let summary = agent.stop().await;
    let (killed, allowed, denied) = result?;
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    report(&seen, &killed, &allowed, &denied, count);
    println!("events lost: {}", summary.lost);
    drop(scratch);
    Ok(())
}

/// One latency row: label, p50, p90, p99, max, sample size.
fn row(label: &str, sample: Vec<u64>) {
    match Percentiles::of(sample) {
        Some(p) => println!(
            "  {label:<44}{:>10}{:>10}{:>10}{:>10}{:>6}",
            human(p.p50),
            human(p.p90),
            human(p.p99),
            human(p.max),
            p.n
        ),
        None => println!("  {label:<44}{:>10}", "-"),
    }
}

fn header(title: &str) {
    println!();
    println!(
        "{title:<46}{:>10}{:>10}{:>10}{:>10}{:>6}",
        "p50", "p90", "p99", "max", "n"
    );
}

/// `b - a` for each child whose record has both.
fn spans(
    children: &[Child],
    seen: &SeenMap,
    role: Role,
    span: impl Fn(&Child, &Seen) -> Option<(u64, u64)>,
) -> Vec<u64> {
    children
        .iter()
        .filter_map(|c| {
            let (a, b) = span(c, seen.get(&(c.pid, role))?)?;
            b.checked_sub(a)
        })
        .collect()
}

fn report(seen: &SeenMap, killed: &[Child], allowed: &[Child], denied: &[Child], count: u32) {
    let by_sigkill = |children: &[Child]| {
        children
            .iter()
            .filter(|c| c.end == End::Signal(SIGKILL))
            .count()
    };
    let findings = |children: &[Child], role| {
        let mut ok = 0;
        let mut other: Vec<String> = Vec::new();
        for f in children
            .iter()
            .filter_map(|c| seen.get(&(c.pid, role))?.finding.as_ref())
        {
            if f.status == Status::Ok {
                ok += 1;
            } else if other.len() < 3 {
                other.push(format!(
                    "{}: {}",
                    f.status.name(),
                    f.error.as_deref().unwrap_or("-")
                ));
            }
        }
        (ok, other)
    };

    let (ok, other) = findings(killed, Role::Killed);
    println!();
    println!(
        "userspace `kill` (responder thread): {}/{count} killed by SIGKILL, {ok} findings ok",
        by_sigkill(killed)
    );
    for o in other {
        println!("  not ok: {o}");
    }
    if killed.iter().any(|c| c.end == End::Survived) {
        println!(
            "  a child was still alive after {} s: the worker stopped there",
            CHILD_TIMEOUT.as_secs()
        );
    }
    header("  from -> to");
    row(
        "exec -> exec event exported",
        spans(killed, seen, Role::Killed, |_, s| {
            Some((s.exec_ns?, s.exec_exported_ns?))
        }),
    );
    row(
        "finding latency_ns (match -> kill done)",
        killed
            .iter()
            .filter_map(|c| seen.get(&(c.pid, Role::Killed))?.finding.as_ref())
            .filter(|f| f.status == Status::Ok)
            .map(|f| f.latency_ns)
            .collect(),
    );
    row(
        "exec -> exit (kernel times: process gone)",
        spans(killed, seen, Role::Killed, |_, s| {
            Some((s.exec_ns?, s.exit_ns?))
        }),
    );
    row(
        "exec -> reaped by its parent (the worker)",
        spans(killed, seen, Role::Killed, |c, s| {
            Some((s.exec_ns?, c.reaped_ns))
        }),
    );
    row(
        "exec -> finding exported",
        spans(killed, seen, Role::Killed, |_, s| {
            Some((s.exec_ns?, s.finding.as_ref()?.exported_ns))
        }),
    );

    let (ok, other) = findings(denied, Role::Denied);
    let records = denied
        .iter()
        .filter(|c| {
            seen.get(&(c.pid, Role::Denied))
                .is_some_and(|s| s.enforcement.is_some())
        })
        .count();
    println!();
    println!(
        "kernel `kill_on_exec`: {}/{count} killed by SIGKILL at exec, {records} enforcement \
         events, {ok} findings ok; allowed copy: {}/{count} exited 0",
        by_sigkill(denied),
        allowed.iter().filter(|c| c.end == End::Exit(0)).count()
    );
    for o in other {
        println!("  not ok: {o}");
    }
    header("  from -> to");
    let spawn_to_reaped = |children: &[Child]| -> Vec<u64> {
        children
            .iter()
            .filter_map(|c| c.reaped_ns.checked_sub(c.spawn_ns))
            .collect()
    };
    row("spawn -> reaped, denied copy", spawn_to_reaped(denied));
    row(
        "spawn -> reaped, allowed copy (`sleep 0`)",
        spawn_to_reaped(allowed),
    );
    row(
        "exec -> exit (kernel times), denied copy",
        spans(denied, seen, Role::Denied, |_, s| {
            Some((s.exec_ns?, s.exit_ns?))
        }),
    );
    row(
        "kernel record -> enforcement event exported",
        spans(denied, seen, Role::Denied, |_, s| s.enforcement),
    );
}
