//! A peer tracer run on the same storm, for side-by-side figures: Debian's libbpf-tools
//! (`execsnoop`, `tcpstates`, `opensnoop`: CO-RE, a perf-buffer event per traced event,
//! printed by a C consumer) and `bpftrace` (a tracepoint with `printf`: a perf-buffer event
//! per traced event, formatted by bpftrace itself).
//!
//! Its kernel cost comes from the same BPF run-time statistics, summed over the programs the
//! tool's process holds (their ids read from `/proc/PID/fdinfo`, so programs that others load
//! meanwhile are not counted); what it captured is counted from its own output, its lines
//! sorted into classes per tool. Its stdout is a pipe, so the tool writes in blocks: the count is read
//! after it stopped (SIGINT, on which every one of these tools flushes and exits cleanly).

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::Timing;

pub const EXECSNOOP: &str = "/usr/sbin/execsnoop";
pub const TCPSTATES: &str = "/usr/sbin/tcpstates";
pub const OPENSNOOP: &str = "/usr/sbin/opensnoop";
pub const BPFTRACE: &str = "/usr/bin/bpftrace";

pub struct PeerRun {
    /// The storm (with BPF statistics off, after [`PeerRun::timed_by`]).
    pub storm: Timing,
    /// Its wall time with them on (the run the kernel ns come from).
    pub wall_with_stats: Duration,
    /// Output lines of each class.
    pub captured: Vec<u64>,
    /// Events the tool itself reported lost (its "lost N events" warnings, on stderr for
    /// libbpf-tools, on stdout for bpftrace).
    pub lost: u64,
    /// Kernel ns per storm iteration, all of its programs together.
    pub kernel_ns_per_event: f64,
    /// CPU time of the tool's process from the storm's start until it had drained its
    /// output (user + system, 10 ms resolution).
    pub cpu: Duration,
    /// (program, ns per run, runs) during the storm.
    pub programs: Vec<(String, f64, u64)>,
    /// The tool's peak resident memory (`VmHWM`), KiB, read before it was stopped.
    pub peak_rss_kib: u64,
}

