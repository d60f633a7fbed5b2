//! The driver shared by `vigil bench connect` and `vigil bench open`: a storm run by a worker
//! process (see `worker`), with no tracer, with Vigil (the real agent in this process, JSON
//! rendering of every event included) and with each peer (a libbpf-tools tool, bpftrace), `runs`
//! times; medians.
//!
//! Each tracer storms twice per run: once with BPF run-time statistics off, as deployed, for
//! the wall and CPU figures, then once with them on, for the kernel ns (the table shows the
//! slowdown with them on as well).
//!
//! Kernel ns per event: BPF run time of all of a tracer's programs between the worker's
//! `ready` and `done`, over the storm's iteration count. Vigil's syscall programs run on every
//! syscall of the node in that window (the storm's several syscalls per iteration, and
//! anything else running), so their run counts are printed too.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;

use super::{
    Timing,
    peer::{self, PeerRun},
    worker::{Kind, Worker},
};
use crate::{
    clock::BootClock,
    config::Config,
    event::{Detail, Event},
    export::{Exporter, json::JsonRenderer},
    runtime::Agent,
};

/// What the tracers are asked to find: the worker's pid, its listener's port, its file.
pub struct Target {
    pub pid: u32,
    pub port: u16,
    pub file: Option<PathBuf>,
}

/// Sorts a peer's output lines into classes (`None`: not the storm's).
pub type LineClassifier = Box<dyn Fn(&str) -> Option<usize> + Send>;

/// One storm's specifics.
pub struct Spec {
    pub kind: Kind,
    /// One storm iteration, for the header.
    pub iteration: &'static str,
    pub count: u32,
    pub runs: u32,
    pub file: Option<PathBuf>,
    /// Vigil's configuration for the storm.
    pub config: Config,
    /// Names of the classes `classify` sorts Vigil's events into, and how many of each one
    /// iteration should give.
    pub classes: &'static [(&'static str, u64)],
    pub classify: fn(&Target, &Event) -> Option<usize>,
    /// The peers run on the same storm, in turn.
    pub peers: Vec<PeerSpec>,
    /// Tracepoints `perf stat` counts on the worker for ground truth, when perf is installed.
    pub perf_events: &'static str,
}

/// A peer tracer of a storm.
pub struct PeerSpec {
    pub tool: &'static str,
    /// Its column's name in the tables.
    pub name: &'static str,
    pub args: fn(&Target) -> Vec<String>,
    pub classify: fn(&Target) -> LineClassifier,
    /// Names of the classes of `classify` and how many lines of each one iteration should
    /// give.
    pub classes: &'static [(&'static str, u64)],
}

/// Counts Vigil's events by class, rendering every event as JSON on the way so that the
/// whole pipeline's cost is paid; keeps the loss events' counts by cause.
pub(super) struct Counter {
    target: Target,
    classify: fn(&Target, &Event) -> Option<usize>,
    counts: Arc<Mutex<Counts>>,
    renderer: JsonRenderer,
    buf: Vec<u8>,
}

