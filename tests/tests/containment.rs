//! Containment in the kernel and in userspace, for real: kill-on-exec, connect deny per
//! cgroup, freeze/thaw, kill of a process tree, and enforcement that holds with no agent
//! running until `vigil enforcement clear`.
//!
//! Each library test installs its own enforcement programs under a private bpffs directory
//! (`/sys/fs/bpf/vigil-test-*`) and clears them when it ends, so tests never see each
//! other's rules; the command-line test uses the default layout, as an operator would, with
//! `--direct` (no agent runs; `vigil enforcement list` then reads the pins itself).

use std::{
    io::Read as _,
    net::TcpListener,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use vigil_tests::{
    binary::vigil_binary,
    cgroup::TestCgroup,
    enforcement::install,
    gate,
    spawn::{TempDir, install_executable, python3, spawn},
};

const WAIT: Duration = Duration::from_secs(10);
const SIGKILL: i32 = 9;

/// Runs `command` to its end; returns (status, stdout).
fn output(mut command: Command) -> (std::process::ExitStatus, String) {
    command.stdout(Stdio::piped());
    let mut child = spawn(&mut command);
    let status = child.wait(WAIT);
    let mut text = String::new();
    if let Some(mut out) = child.child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    (status, text)
}

#[test]
fn a_denied_binary_is_killed_at_exec_and_another_still_runs() {
    let Some(mut installed) = install("exec") else {
        return;
    };
    let dir = TempDir::new("kill-on-exec");
    let denied = install_executable(Path::new("/usr/bin/touch"), dir.path(), "denied-touch");
    let allowed = install_executable(Path::new("/usr/bin/touch"), dir.path(), "allowed-touch");
    let rule = installed
        .enforcer
        .deny_exec("cli", &denied, false, None)
        .expect("deny rule");

    let marker = dir.path().join("marker");
    let started = vigil::clock::boot_now_ns();
    let mut child = spawn(Command::new(&denied).arg(&marker));
    let status = child.wait(WAIT);
    let waited = vigil::clock::boot_now_ns();
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    assert!(
        !marker.exists(),
        "the denied binary ran: {}",
        marker.display()
    );

    let other = dir.path().join("other-marker");
    let mut child2 = spawn(Command::new(&allowed).arg(&other));
    assert!(child2.wait(WAIT).success());
    assert!(other.exists(), "a different binary must still run");

    let actions = installed.enforcer.drain_actions();
    let mine = actions
        .iter()
        .find(|a| a.tgid == child.pid)
        .unwrap_or_else(|| panic!("no kernel record for pid {}: {actions:?}", child.pid));
    assert_eq!(mine.action, "exec_killed");
    assert_eq!(mine.rule_id, rule);
    assert_eq!(mine.comm, "denied-touch");
    assert!(mine.time_ns >= started);
    eprintln!(
        "spawn to kill decision {} us, spawn to reaped {} us",
        (mine.time_ns - started) / 1000,
        (waited - started) / 1000
    );
    let list = installed.enforcer.list().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].hits, Some(1));

    // A directory rule catches every binary below it; released, the binary runs again.
    installed.enforcer.release(rule).expect("release");
    let sub = dir.path().join("bin");
    std::fs::create_dir(&sub).expect("subdir");
    let nested = install_executable(Path::new("/usr/bin/touch"), &sub, "nested-touch");
    let dir_rule = installed
        .enforcer
        .deny_exec("cli", dir.path(), true, None)
        .expect("dir rule");
    let status = spawn(Command::new(&nested).arg(&marker)).wait(WAIT);
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    assert!(!marker.exists());
    installed.enforcer.release(dir_rule).expect("release");
    assert!(
        spawn(Command::new(&denied).arg(&marker))
            .wait(WAIT)
            .success()
    );
    assert!(marker.exists(), "released: the binary runs");
}

#[test]
fn a_scoped_exec_rule_holds_only_in_its_cgroup() {
    let Some(mut installed) = install("scope") else {
        return;
    };
    let Some(cgroup) = TestCgroup::new("scope") else {
        return;
    };
    let dir = TempDir::new("scoped-exec");
    let denied = install_executable(Path::new("/usr/bin/touch"), dir.path(), "scoped-touch");
    installed
        .enforcer
        .deny_exec("cli", &denied, false, Some(&cgroup.rel))
        .expect("scoped rule");
    let inside = dir.path().join("inside");
    let (status, _) = output(cgroup.sh(&format!("exec {} {}", denied.display(), inside.display())));
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    assert!(!inside.exists());
    let outside = dir.path().join("outside");
    assert!(
        spawn(Command::new(&denied).arg(&outside))
            .wait(WAIT)
            .success()
    );
    assert!(outside.exists(), "outside the cgroup the binary runs");
}