/// Runs `storm` while `tool args` traces it, counting its output lines by the class
/// `classify` gives them (`None`: not the storm's; classes below `classes`). BPF statistics
/// must be enabled by the caller; `count` is the storm's iterations.
pub fn run(
    tool: &str,
    args: &[String],
    count: u32,
    classes: usize,
    classify: impl Fn(&str) -> Option<usize> + Send + 'static,
    storm: impl FnOnce() -> anyhow::Result<Timing>,
) -> anyhow::Result<PeerRun> {
    let mut child = Command::new(tool)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {tool}"))?;
    let pid = child.id();
    let stdout = child.stdout.take().context("peer stdout")?;
    let stderr = child.stderr.take().context("peer stderr")?;
    let lines = Arc::new(AtomicU64::new(0));
    let seen = lines.clone();
    let reader = std::thread::spawn(move || {
        let (mut captured, mut lost) = (vec![0; classes], 0);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            seen.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = classify(&line).and_then(|class| captured.get_mut(class)) {
                *n += 1;
            }
            // bpftrace prints its "Lost N events" among its output, on stdout.
            lost += lost_events(&line).unwrap_or(0);
        }
        (captured, lost)
    });
    let errors = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| lost_events(&line))
            .sum::<u64>()
    });
    let stop = |child: &mut std::process::Child| {
        // SIGINT: these tools flush their output and exit cleanly on it.
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
        child.wait()
    };
    // Wait until its programs are loaded, then a moment for the attach (its header line,
    // printed after attaching, sits in its stdout buffer).
    let deadline = Instant::now() + Duration::from_secs(10);
    let ids = loop {
        let ids = program_ids_of(pid);
        if !ids.is_empty() {
            break ids;
        }
        if Instant::now() >= deadline || child.try_wait()?.is_some() {
            let _ = stop(&mut child);
            anyhow::bail!("{tool} loaded no program in 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = run_totals(&ids);
    let cpu_before = process_cpu(pid);
    let timing = match storm() {
        Ok(timing) => timing,
        Err(error) => {
            let _ = stop(&mut child);
            return Err(error);
        }
    };
    let after = run_totals(&ids);
    // Let it drain its buffer: wait until its output has stopped growing for a second (it
    // arrives in blocks, and a tool starved of CPU on a busy machine pauses).
    let (mut last, mut still) = (u64::MAX, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while still < 4 && Instant::now() < deadline {
        let now = lines.load(Ordering::Relaxed);
        still = if now == last { still + 1 } else { 0 };
        last = now;
        std::thread::sleep(Duration::from_millis(250));
    }
    let cpu = process_cpu(pid).saturating_sub(cpu_before);
    let peak_rss_kib = super::status_kib_of(pid, "VmHWM");
    stop(&mut child).with_context(|| format!("waiting for {tool}"))?;
    let (captured, lost_stdout) = reader.join().unwrap_or_default();
    let lost = errors.join().unwrap_or(0) + lost_stdout;
    let per = |ns: u128, n: u64| ns as f64 / n.max(1) as f64;
    let programs = after
        .iter()
        .map(|(id, name, t1, n1)| {
            let (t0, n0) = before
                .iter()
                .find(|b| b.0 == *id)
                .map_or((Duration::ZERO, 0), |b| (b.2, b.3));
            let runs = n1.saturating_sub(n0);
            (
                name.clone(),
                per(t1.saturating_sub(t0).as_nanos(), runs),
                runs,
            )
        })
        .collect();
    let total = |v: &[(u32, String, Duration, u64)]| v.iter().map(|p| p.2).sum::<Duration>();
    Ok(PeerRun {
        wall_with_stats: timing.wall,
        storm: timing,
        captured,
        lost,
        kernel_ns_per_event: per(
            total(&after).saturating_sub(total(&before)).as_nanos(),
            u64::from(count),
        ),
        cpu,
        programs,
        peak_rss_kib,
    })
}

impl PeerRun {
    /// This run (BPF statistics on) with the storm's wall and CPU, the tool's CPU and peak
    /// memory from `timed` (the same storm with them off); captured is the worse of the two,
    /// lost the sum.
    pub fn timed_by(self, timed: PeerRun) -> PeerRun {
        PeerRun {
            wall_with_stats: self.storm.wall,
            storm: timed.storm,
            captured: super::worse(&self.captured, &timed.captured),
            lost: self.lost + timed.lost,
            cpu: timed.cpu,
            peak_rss_kib: timed.peak_rss_kib,
            ..self
        }
    }
}

/// User + system CPU time of process `pid` so far (zero when it is gone).
fn process_cpu(pid: u32) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_cpu_ticks(&stat))
        .map_or(Duration::ZERO, |t| {
            Duration::from_secs_f64(t as f64 / ticks.max(1) as f64)
        })
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks; read after
/// the `)` that ends the command name, which may hold spaces and parentheses.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Ids of the BPF programs process `pid` holds, from the `prog_id:` lines of its fdinfo
/// (program fds and link fds both carry one).
fn program_ids_of(pid: u32) -> HashSet<u32> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return HashSet::new();
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_to_string(fd.path()).ok())
        .filter_map(|info| fdinfo_prog_id(&info))
        .collect()
}

fn fdinfo_prog_id(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|l| l.strip_prefix("prog_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// (id, name, run time, run count) of the programs in `ids`.
fn run_totals(ids: &HashSet<u32>) -> Vec<(u32, String, Duration, u64)> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| ids.contains(&p.id()))
        .map(|p| {
            let name = p.name_as_str().unwrap_or("?").to_owned();
            (p.id(), name, p.run_time(), p.run_count())
        })
        .collect()
}

/// The count of a libbpf-tools loss warning ("lost 12 events on CPU #1", "Lost 3 events...").
fn lost_events(line: &str) -> Option<u64> {
    let lower = line.to_ascii_lowercase();
    let rest = &lower[lower.find("lost ")? + 5..];
    let (n, rest) = rest.split_once(' ')?;
    rest.starts_with("event").then(|| n.parse().ok())?
}

/// execsnoop: class 0, a line of a child of `parent` (columns PCOMM PID PPID RET ARGS).
pub fn execsnoop_child_of(parent: u32) -> impl Fn(&str) -> Option<usize> + Send + 'static {
    let parent = parent.to_string();
    move |line| (line.split_whitespace().nth(2) == Some(parent.as_str())).then_some(0)
}

/// A tcpstates line: (local port, remote port, old state, new state). Parsed from the right
/// (`... LADDR LPORT RADDR RPORT OLDSTATE -> NEWSTATE MS`), since COMM may hold spaces.
pub fn tcpstates_line(line: &str) -> Option<(u16, u16, &str, &str)> {
    let mut fields = line.split_whitespace().rev();
    let _ms = fields.next()?;
    let new = fields.next()?;
    (fields.next()? == "->").then_some(())?;
    let old = fields.next()?;
    let rport = fields.next()?.parse().ok()?;
    let _raddr = fields.next()?;
    let lport = fields.next()?.parse().ok()?;
    Some((lport, rport, old, new))
}