#[derive(Default)]
pub(super) struct Counts {
    pub classes: Vec<u64>,
    pub losses: Vec<(&'static str, u64)>,
}

impl Counts {
    /// The loss events' counts as `cause n, cause n`, or `none`.
    pub fn causes(&self) -> String {
        if self.losses.is_empty() {
            return "none".into();
        }
        let causes: Vec<String> = self
            .losses
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        causes.join(", ")
    }
}

impl Counter {
    /// A counter of `classes` classes, and its counts.
    pub(super) fn new(
        target: Target,
        classify: fn(&Target, &Event) -> Option<usize>,
        classes: usize,
    ) -> (Self, Arc<Mutex<Counts>>) {
        let counts = Arc::new(Mutex::new(Counts {
            classes: vec![0; classes],
            losses: Vec::new(),
        }));
        let counter = Self {
            target,
            classify,
            counts: counts.clone(),
            renderer: JsonRenderer::new("bench".into(), BootClock::now()),
            buf: Vec::with_capacity(1 << 20),
        };
        (counter, counts)
    }
}

impl Exporter for Counter {
    fn export(&mut self, events: &[Event]) -> std::io::Result<()> {
        self.buf.clear();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for event in events {
            self.renderer.render(event, &mut self.buf);
            if let Detail::Loss(loss) = &event.detail {
                for &(cause, n) in &loss.counts {
                    add_loss(&mut counts.losses, cause, n);
                }
            }
            if let Some(class) = (self.classify)(&self.target, event) {
                if let Some(n) = counts.classes.get_mut(class) {
                    *n += 1;
                }
            }
        }
        Ok(())
    }
}

pub struct VigilRun {
    /// The storm with BPF statistics off.
    pub storm: Timing,
    /// Its wall time with them on (the run the kernel ns come from).
    pub wall_with_stats: Duration,
    /// Vigil's events of the storm, by class of [`Spec::classes`].
    pub classes: Vec<u64>,
    /// Events lost, all causes, node-wide, and the loss events' counts by cause.
    pub lost: u64,
    pub losses: Vec<(&'static str, u64)>,
    /// (program, ns per run, runs)
    pub programs: Vec<(&'static str, f64, u64)>,
    pub kernel_ns_per_event: f64,
    /// CPU time of this process (the agent) from the storm's start until it had stopped.
    pub cpu: Duration,
    /// Peak resident memory of this process (the agent) from its start until it had
    /// stopped, KiB.
    pub peak_rss_kib: u64,
}

pub struct RunResult {
    pub base: Timing,
    pub vigil: VigilRun,
    /// One per [`Spec::peers`]; `None` when the tool is not installed.
    pub peers: Vec<Option<PeerRun>>,
}

/// Starts a worker: it sets up and says ready, a few ms.
fn spawn(spec: &Spec) -> anyhow::Result<Worker> {
    Worker::spawn(spec.kind, spec.count, spec.file.as_ref())
}

fn target(spec: &Spec, worker: &Worker) -> Target {
    Target {
        pid: worker.pid,
        port: worker.port,
        file: spec.file.clone(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

async fn vigil_run(spec: &Spec, worker: Worker) -> anyhow::Result<VigilRun> {
    let (exporter, counts) = Counter::new(target(spec, &worker), spec.classify, spec.classes.len());
    super::reset_peak_rss();
    let agent = Agent::start(&spec.config, Box::new(exporter)).context("starting Vigil")?;
    let stats = |agent: &Agent| {
        agent
            .sensor()
            .map(|s| s.program_stats())
            .unwrap_or_default()
    };
    let before = stats(&agent);
    let cpu_before = super::cpu_time(libc::RUSAGE_SELF);
    let storm = blocking(move || worker.go()).await?;
    let after = stats(&agent);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let summary = agent.stop().await;
    let cpu = super::cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu_before);
    let peak_rss_kib = super::status_kib("VmHWM");
    let mut total = 0.0;
    let programs = after
        .iter()
        .zip(&before)
        .map(|((name, t1, n1), (_, t0, n0))| {
            let runs = n1.saturating_sub(*n0);
            let ns = t1.saturating_sub(*t0).as_nanos() as f64;
            total += ns;
            (*name, ns / runs.max(1) as f64, runs)
        })
        .collect();
    let counts = std::mem::take(&mut *counts.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(VigilRun {
        wall_with_stats: storm.wall,
        storm,
        classes: counts.classes,
        lost: summary.lost,
        losses: counts.losses,
        programs,
        kernel_ns_per_event: total / f64::from(spec.count.max(1)),
        cpu,
        peak_rss_kib,
    })
}

async fn one_run(spec: &Spec) -> anyhow::Result<RunResult> {
    let worker = spawn(spec)?;
    let base = blocking(move || worker.go()).await?;
    // Each tracer storms twice: timed with BPF statistics off, as deployed (they cost two
    // clock reads per program run: 7% of the open storm's time under Vigil), then counted with
    // them on, for the kernel ns.
    let timed = vigil_run(spec, spawn(spec)?).await?;
    let counted = {
        let _stats = stats_on()?;
        vigil_run(spec, spawn(spec)?).await?
    };
    let vigil = counted.timed_by(timed);
    let mut peers = Vec::new();
    for p in &spec.peers {
        if !peer::available(p.tool) {
            peers.push(None);
            continue;
        }
        let timed = peer_run(spec, p).await?;
        let counted = {
            let _stats = stats_on()?;
            peer_run(spec, p).await?
        };
        peers.push(Some(counted.timed_by(timed)));
    }
    Ok(RunResult { base, vigil, peers })
}

/// BPF run-time statistics, on until the returned fd is dropped.
fn stats_on() -> anyhow::Result<std::os::fd::OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).context("enabling BPF run-time statistics")
}

/// One storm traced by peer `p`.
async fn peer_run(spec: &Spec, p: &PeerSpec) -> anyhow::Result<PeerRun> {
    let worker = spawn(spec)?;
    let target = target(spec, &worker);
    let (tool, args) = (p.tool, (p.args)(&target));
    let classify = (p.classify)(&target);
    let (count, classes) = (spec.count, p.classes.len());
    blocking(move || peer::run(tool, &args, count, classes, classify, || worker.go())).await
}

impl VigilRun {
    /// This run (BPF statistics on) with the storm's wall and CPU, the agent's CPU and peak
    /// memory from `timed` (the same storm with them off); captured is the worse of the two,
    /// losses those of both.
    fn timed_by(self, timed: VigilRun) -> VigilRun {
        let mut losses = self.losses;
        for (cause, n) in timed.losses {
            add_loss(&mut losses, cause, n);
        }
        VigilRun {
            wall_with_stats: self.storm.wall,
            storm: timed.storm,
            classes: super::worse(&self.classes, &timed.classes),
            lost: self.lost + timed.lost,
            losses,
            cpu: timed.cpu,
            peak_rss_kib: timed.peak_rss_kib,
            ..self
        }
    }
}

/// Adds `n` losses of `cause` to the counts by cause.
fn add_loss(losses: &mut Vec<(&'static str, u64)>, cause: &'static str, n: u64) {
    match losses.iter_mut().find(|(c, _)| *c == cause) {
        Some((_, total)) => *total += n,
        None => losses.push((cause, n)),
    }
}

/// `perf stat` counting tracepoints in one process, until [`PerfStat::finish`].
pub(super) struct PerfStat {
    child: std::process::Child,
    out: PathBuf,
}

impl PerfStat {
    /// Starts counting `events` in process `pid`; gives perf half a second to attach.
    pub(super) fn start(events: &str, pid: u32) -> anyhow::Result<Self> {
        let out =
            std::env::temp_dir().join(format!("vigil-bench-perf-{}-{pid}", std::process::id()));
        let child = std::process::Command::new("perf")
            .args(["stat", "-x,", "-e", events, "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting perf stat")?;
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self { child, out })
    }

    /// Stops perf and returns its counts.
    pub(super) fn finish(mut self) -> anyhow::Result<Vec<(String, u64)>> {
        // SAFETY: plain kill(2) on our own child's pid (perf stat prints its counts on SIGINT;
        // it may also have ended by itself when the process it counted exited).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        self.child.wait().context("waiting for perf")?;
        let text = std::fs::read_to_string(&self.out).context("reading perf stat's output")?;
        let _ = std::fs::remove_file(&self.out);
        Ok(parse_perf_stat(&text))
    }
}

/// Whether `perf` is on PATH.
pub(super) fn perf_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("perf").exists()))
}

/// One extra, untimed storm under `perf stat -p WORKER`: how many of `spec.perf_events`
/// happened in the worker, counted by the kernel.
fn perf_ground_truth(spec: &Spec) -> anyhow::Result<Vec<(String, u64)>> {
    let worker = spawn(spec)?;
    let perf = PerfStat::start(spec.perf_events, worker.pid)?;
    let result = worker.go();
    let counts = perf.finish()?;
    result?;
    Ok(counts)
}

/// `perf stat -x,` lines: `COUNT,UNIT,EVENT,...`; comments and `<not counted>` skipped.
fn parse_perf_stat(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let count = fields.next()?.trim().parse().ok()?;
            let event = fields.nth(1)?.trim();
            (!event.is_empty()).then(|| (event.to_owned(), count))
        })
        .collect()
}

