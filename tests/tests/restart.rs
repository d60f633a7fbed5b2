//! `vigil run` killed with SIGKILL in the middle of a storm of execs, and started again with
//! the same config, spool and enforcement state:
//! - enforce-mode rules hold the whole time: every exec of the denied binary is killed and
//!   every connect from the test's cgroup to loopback is refused with EPERM, while the agent
//!   runs, while it is dead and while it starts again, and the restarted agent keeps the
//!   pinned rules rather than installing them anew;
//! - a shell and its child started while the agent was dead are in the tree the new agent
//!   read from /proc, the child with its exact binary, argv and parent;
//! - the forwarder resumes from the last acknowledged sequence number: the collector holds
//!   one stream numbered 1, 2, 3... with no gap and no repeat, with storm findings from
//!   before the kill and after the restart (the storm's execs while the agent was dead are
//!   not seen by anyone, and that is not asserted either way).

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex, mpsc::Receiver},
    time::Duration,
};

use vigil_tests::{
    cgroup::TestCgroup,
    collect,
    daemon::{free_port, log_field, wait_until},
    enforcement::PrivateLayout,
    repeat::{Repeat, churn},
    scrape::{metrics_until, value},
    spawn::{Spawned, canonical_bytes, install_executable, python3, spawn},
    tree::ShellAndChild,
    vigil_run::{VigilRun, setup},
};

const STORM: &str = "vigil-restart-storm";
const STORM_RULE: &str = "restart-storm";
const DENIED: &str = "vigil-restart-denied";
const DENIED_RULE: &str = "restart-denied";
const CONNECT_RULE: &str = "restart-deny-connect";
/// Generous: a debug agent on a busy machine, behind a storm.
const WAIT: Duration = Duration::from_secs(60);
/// Between batches of the storm: a steady stream of execs that a debug agent keeps up with.
const STORM_PAUSE: Duration = Duration::from_millis(50);
/// Storm execs in each window: before the kill (findings collected), while the agent is
/// dead (spawned), after the restart (findings collected).
const STORM_PER_WINDOW: usize = 200;
/// Between attempts at the denied exec.
const ATTEMPT_PAUSE: Duration = Duration::from_millis(20);
/// Attempts at the denied exec in each window: agent up, agent dead, agent back.
const ATTEMPTS_PER_WINDOW: usize = 5;

/// A thread running the denied binary again and again, `[denied, <dir>/ran-<n>]` (`touch`
/// would create the file), recording every attempt that was not killed at exec.
struct Attempts {
    repeat: Repeat,
    /// Attempts that ran or ended otherwise than by SIGKILL.
    failures: Arc<Mutex<Vec<String>>>,
}

impl Attempts {
    fn start(denied: PathBuf, dir: PathBuf) -> Self {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let failed = failures.clone();
        let repeat = Repeat::start(ATTEMPT_PAUSE, move |n| {
            let ran = dir.join(format!("ran-{n}"));
            let status = spawn(Command::new(&denied).arg(&ran)).wait(WAIT);
            if status.signal() != Some(libc::SIGKILL) || ran.exists() {
                failed.lock().expect("failures").push(format!(
                    "attempt {n}: {status}, {} exists: {}",
                    ran.display(),
                    ran.exists()
                ));
            }
            1
        });
        Self { repeat, failures }
    }

    fn made(&self) -> usize {
        self.repeat.count()
    }

    /// Waits until `more` attempts have been made after the first `since`.
    #[track_caller]
    fn wait_for(&self, since: usize, more: usize) {
        wait_until(WAIT, &format!("{more} attempts at the denied exec"), || {
            self.made() >= since + more
        });
    }

    /// Stops the thread; returns the attempts made and the failures.
    fn stop(self) -> (usize, Vec<String>) {
        let made = self.repeat.stop();
        let failures = self.failures.lock().expect("failures").clone();
        (made, failures)
    }
}