/// tcpstates: a state change of a connection to or from `port` (not the listener's own
/// CLOSE -> LISTEN -> CLOSE, whose remote port is 0): class 0 a connect (CLOSE -> SYN_SENT,
/// one per connection), class 1 any other change.
pub fn tcpstates_connection_of(port: u16) -> impl Fn(&str) -> Option<usize> + Send + 'static {
    move |line| {
        let (l, r, old, new) = tcpstates_line(line)?;
        ((l == port || r == port) && r != 0)
            .then_some(usize::from(!(old == "CLOSE" && new == "SYN_SENT")))
    }
}

/// opensnoop: class 0, an open of `path` (columns PID COMM FD ERR PATH; the path is last
/// and the storm's has no spaces).
pub fn opensnoop_open_of(path: &Path) -> impl Fn(&str) -> Option<usize> + Send + 'static {
    let path = path.to_string_lossy().into_owned();
    move |line| (line.split_whitespace().last() == Some(path.as_str())).then_some(0)
}

pub fn available(tool: &str) -> bool {
    Path::new(tool).exists()
}

/// bpftrace printing each exec (`sched_process_exec`, after it succeeded, like execsnoop):
/// `PID PPID FILENAME`. The filename, not the argv: bpftrace 0.17's `join()` prints argv on a
/// line of its own, which could not be told apart from another exec's.
pub fn bpftrace_exec() -> Vec<String> {
    vec![
        "-e".into(),
        "tracepoint:sched:sched_process_exec { printf(\"%d %d %s\\n\", pid, \
         curtask->real_parent->tgid, str(args->filename)); }"
            .into(),
    ]
}

/// bpftrace exec lines: class 0, a child of `parent`.
pub fn bpftrace_exec_child_of(parent: u32) -> impl Fn(&str) -> Option<usize> + Send + 'static {
    let parent = parent.to_string();
    move |line| (line.split_whitespace().nth(1) == Some(parent.as_str())).then_some(0)
}

/// bpftrace printing every TCP state change of the node, as `tcpstates` does:
/// `PID SPORT DPORT OLDSTATE NEWSTATE` (states as numbers).
pub fn bpftrace_tcp_states() -> Vec<String> {
    vec![
        "-e".into(),
        "tracepoint:sock:inet_sock_set_state { printf(\"%d %d %d %d %d\\n\", pid, \
         args->sport, args->dport, args->oldstate, args->newstate); }"
            .into(),
    ]
}

/// bpftrace state lines of connections to or from `port` (not the listener's own, whose
/// remote port is 0): class 0 a connect (CLOSE 7 -> SYN_SENT 2), class 1 any other change.
pub fn bpftrace_tcp_connection_of(port: u16) -> impl Fn(&str) -> Option<usize> + Send + 'static {
    move |line| {
        let f: Vec<u32> = line
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        let [_, sport, dport, old, new] = f[..] else {
            return None;
        };
        let port = u32::from(port);
        ((sport == port || dport == port) && dport != 0)
            .then_some(usize::from(!(old == 7 && new == 2)))
    }
}