pub async fn run(spec: Spec) -> anyhow::Result<()> {
    let name = spec.kind_name();
    println!(
        "{name} storm: {} x ({}), run by a worker process, {} runs per variant (medians)",
        spec.count, spec.iteration, spec.runs
    );
    if perf_installed() {
        match tokio::task::block_in_place(|| perf_ground_truth(&spec)) {
            Ok(counts) => {
                let counts: Vec<String> = counts.iter().map(|(e, n)| format!("{e} {n}")).collect();
                println!(
                    "ground truth (perf stat on the worker, one extra run): {}",
                    counts.join(", ")
                );
            }
            Err(error) => println!(
                "ground truth: perf stat failed ({error:#}); generated = the storm's count"
            ),
        }
    } else {
        println!(
            "ground truth: perf not installed; generated = the storm's count (every syscall checked)"
        );
    }
    let mut results = Vec::new();
    for run in 0..spec.runs {
        let r = one_run(&spec).await?;
        super::report::run_line(&spec, run + 1, &r);
        results.push(r);
    }
    super::report::report(&spec, &results);
    Ok(())
}

impl Spec {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Connect => "connect",
            Kind::Open => "open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_stat_csv() {
        let text = "# started on Mon Jan  1 00:00:00 2024\n\n20000,,syscalls:sys_enter_connect,1680197,100.00,,\n200003,,sock:inet_sock_set_state,1680197,100.00,,\n<not counted>,,syscalls:sys_enter_openat,0,0.00,,\n";
        assert_eq!(
            parse_perf_stat(text),
            vec![
                ("syscalls:sys_enter_connect".to_owned(), 20000),
                ("sock:inet_sock_set_state".to_owned(), 200_003),
            ]
        );
    }
}