/// A python child in `cgroup` that connects to 127.0.0.1:`port` and sends one UDP
/// datagram; prints `connect=<errno or ok> send=<errno or ok>`.
fn try_network(cgroup: &TestCgroup, port: u16) -> String {
    let script = format!(
        "import socket\n\
         def attempt(f):\n\
         \x20   try:\n\
         \x20       f(); return 'ok'\n\
         \x20   except OSError as e:\n\
         \x20       return str(e.errno)\n\
         c = attempt(lambda: socket.create_connection(('127.0.0.1', {port}), timeout=5))\n\
         s = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port})))\n\
         print('connect=%s send=%s' % (c, s))\n"
    );
    let (status, out) = output(
        cgroup
            .sh(&format!("exec {} -c \"$0\"", python3().display()))
            .tap_arg(script),
    );
    assert!(status.success(), "{status}: {out}");
    out.trim().to_owned()
}

trait TapArg {
    fn tap_arg(self, arg: String) -> Self;
}

impl TapArg for Command {
    fn tap_arg(mut self, arg: String) -> Self {
        self.arg(arg);
        self
    }
}

#[test]
fn connect_deny_holds_in_one_cgroup_only() {
    let Some(mut installed) = install("connect") else {
        return;
    };
    let Some(cgroup) = TestCgroup::new("connect") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    assert_eq!(try_network(&cgroup, port), "connect=ok send=ok");

    // A CIDR and port rule: EPERM (1) inside, for that port.
    let rule = installed
        .enforcer
        .deny_connect("cli", &cgroup.rel, "127.0.0.0/8", &[port])
        .expect("deny connect");
    assert_eq!(try_network(&cgroup, port), "connect=1 send=1");
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("outside the cgroup: connects");
    let other = TcpListener::bind("127.0.0.1:0").expect("listener");
    let other_port = other.local_addr().expect("addr").port();
    assert_eq!(
        try_network(&cgroup, other_port),
        "connect=ok send=ok",
        "another port is not denied"
    );
    installed.enforcer.release(rule).expect("release");
    assert_eq!(try_network(&cgroup, port), "connect=ok send=ok");

    // Isolation: every destination.
    let isolate = installed
        .enforcer
        .isolate("cli", &cgroup.rel)
        .expect("isolate");
    assert_eq!(try_network(&cgroup, other_port), "connect=1 send=1");
    std::net::TcpStream::connect(("127.0.0.1", other_port)).expect("outside: connects");
    let actions = installed.enforcer.drain_actions();
    assert!(
        actions
            .iter()
            .any(|a| a.action == "connect_denied" && a.rule_id == isolate),
        "{actions:?}"
    );
    installed.enforcer.release(isolate).expect("release");
    assert_eq!(try_network(&cgroup, other_port), "connect=ok send=ok");
}

/// Bytes of `path` now and after `wait`: whether the writer in the cgroup made progress.
fn grows(path: &Path, wait: Duration) -> bool {
    let before = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    std::thread::sleep(wait);
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) > before
}