/// A python process in a cgroup connecting to a loopback listener every 20 ms, for at
/// most three minutes; it prints the errno of each attempt (0: connected).
const PY_CONNECT_LOOP: &str = "import os, socket, sys, time\n\
    open(sys.argv[1] + '/cgroup.procs', 'w').write(str(os.getpid()))\n\
    end = time.time() + 180\n\
    while time.time() < end:\n\
    \x20   c = socket.socket(); c.settimeout(5)\n\
    \x20   try:\n\
    \x20       c.connect(('127.0.0.1', int(sys.argv[2]))); print(0, flush=True)\n\
    \x20   except OSError as e:\n\
    \x20       print(e.errno, flush=True)\n\
    \x20   c.close(); time.sleep(0.02)\n";

/// The connect loop's results so far.
struct Connects {
    process: Spawned,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Connects {
    fn start(cgroup: &TestCgroup, port: u16) -> Self {
        let mut process = spawn(
            Command::new(python3())
                .args(["-c", PY_CONNECT_LOOP])
                .arg(&cgroup.dir)
                .arg(port.to_string())
                .stdout(std::process::Stdio::piped()),
        );
        let lines = process.stdout_lines();
        Self {
            process,
            lines,
            seen: Vec::new(),
        }
    }

    fn made(&mut self) -> usize {
        self.seen.extend(self.lines.try_iter());
        self.seen.len()
    }

    /// Waits until `more` attempts have been made after the first `since`.
    #[track_caller]
    fn wait_for(&mut self, since: usize, more: usize) {
        wait_until(WAIT, &format!("{more} connects from the cgroup"), || {
            self.made() >= since + more
        });
    }
}

/// The argv of the forwarded findings of `rule`.
fn collected_args(out: &Path, rule: &str) -> Vec<Vec<String>> {
    // Only the lines that name the rule are parsed: the file is polled, and it grows large.
    let needle = format!("\"rule\":\"{rule}\"");
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"]["detail"]["Finding"]["rule"] == rule)
        .map(|r| {
            r["event"]["process"]["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        })
        .collect()
}

/// The storm indices (`argv[1]`) of the forwarded storm findings.
fn collected_storm(out: &Path) -> Vec<usize> {
    collected_args(out, STORM_RULE)
        .iter()
        .filter_map(|args| args.get(1)?.parse().ok())
        .collect()
}

/// The acknowledged position the spool keeps for the collector.
fn cursor(spool: &Path) -> u64 {
    std::fs::read_to_string(spool.join("cursor-collector"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// The log lines containing `text`.
fn log_lines(log: &str, text: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(text))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_crash_mid_storm_keeps_enforcement_and_rebuilds_the_tree_and_the_forwarder_resumes() {
    let Some((vigil, dir)) = setup("restart") else {
        return;
    };
    let d = dir.path();
    let storm = install_executable(Path::new("/bin/true"), d, STORM);
    let denied = install_executable(Path::new("/usr/bin/touch"), d, DENIED);
    let shell = install_executable(Path::new("/bin/sh"), d, "vigil-restart-shell");
    let sleeper = install_executable(Path::new("/bin/sleep"), d, "vigil-restart-child");
    let denied_text = String::from_utf8(canonical_bytes(&denied)).expect("UTF-8 path");
    let Some(cgroup) = TestCgroup::new("restart") else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let listen_port = listener.local_addr().expect("its address").port();
    std::fs::write(
        d.join("policies/restart.yaml"),
        format!(
            "rules:\n  - name: {STORM_RULE}\n    description: The restart test's storm ran.\n    \
             severity: low\n    match:\n      kind: exec\n      \
             process.binary: {{suffix: /{STORM}}}\n  \
             - name: {DENIED_RULE}\n    severity: high\n    \
             match: {{kind: exec, process.binary: '{denied_text}'}}\n    \
             action: kill_on_exec\n    mode: enforce\n  \
             - name: {CONNECT_RULE}\n    severity: high\n    \
             match: {{kind: connect, process.cgroup: '{}', network.dst_ip: {{cidr: 127.0.0.0/8}}}}\n    \
             action: deny_connect\n    mode: enforce\n",
            cgroup.rel
        ),
    )
    .expect("policy file");
    let layout = PrivateLayout::new("restart", &d.join("state"));
    let spool = d.join("spool");
    let out = d.join("collected.jsonl");
    let collector_log = d.join("collector.log");
    let port = free_port();
    let metrics: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let collector = collect::start(&vigil, port, &out, &collector_log, &[]);
    let agent = VigilRun::start_with(
        &vigil,
        d,
        &layout.toml(),
        &format!(
            "[telemetry]\nmetrics_address = \"{metrics}\"\n\n\
             [forward]\nspool_dir = \"{}\"\nfsync_interval_ms = 200\n\n\
             [forward.collector]\nendpoint = \"http://127.0.0.1:{port}\"\n",
            spool.display()
        ),
    );
    let attempts_dir = d.join("attempts");
    std::fs::create_dir(&attempts_dir).expect("attempts dir");

    // The storm and the denied execs, from before the kill to after the restart.
    let storm = churn(storm, STORM_PAUSE);
    let attempts = Attempts::start(denied.clone(), attempts_dir);
    let mut connects = Connects::start(&cgroup, listen_port);
    attempts.wait_for(0, ATTEMPTS_PER_WINDOW);
    connects.wait_for(0, ATTEMPTS_PER_WINDOW);
    wait_until(WAIT, "storm findings at the collector", || {
        collected_storm(&out).len() >= STORM_PER_WINDOW
    });
    // Something acknowledged and saved: the position the restart resumes from.
    wait_until(WAIT, "an acknowledged position in the spool", || {
        cursor(&spool) > 0
    });

    let before_kill = storm.count();
    agent.daemon.kill();
    let acked = cursor(&spool);
    let at_kill = attempts.made();
    let connects_at_kill = connects.made();

    // Dead: the pins alone deny the exec; a tree starts that no agent sees start.
    let tree = ShellAndChild::start(&shell, &sleeper, WAIT);
    attempts.wait_for(at_kill, ATTEMPTS_PER_WINDOW);
    connects.wait_for(connects_at_kill, ATTEMPTS_PER_WINDOW);
    let dead_storm = storm.count();
    wait_until(WAIT, "the storm while the agent is dead", || {
        storm.count() >= dead_storm + STORM_PER_WINDOW
    });

    let at_restart = attempts.made();
    let connects_at_restart = connects.made();
    let agent = VigilRun::restart(&vigil, d);
    let after_restart = storm.count();
    let at_ready = attempts.made();
    let connects_at_ready = connects.made();
    attempts.wait_for(at_ready, ATTEMPTS_PER_WINDOW);
    connects.wait_for(connects_at_ready, ATTEMPTS_PER_WINDOW);
    wait_until(WAIT, "storm findings after the restart", || {
        collected_storm(&out)
            .iter()
            .filter(|&&n| n >= after_restart)
            .count()
            >= STORM_PER_WINDOW
    });
    // A kill at exec after the restart is reported and forwarded as before.
    let made = attempts.made();
    wait_until(WAIT, "a forwarded finding of the denied exec", || {
        collected_args(&out, DENIED_RULE).iter().any(|args| {
            args.get(1)
                .and_then(|a| a.rsplit("ran-").next()?.parse::<usize>().ok())
                .is_some_and(|n| n >= at_ready && n < made)
        })
    });
    let spawned = storm.stop();
    let (made, failures) = attempts.stop();
    assert!(
        failures.is_empty(),
        "execs of the denied binary not killed: {failures:?}"
    );
    connects.made();
    connects.process.signal(libc::SIGKILL);
    connects.process.wait(WAIT);
    let eperm = libc::EPERM.to_string();
    let allowed: Vec<(usize, &String)> = connects
        .seen
        .iter()
        .enumerate()
        .filter(|(_, errno)| **errno != eperm)
        .collect();
    assert!(
        allowed.is_empty(),
        "connects from the cgroup not refused with EPERM (index, errno): {allowed:?}"
    );
    drop(listener);
    eprintln!(
        "denied execs, all killed: {at_kill} with the agent up, {} while it was dead, \
         {} while it started, {} after; denied connects, all EPERM: {connects_at_kill}, {}, \
         {}, {}; storm: {spawned} execs",
        at_restart - at_kill,
        at_ready - at_restart,
        made - at_ready,
        connects_at_restart - connects_at_kill,
        connects_at_ready - connects_at_restart,
        connects.seen.len() - connects_at_ready
    );

    // The restarted agent found the rules pinned and kept them.
    let log = agent.daemon.log();
    let reconciled = log_lines(
        &log,
        "Kernel enforcement rules reconciled with the policies.",
    );
    assert_eq!(reconciled.len(), 2, "{log}");
    let counts =
        |line: &str| ["kept", "added", "released"].map(|f| log_field(line, f).map(str::to_owned));
    assert_eq!(
        counts(&reconciled[1]),
        [Some("2".into()), Some("0".into()), Some("0".into())],
        "{}",
        reconciled[1]
    );

    // The tree started while the agent was dead, read from /proc at the restart.
    let mut tree = tree;
    tree.kill_child();
    let child_text = String::from_utf8(canonical_bytes(&sleeper)).expect("UTF-8 path");
    let shell_text = String::from_utf8(canonical_bytes(&shell)).expect("UTF-8 path");
    // The pid and the binary: pids come round again quickly during a storm.
    let exit = agent.line_where("the child's exit", WAIT, |l| {
        l["kind"] == "exit"
            && l["process"]["pid"] == tree.child
            && l["process"]["binary"] == child_text.as_str()
    });
    let p = &exit["process"];
    assert_eq!(p["origin"], "snapshot", "{exit}");
    assert_eq!(
        p["args"],
        serde_json::json!([sleeper.to_str().expect("UTF-8"), "300"]),
        "{exit}"
    );
    assert_eq!(p["ppid"], tree.shell.pid, "{exit}");
    let parent = &exit["parent"];
    assert_eq!(parent["pid"], tree.shell.pid, "{exit}");
    assert_eq!(parent["binary"], shell_text.as_str(), "{exit}");
    assert_eq!(
        parent["args"],
        serde_json::json!([
            shell.to_str().expect("UTF-8"),
            "-c",
            "\"$0\" 300 & wait",
            sleeper.to_str().expect("UTF-8")
        ]),
        "{exit}"
    );
    assert_eq!(p["parent_exec_id"], parent["exec_id"], "{exit}");
    tree.shell.wait(WAIT);

    // Everything spooled delivered, then both stop cleanly.
    metrics_until(metrics, WAIT, |body| {
        value(body, "vigil_forward_connected{destination=\"collector\"}") == Some(1)
            && value(body, "vigil_forward_lag_records{destination=\"collector\"}") == Some(0)
    });
    agent.daemon.interrupt(WAIT);
    collector.interrupt(WAIT);

    // The forwarder resumed from the acknowledged position. The collector skips a record it
    // already has by (node, stream, seq), so what it wrote is one stream, numbered from 1
    // with no gap and no repeat, across the crash. The records after `acked` that reached the
    // collector before the kill were sent again (delivery is at least once) and skipped
    // there; none at or before `acked` was sent again.
    let count = collect::assert_one_stream_in_order(&out);
    let starts = log_lines(&log, "Forwarding through the spool.");
    assert_eq!(starts.len(), 2, "{log}");
    let next_seq: u64 = log_field(&starts[1], "next_seq")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("next_seq: {}", starts[1]));
    assert!(next_seq > acked, "{} after {acked} acked", starts[1]);
    let runs = collect::runs(&collector_log);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (written, skipped) = runs[0];
    assert_eq!(written, count);
    assert!(
        skipped < next_seq - acked,
        "{skipped} skipped: resent from before {acked}, the acknowledged position \
         (sessions: {:?})",
        log_lines(&log, "Connected to the collector.")
    );
    let collected = collected_storm(&out);
    assert!(
        collected.iter().any(|&n| n < before_kill),
        "storm findings from before the kill"
    );
    assert!(
        collected.iter().any(|&n| n >= after_restart),
        "storm findings from after the restart"
    );
    eprintln!(
        "{count} records in order; acknowledged {acked} at the kill, spool resumed at \
         {next_seq}, {skipped} resent and skipped; storm findings collected: {} of {spawned}",
        collected.len()
    );
}
