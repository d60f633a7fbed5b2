//! Capture checks: the sensor loaded as `vigil run` loads it, with events delivered to the
//! suite through a channel, and one known trigger per event family, matched by the
//! trigger's pid (never by counts: the guest runs other processes too).

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

use crate::{
    config::Config,
    event::{Detail, Event, NetworkOp},
    export::ChannelExporter,
    network::Sockaddr,
    runtime::Agent,
};

use super::{
    BUSYBOX, Outcome,
    trigger::{self, Child, ThreadsExit},
};

/// How long a trigger's events may take to arrive (TCG is slow; the reader polls every 10 ms).
const WAIT: Duration = Duration::from_secs(20);

/// The agent and the events it has delivered.
pub struct Capture {
    agent: Option<Agent>,
    rx: Receiver<Vec<Event>>,
    events: Vec<Event>,
    /// The watched folder of the file check.
    watched: PathBuf,
}

/// The configuration the checks need: the default, minus what a bare guest does not have
/// (container runtime, API socket) or what only adds work (policies, recorder).
fn config(watched: &Path) -> Config {
    let mut config = Config::default();
    config.enrich.enabled = false;
    config.api.enabled = false;
    config.policy.enabled = false;
    config.recorder.enabled = false;
    config.files.watch = vec![format!("{}/", watched.display())];
    config
}

impl Capture {
    /// Loads and attaches the sensor. Must run inside a tokio runtime.
    pub fn start(workdir: &Path) -> Result<Self, String> {
        let watched = workdir.join("watched");
        std::fs::create_dir_all(&watched)
            .map_err(|e| format!("creating {}: {e}", watched.display()))?;
        let (tx, rx) = mpsc::channel();
        let agent = Agent::start(&config(&watched), Box::new(ChannelExporter(tx)))
            .map_err(|e| crate::telemetry::chain(&e))?;
        Ok(Self {
            agent: Some(agent),
            rx,
            events: Vec::new(),
            watched,
        })
    }

    pub fn agent(&self) -> Option<&Agent> {
        self.agent.as_ref()
    }