#[test]
fn freeze_and_thaw_a_cgroup() {
    let Some(mut installed) = install("freeze") else {
        return;
    };
    let Some(cgroup) = TestCgroup::new("freeze") else {
        return;
    };
    let dir = TempDir::new("freeze");
    let counter = dir.path().join("counter");
    let mut writer = spawn(&mut cgroup.sh(&format!(
        "while :; do echo x >> {}; sleep 0.01; done",
        counter.display()
    )));
    assert!(
        grows(&counter, Duration::from_millis(300)),
        "the writer runs"
    );

    let rule = installed
        .enforcer
        .freeze("cli", Path::new(&cgroup.rel))
        .expect("freeze v2");
    let events = std::fs::read_to_string(cgroup.dir.join("cgroup.events")).expect("events");
    assert!(events.contains("frozen 1"), "{events}");
    assert!(
        !grows(&counter, Duration::from_millis(300)),
        "frozen: no progress"
    );
    assert!(!installed.enforcer.list().expect("list").is_empty());
    installed.enforcer.release(rule).expect("release thaws");
    assert!(
        grows(&counter, Duration::from_millis(300)),
        "thawed: runs again"
    );

    // The v1 freezer, where the node has it (hybrid nodes).
    if let Some(v1) = v1_freezer_child(writer.pid) {
        installed.enforcer.freeze("cli", &v1).expect("freeze v1");
        assert_eq!(
            std::fs::read_to_string(v1.join("freezer.state"))
                .expect("state")
                .trim(),
            "FROZEN"
        );
        assert!(!grows(&counter, Duration::from_millis(300)), "v1 frozen");
        installed.enforcer.thaw(&v1).expect("thaw v1");
        assert!(grows(&counter, Duration::from_millis(300)), "v1 thawed");
        writer.signal(SIGKILL);
        writer.wait(WAIT);
        // The loop's last `sleep` may outlive the shell for a moment.
        let deadline = Instant::now() + WAIT;
        while std::fs::remove_dir(&v1).is_err() && Instant::now() < deadline {
            let _ = std::fs::read_to_string(v1.join("cgroup.procs")).map(|pids| {
                for pid in pids.lines().filter_map(|p| p.parse::<i32>().ok()) {
                    // SAFETY: kill(2) on a pid from the test's own freezer cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            });
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        gate::announce_skip("no v1 freezer hierarchy: only cgroup v2 freezing was tested");
        writer.signal(SIGKILL);
        writer.wait(WAIT);
    }
}

/// A child cgroup of the v1 freezer hierarchy holding `pid`'s writer (the sh loop; its
/// sleeps are forked into the same cgroup).
fn v1_freezer_child(pid: u32) -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup/freezer");
    if !root.join("freezer.state").exists() && !root.join("tasks").exists() {
        return None;
    }
    let dir = root.join(format!("vigil-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(dir.join("cgroup.procs"), pid.to_string()).ok()?;
    Some(dir)
}

#[test]
fn kill_a_process_tree() {
    let Some(mut installed) = install("tree") else {
        return;
    };
    let mut root = spawn(
        Command::new("/bin/sh")
            .arg("-c")
            .arg("sh -c 'sleep 1000 & sleep 1000 & wait' & sleep 1000 & wait"),
    );
    // Wait for the tree: root sh -> (sh -> 2 sleeps), sleep.
    let deadline = Instant::now() + WAIT;
    let members = loop {
        let found = descendants(root.pid);
        if found.len() >= 4 || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(members.len() >= 4, "tree not formed: {members:?}");
    let (_, killed) = installed
        .enforcer
        .kill("cli", root.pid as i32, None, true)
        .expect("kill tree");
    assert!(killed >= 5, "killed {killed}");
    assert_eq!(root.wait(WAIT).signal(), Some(SIGKILL));
    let deadline = Instant::now() + WAIT;
    while members.iter().any(|&p| alive(p)) {
        assert!(Instant::now() < deadline, "survivors: {members:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The agent itself is never a target.
    assert!(
        installed
            .enforcer
            .kill("cli", std::process::id() as i32, None, false)
            .is_err()
    );
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn descendants(root: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((pid, parent_of(pid)?))
        })
        .collect();
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        for &(child, parent) in &all {
            if parent == p {
                out.push(child);
                queue.push(child);
            }
        }
    }
    out
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

#[test]
fn enforcement_holds_with_no_agent_until_cleared() {
    if !gate::privileged() {
        gate::skip("enforcement needs root");
        return;
    }
    let Some(vigil) = vigil_binary() else {
        return;
    };
    let dir = TempDir::new("cli-contain");
    let denied = install_executable(Path::new("/usr/bin/touch"), dir.path(), "cli-denied");
    let run = |args: &[&str]| {
        let out = Command::new(&vigil)
            .args(args)
            .output()
            .expect("vigil runs");
        assert!(
            out.status.success(),
            "vigil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let denied_str = denied.to_str().expect("utf-8 path");
    // --direct: no agent runs; the command works on the pins itself.
    run(&["contain", "--direct", "deny-exec", denied_str]);
    // The vigil process that installed the rule has exited: only the pins hold it.
    let marker = dir.path().join("marker");
    let status = spawn(Command::new(&denied).arg(&marker)).wait(WAIT);
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    assert!(!marker.exists());
    let list = run(&["enforcement", "list"]);
    assert!(
        list.contains("deny_exec") && list.contains(denied_str),
        "{list}"
    );
    assert!(list.contains("enforce_exec"), "{list}");

    run(&["enforcement", "clear"]);
    assert!(
        spawn(Command::new(&denied).arg(&marker))
            .wait(WAIT)
            .success()
    );
    assert!(marker.exists(), "cleared: the binary runs");
    let list = run(&["enforcement", "list"]);
    assert!(list.contains("no rules"), "{list}");
    assert!(!Path::new("/sys/fs/bpf/vigil/links/enforce_exec").exists());
}