/// bpftrace printing each `openat` of process `pid` (filtered in the kernel, like
/// `opensnoop -p`): `PID PATH`, at syscall entry.
pub fn bpftrace_open(pid: u32) -> Vec<String> {
    vec![
        "-e".into(),
        format!(
            "tracepoint:syscalls:sys_enter_openat /pid == {pid}/ {{ printf(\"%d %s\\n\", pid, \
             str(args->filename)); }}"
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_run(wall_ms: u64, captured: Vec<u64>, lost: u64, kernel_ns: f64) -> PeerRun {
        let wall = Duration::from_millis(wall_ms);
        PeerRun {
            storm: Timing {
                wall,
                cpu: Some(wall),
            },
            wall_with_stats: wall,
            captured,
            lost,
            kernel_ns_per_event: kernel_ns,
            cpu: Duration::from_millis(wall_ms / 2),
            programs: vec![("p".into(), kernel_ns, 3)],
            peak_rss_kib: wall_ms * 10,
        }
    }

    #[test]
    fn a_peer_run_is_timed_without_statistics_and_counted_with_them() {
        // Counted: statistics on (slower, has the kernel ns); timed: statistics off.
        let counted = peer_run(120, vec![10, 7], 1, 900.0);
        let timed = peer_run(100, vec![9, 8], 2, 0.0);
        let run = counted.timed_by(timed);
        assert_eq!(run.storm.wall, Duration::from_millis(100));
        assert_eq!(run.wall_with_stats, Duration::from_millis(120));
        assert_eq!(run.cpu, Duration::from_millis(50));
        assert_eq!(run.peak_rss_kib, 1000);
        assert_eq!(run.kernel_ns_per_event, 900.0);
        assert_eq!(run.programs, vec![("p".to_owned(), 900.0, 3)]);
        // Captured: the worse run per class; lost: both runs'.
        assert_eq!(run.captured, vec![9, 7]);
        assert_eq!(run.lost, 3);
    }

    #[test]
    fn tcpstates_lines_parse_from_the_right() {
        let line = "ffff888100d95c80 7294    python3    127.0.0.1       56916 127.0.0.1       40321 SYN_SENT    -> ESTABLISHED 0.069";
        assert_eq!(
            tcpstates_line(line),
            Some((56916, 40321, "SYN_SENT", "ESTABLISHED"))
        );
        let spaced = "ffff888100d95c80 7294 my comm 127.0.0.1 40321 127.0.0.1 56916 LISTEN -> SYN_RECV 0.000";
        assert_eq!(
            tcpstates_line(spaced),
            Some((40321, 56916, "LISTEN", "SYN_RECV"))
        );
        let header = "SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS";
        assert_eq!(tcpstates_line(header), None);
        let of = tcpstates_connection_of(40321);
        assert_eq!(of(line), Some(1));
        assert_eq!(of(spaced), Some(1));
        // The client's first change has local port 0; the remote is the listener.
        let connect =
            "ffff888100d95c80 7294 python3 127.0.0.1 0 127.0.0.1 40321 CLOSE -> SYN_SENT 0.000";
        assert_eq!(of(connect), Some(0));
        // The listener itself, and other connections.
        let listen =
            "ffff888100d93780 7294 python3 127.0.0.1 40321 0.0.0.0 0 CLOSE -> LISTEN 0.000";
        assert_eq!(of(listen), None);
        let other = "ffff888100d93780 1 sshd 10.0.0.1 0 10.0.0.2 22 CLOSE -> SYN_SENT 1.0";
        assert_eq!(of(other), None);
        assert_eq!(of(header), None);
    }

    #[test]
    fn opensnoop_and_execsnoop_lines() {
        let of = opensnoop_open_of(Path::new("/tmp/vigil-bench-open-1/target"));
        let open = "7301   vigil               3   0 /tmp/vigil-bench-open-1/target";
        assert_eq!(of(open), Some(0));
        assert_eq!(
            of("7301   vigil               3   0 /etc/ld.so.cache"),
            None
        );
        assert_eq!(of("PID    COMM                FD ERR PATH"), None);
        let child = execsnoop_child_of(4242);
        let exec = "true             4300    4242      0 /bin/busybox true";
        assert_eq!(child(exec), Some(0));
        let other = "true             4242    1      0 /bin/busybox true";
        assert_eq!(child(other), None);
    }

    #[test]
    fn bpftrace_lines() {
        let exec = bpftrace_exec_child_of(4242);
        assert_eq!(exec("4300 4242 /bin/busybox"), Some(0));
        assert_eq!(exec("4242 1 /bin/busybox"), None);
        assert_eq!(exec("Attaching 1 probe..."), None);
        let tcp = bpftrace_tcp_connection_of(40321);
        assert_eq!(tcp("7294 0 40321 7 2"), Some(0));
        assert_eq!(tcp("7294 56916 40321 2 1"), Some(1));
        assert_eq!(tcp("7294 40321 56916 10 12"), Some(1));
        assert_eq!(tcp("7294 40321 0 7 10"), None);
        assert_eq!(tcp("1 22 50000 1 4"), None);
        assert_eq!(tcp("Attaching 1 probe..."), None);
        let open = opensnoop_open_of(Path::new("/tmp/vigil-bench-open-1/target"));
        assert_eq!(open("7301 /tmp/vigil-bench-open-1/target"), Some(0));
        assert!(bpftrace_open(7301)[1].contains("/pid == 7301/"));
    }

    #[test]
    fn loss_warnings_and_fdinfo() {
        assert_eq!(lost_events("lost 12 events on CPU #1"), Some(12));
        assert_eq!(lost_events("Lost 3 events on CPU #0!"), Some(3));
        assert_eq!(lost_events("failed to attach"), None);
        assert_eq!(lost_events("lost contact"), None);
        let prog = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t2071\nprog_type:\t5\nprog_jited:\t1\nprog_tag:\t0123456789abcdef\nmemlock:\t4096\nprog_id:\t812\nrun_time_ns:\t0\n";
        assert_eq!(fdinfo_prog_id(prog), Some(812));
        assert_eq!(fdinfo_prog_id("pos:\t0\nflags:\t02\n"), None);
        let stat =
            "7301 (a (b) c) S 7290 7301 7290 0 -1 4194560 2841 0 0 0 37 12 0 0 20 0 1 0 1234 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some(49));
        assert_eq!(stat_cpu_ticks("7301 (x) S 1"), None);
    }
}