    /// Detaches the programs.
    pub async fn stop(&mut self) {
        if let Some(agent) = self.agent.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), agent.stop()).await;
        }
    }

    /// Waits until `find` matches the events so far; `None` after [`WAIT`].
    fn until<T>(&mut self, mut find: impl FnMut(&[Event]) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(found) = find(&self.events) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if let Ok(batch) = self.rx.recv_timeout(left.min(Duration::from_millis(100))) {
                self.events.extend(batch);
            }
        }
    }

    /// A busybox command with a known argv: its fork, its exec with exactly that argv, and
    /// its exit with status 0.
    pub fn exec_fork_exit(&mut self) -> Vec<(&'static str, Outcome)> {
        let argv: Vec<&str> = vec![BUSYBOX, "echo", "vigil-selftest", "two words", ""];
        let mut child = match Child::spawn(Command::new(argv[0]).args(&argv[1..])) {
            Ok(child) => child,
            Err(e) => {
                let why = format!("spawning {BUSYBOX}: {e}");
                return ["capture.fork", "capture.exec", "capture.exit"]
                    .map(|c| (c, Outcome::Fail(why.clone())))
                    .into();
            }
        };
        let status = child.wait(WAIT);
        let pid = child.pid;
        let want: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
        let fork = self
            .until(|events| {
                events.iter().find_map(|e| match &e.detail {
                    Detail::Fork(f) if f.task.key.tgid == pid => Some(f.parent.tgid),
                    _ => None,
                })
            })
            .map_or_else(
                || Outcome::Fail(format!("no fork event for pid {pid}")),
                |parent| Outcome::Pass(format!("pid {pid}, parent {parent}")),
            );
        let exec = self
            .until(|events| {
                events.iter().find_map(|e| match &e.detail {
                    Detail::Exec(x) if x.task.key.tgid == pid => Some(x.image.args.clone()),
                    _ => None,
                })
            })
            .map_or_else(
                || Outcome::Fail(format!("no exec event for pid {pid}")),
                |args| {
                    if args == want {
                        Outcome::Pass(format!("argv {:?}", printable(&args)))
                    } else {
                        Outcome::Fail(format!("argv {:?}, expected {:?}", printable(&args), argv))
                    }
                },
            );
        let exit = self
            .until(|events| {
                events.iter().find_map(|e| match &e.detail {
                    Detail::Exit(x) if x.task.key.tgid == pid && x.group_dead => Some(x.status()),
                    _ => None,
                })
            })
            .map_or_else(
                || {
                    Outcome::Fail(format!(
                        "no exit event for pid {pid} (child ended: {status:?})"
                    ))
                },
                |code| match code {
                    Some(0) => Outcome::Pass("exit status 0".into()),
                    other => Outcome::Fail(format!("exit status {other:?}, expected 0")),
                },
            );
        vec![
            ("capture.fork", fork),
            ("capture.exec", exec),
            ("capture.exit", exit),
        ]
    }

    /// Groups ended by several threads: each group's end is reported once, named by the
    /// process's pid, with the status `wait` gives; no other exit of the group is reported
    /// (threads are not traced by default).
    pub fn group_exits(&mut self) -> Vec<(&'static str, Outcome)> {
        vec![
            (
                "capture.exit_by_thread",
                self.group_exits_of(ThreadsExit::LeaderFirst, 1),
            ),
            (
                "capture.exit_once",
                self.group_exits_of(ThreadsExit::Together, 20),
            ),
        ]
    }

    /// Runs `count` children that end as `how` says, at once, and checks each one's exits.
    fn group_exits_of(&mut self, how: ThreadsExit, count: usize) -> Outcome {
        let want = how.status();
        let mut children = Vec::with_capacity(count);
        for _ in 0..count {
            match Child::spawn(&mut trigger::threads_exit_command(how)) {
                Ok(child) => children.push(child),
                Err(e) => return Outcome::Fail(format!("spawning a {how:?} child: {e}")),
            }
        }
        for child in &mut children {
            let status = child.wait(WAIT);
            if status.and_then(|s| s.code()) != Some(want) {
                return Outcome::Fail(format!(
                    "child {} ended {status:?}, expected status {want}",
                    child.pid
                ));
            }
        }
        let pids: Vec<u32> = children.iter().map(|c| c.pid).collect();
        let exits_of = |events: &[Event], pid: u32| -> Vec<(u32, bool, Option<u8>)> {
            events
                .iter()
                .filter_map(|e| match &e.detail {
                    Detail::Exit(x) if x.task.key.tgid == pid => {
                        Some((e.pid, x.group_dead, x.status()))
                    }
                    _ => None,
                })
                .collect()
        };
        let all_ended = self.until(|events| {
            pids.iter()
                .all(|&pid| exits_of(events, pid).iter().any(|&(_, dead, _)| dead))
                .then_some(())
        });
        if all_ended.is_none() {
            let missing: Vec<u32> = pids
                .iter()
                .copied()
                .filter(|&pid| exits_of(&self.events, pid).is_empty())
                .collect();
            return Outcome::Fail(format!("no exit event for pids {missing:?}"));
        }
        // A second report of a group would come within the reader's next polls.
        self.collect_for(Duration::from_millis(500));
        let expected = u8::try_from(want).ok();
        for &pid in &pids {
            let exits = exits_of(&self.events, pid);
            if exits != [(pid, true, expected)] {
                return Outcome::Fail(format!(
                    "pid {pid}: exits (pid, group_dead, status) {exits:?}, expected \
                     [({pid}, true, {expected:?})]"
                ));
            }
        }
        Outcome::Pass(format!(
            "{count} group(s), each one exit named by its pid, status {want}"
        ))
    }

    /// Takes what the agent delivers for `period`.
    fn collect_for(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        let _ = self.until(|_| (Instant::now() >= deadline).then_some(()));
    }

    /// A child's connect to a loopback listener: the connect event with the destination
    /// address and port, and the socket's own ends.
    pub fn connect(&mut self) -> Outcome {
        // Kept open until the check ends: the kernel completes the handshake on its own.
        let (_listener, addr) = match loopback_listener() {
            Ok(bound) => bound,
            Err(e) => return Outcome::Fail(format!("binding a loopback listener: {e}")),
        };
        let mut child = match Child::spawn(&mut trigger::connect_command(addr, None)) {
            Ok(child) => child,
            Err(e) => return Outcome::Fail(format!("spawning the connect trigger: {e}")),
        };
        let status = child.wait(WAIT);
        if status.and_then(|s| s.code()) != Some(trigger::CONNECTED) {
            return Outcome::Fail(format!("the trigger did not connect: {status:?}"));
        }
        let pid = child.pid;
        let found = self.until(|events| {
            events.iter().find_map(|e| match &e.detail {
                Detail::Network(n) if n.op == NetworkOp::Connect && n.task.key.tgid == pid => {
                    Some(n.clone())
                }
                _ => None,
            })
        });
        let Some(n) = found else {
            return Outcome::Fail(format!("no connect event for pid {pid}"));
        };
        let wanted = Sockaddr::Inet {
            ip: Ipv4Addr::LOCALHOST,
            port: addr.port(),
        };
        let ends = n.socket.map(|s| (s.local, s.remote));
        let local_ok = ends.is_some_and(|(local, _)| {
            local.ip() == std::net::IpAddr::V4(Ipv4Addr::LOCALHOST) && local.port() != 0
        });
        let remote_ok = ends.is_some_and(|(_, remote)| remote == Some(addr));
        match (&n.addr, n.ret, local_ok, remote_ok) {
            (Some(Ok(a)), 0, true, true) if *a == wanted => Outcome::Pass(format!(
                "pid {pid}: {} -> {addr}",
                ends.map_or_else(String::new, |(l, _)| l.to_string())
            )),
            _ => Outcome::Fail(format!(
                "pid {pid}: address {:?}, ret {}, socket {:?}; expected {addr}, ret 0, a local loopback end",
                n.addr, n.ret, n.socket
            )),
        }
    }

    /// `busybox cat` of a file in the watched folder: a file open event with its path.
    pub fn file_open(&mut self) -> Outcome {
        let file = self.watched.join("secret");
        if let Err(e) = std::fs::write(&file, "vigil selftest\n") {
            return Outcome::Fail(format!("writing {}: {e}", file.display()));
        }
        let mut child = match Child::spawn(Command::new(BUSYBOX).arg("cat").arg(&file)) {
            Ok(child) => child,
            Err(e) => return Outcome::Fail(format!("spawning {BUSYBOX} cat: {e}")),
        };
        let status = child.wait(WAIT);
        let pid = child.pid;
        let path = file.as_os_str().as_encoded_bytes().to_vec();
        let found = self.until(|events| {
            events.iter().find_map(|e| match &e.detail {
                Detail::File(f) if f.task.key.tgid == pid && f.path == path => {
                    Some((f.op.name(), f.syscall, f.ret))
                }
                _ => None,
            })
        });
        match found {
            Some(("open", syscall, ret)) if ret >= 0 => Outcome::Pass(format!(
                "pid {pid}: {syscall} {} -> fd {ret}",
                file.display()
            )),
            Some((op, syscall, ret)) => Outcome::Fail(format!(
                "pid {pid}: {op} by {syscall} returned {ret}, expected a successful open"
            )),
            None => Outcome::Fail(format!(
                "no file event for pid {pid} on {} (child ended: {status:?})",
                file.display()
            )),
        }
    }
}

/// argv as text for a report line.
fn printable(args: &[Vec<u8>]) -> Vec<String> {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// A listener on 127.0.0.1 with a port the kernel picked, and that address.
pub fn loopback_listener() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}
