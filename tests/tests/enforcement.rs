//! Rules in `mode: enforce`, end to end: the agent installs the kernel rules of its policy
//! set when it starts, the kernel kills at exec and its record completes the finding; a
//! monitor rule only reports; a userspace `kill` is carried out by the responder thread.
//!
//! Each test pins enforcement under a private bpffs directory and keeps its rule record in
//! a temporary directory, and clears both when it ends, so tests never see each other's rules.

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use vigil::{
    config::Config,
    enforce::{Enforcer, Guard, Layout, clear},
    event::{Detail, Event},
    export::json::JsonRenderer,
    policy::{Finding, Status, Target},
    response::{By, Enforcement},
};
use vigil_tests::{
    harness::Harness,
    spawn::{TempDir, install_executable, spawn},
};

const WAIT: Duration = Duration::from_secs(10);
const SIGKILL: i32 = 9;

/// A private enforcement layout, cleared on drop (also when the test fails).
struct Private {
    layout: Layout,
}

impl Drop for Private {
    fn drop(&mut self) {
        if let Err(error) = clear(&self.layout) {
            eprintln!("clearing {}: {error}", self.layout.bpffs_dir.display());
        }
    }
}

/// A config with only the rules of `rules` (YAML) from a policy directory in `dir`, and
/// enforcement pinned privately.
fn config(dir: &Path, label: &str, rules: &str) -> (Config, Private) {
    let policies = dir.join("policies");
    std::fs::create_dir(&policies).expect("policy directory");
    std::fs::write(policies.join("rules.yaml"), rules).expect("policy file");
    let state = dir.join("state");
    let layout = Layout {
        bpffs_dir: PathBuf::from(format!(
            "/sys/fs/bpf/vigil-test-{}-{label}",
            std::process::id()
        )),
        state_dir: state,
    };
    let mut config = Config::default();
    config.policy.default_pack = false;
    config.policy.directory = policies.display().to_string();
    config.policy.reload_interval_ms = 100;
    config.enforcement.bpffs_dir = layout.bpffs_dir.clone();
    config.enforcement.state_dir = layout.state_dir.clone();
    (config, Private { layout })
}

fn canonical(path: &Path) -> String {
    path.canonicalize()
        .expect("canonical path")
        .display()
        .to_string()
}

fn finding_of<'e>(event: &'e Event, rule: &str, tgid: u32) -> Option<&'e Finding> {
    match &event.detail {
        Detail::Finding(f)
            if f.rule.name == rule
                && event.process.as_ref().is_some_and(|p| p.key.tgid == tgid) =>
        {
            Some(f)
        }
        _ => None,
    }
}

fn enforcement_of(event: &Event, tgid: u32) -> Option<&Enforcement> {
    match &event.detail {
        Detail::Enforcement(e) if e.tgid == tgid => Some(e),
        _ => None,
    }
}

fn json(event: &Event) -> String {
    let mut out = Vec::new();
    JsonRenderer::new("test".into(), vigil::clock::BootClock::now()).render(event, &mut out);
    String::from_utf8(out).expect("utf-8").trim_end().to_owned()
}

#[test]
fn an_enforced_kill_on_exec_rule_is_in_the_kernel_from_the_start() {
    let dir = TempDir::new("enforce-exec");
    let denied = install_executable(Path::new("/usr/bin/touch"), dir.path(), "enforced-touch");
    let allowed = install_executable(Path::new("/usr/bin/touch"), dir.path(), "free-touch");
    let rules = format!(
        "rules:\n  - name: kill-enforced-touch\n    severity: high\n    match: {{kind: exec, process.binary: '{}'}}\n    action: kill_on_exec\n    mode: enforce\n",
        canonical(&denied)
    );
    let (config, private) = config(dir.path(), "exec", &rules);
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };

    let marker = dir.path().join("marker");
    let mut child = spawn(Command::new(&denied).arg(&marker));
    let status = child.wait(WAIT);
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    assert!(!marker.exists(), "the denied binary ran");

    let pid = child.pid;
    let (enforcement, finding) =
        agent.collect_until("the kernel's record and the finding", WAIT, |events| {
            let e = events.iter().find(|e| enforcement_of(e, pid).is_some())?;
            let f = events
                .iter()
                .find(|e| finding_of(e, "kill-enforced-touch", pid).is_some())?;
            Some((e.clone(), f.clone()))
        });
    eprintln!("{}\n{}", json(&enforcement), json(&finding));
    let e = enforcement_of(&enforcement, pid).expect("enforcement");
    assert_eq!(e.action, "exec_killed");
    assert_eq!(e.by, By::Kernel);
    assert_eq!(e.outcome, "ok");
    assert_eq!(e.rule.as_deref(), Some("kill-enforced-touch"));
    assert_eq!(e.binary.as_deref(), Some(canonical(&denied).as_str()));
    assert_eq!(e.comm, "enforced-touch");
    assert!(
        enforcement.process.is_some(),
        "the finding's process is attached"
    );
    let f = finding_of(&finding, "kill-enforced-touch", pid).expect("finding");
    assert_eq!(f.outcome.action, "kill_on_exec");
    assert_eq!(f.outcome.status, Status::Ok, "{:?}", f.outcome);
    assert_eq!(f.outcome.target, Some(Target::Exec { tgid: pid }));

    // Another binary still runs, and no rule fires on it.
    let other = dir.path().join("other");
    let mut free = spawn(Command::new(&allowed).arg(&other));
    assert!(free.wait(WAIT).success());
    assert!(other.exists(), "a different binary must still run");

    // The rule is the agent's, in the record, with the kernel's hit.
    let enforcer = Enforcer::open_existing(private.layout.clone(), Guard::new(&[], &[]))
        .expect("opens")
        .expect("installed");
    let list = enforcer.list().expect("list");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].rule.origin, "policy:kill-enforced-touch");
    assert_eq!(list[0].hits, Some(1));

    // Back to monitor mode on reload: the kernel rule is released, the binary runs.
    std::fs::write(
        dir.path().join("policies/rules.yaml"),
        rules.replace("mode: enforce", "mode: monitor # reloaded"),
    )
    .expect("policy file");
    let deadline = std::time::Instant::now() + WAIT;
    while !enforcer.list().expect("list").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the reload did not release the kernel rule"
        );
        agent.collect_for(Duration::from_millis(50));
    }
    let mut again = spawn(Command::new(&denied).arg(&marker));
    assert!(again.wait(WAIT).success(), "released: the binary runs");
    assert!(marker.exists());
    agent.stop();
    assert!(
        !agent
            .events()
            .iter()
            .any(|e| finding_of(e, "kill-enforced-touch", free.pid).is_some())
    );
}

#[test]
fn a_monitor_rule_reports_and_does_nothing() {
    let dir = TempDir::new("monitor-exec");
    let watched = install_executable(Path::new("/usr/bin/touch"), dir.path(), "watched-touch");
    let rules = format!(
        "rules:\n  - name: would-kill-touch\n    match: {{kind: exec, process.binary: '{}'}}\n    action: kill_on_exec\n    mode: monitor\n",
        canonical(&watched)
    );
    let (config, private) = config(dir.path(), "monitor", &rules);
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let marker = dir.path().join("marker");
    let mut child = spawn(Command::new(&watched).arg(&marker));
    assert!(child.wait(WAIT).success(), "monitor mode lets it run");
    assert!(marker.exists());
    let pid = child.pid;
    let finding = agent.collect_until("the monitor finding", WAIT, |events| {
        events
            .iter()
            .find(|e| finding_of(e, "would-kill-touch", pid).is_some())
            .cloned()
    });
    eprintln!("{}", json(&finding));
    let f = finding_of(&finding, "would-kill-touch", pid).expect("finding");
    assert_eq!(f.outcome.action, "would_kill_on_exec");
    assert_eq!(f.outcome.status, Status::DryRun);
    agent.collect_for(Duration::from_millis(300));
    assert!(
        !agent
            .events()
            .iter()
            .any(|e| enforcement_of(e, pid).is_some())
    );
    assert!(
        !private.layout.bpffs_dir.exists(),
        "no rule acts: enforcement is not even installed"
    );
}

#[test]
fn a_userspace_kill_is_carried_out_and_reported_with_its_latency() {
    let dir = TempDir::new("enforce-kill");
    let sleeper = install_executable(Path::new("/usr/bin/sleep"), dir.path(), "doomed-sleep");
    let rules = format!(
        "rules:\n  - name: kill-doomed-sleep\n    match: {{kind: exec, process.binary: '{}'}}\n    action: kill\n    mode: enforce\n",
        canonical(&sleeper)
    );
    let (config, _private) = config(dir.path(), "kill", &rules);
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let mut child = spawn(Command::new(&sleeper).arg("30"));
    let status = child.wait(WAIT);
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    let pid = child.pid;
    let (enforcement, finding) = agent.collect_until("the kill and its finding", WAIT, |events| {
        let e = events.iter().find(|e| enforcement_of(e, pid).is_some())?;
        let f = events
            .iter()
            .find(|e| finding_of(e, "kill-doomed-sleep", pid).is_some())?;
        Some((e.clone(), f.clone()))
    });
    eprintln!("{}\n{}", json(&enforcement), json(&finding));
    let e = enforcement_of(&enforcement, pid).expect("enforcement");
    assert_eq!((e.action, e.by, e.outcome), ("kill", By::Userspace, "ok"));
    let f = finding_of(&finding, "kill-doomed-sleep", pid).expect("finding");
    assert_eq!(f.outcome.action, "kill");
    assert_eq!(f.outcome.status, Status::Ok, "{:?}", f.outcome);
    assert!(f.outcome.latency_ns > 0);
    assert!(
        matches!(f.outcome.target, Some(Target::Process { tgid, .. }) if tgid == pid),
        "{:?}",
        f.outcome.target
    );
}

/// A cgroup v2 directory made for one test, removed on drop (its processes have exited).
struct TestCgroup {
    dir: PathBuf,
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn an_enforced_deny_connect_rule_holds_in_its_cgroup_only() {
    let Some(root) = vigil::cgroup::CgroupFs::discover().v2_root else {
        panic!("no cgroup v2 mount: connect deny needs one");
    };
    let name = format!("vigil-test-deny-connect-{}", std::process::id());
    let cgroup = TestCgroup {
        dir: root.join(&name),
    };
    std::fs::create_dir(&cgroup.dir).expect("a test cgroup");
    let dir = TempDir::new("enforce-connect");
    let rules = format!(
        "rules:\n  - name: deny-loopback-from-test-cgroup\n    severity: high\n    match: {{kind: connect, process.cgroup: '/{name}', network.dst_ip: {{cidr: 127.0.0.0/8}}}}\n    action: deny_connect\n    mode: enforce\n"
    );
    let (config, _private) = config(dir.path(), "connect", &rules);
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    // One python child joins the test cgroup and then connects to a listener it opened
    // before; another does the same from its own cgroup. Each prints its errno (0: connected).
    let script = "import errno, os, socket, sys\n\
        srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)\n\
        if sys.argv[1]:\n\
        \x20   open(sys.argv[1] + '/cgroup.procs', 'w').write(str(os.getpid()))\n\
        c = socket.socket()\n\
        try:\n\
        \x20   c.connect(srv.getsockname()); print(0)\n\
        except OSError as e:\n\
        \x20   print(e.errno)\n";
    let run = |cgroup: &str| {
        let mut child = spawn(
            Command::new(vigil_tests::spawn::python3())
                .args(["-c", script, cgroup])
                .stdout(std::process::Stdio::piped()),
        );
        let lines = vigil_tests::spawn::all_lines(&child.stdout_lines(), WAIT);
        assert!(child.wait(WAIT).success(), "{lines:?}");
        (child.pid, lines)
    };
    let (inside, lines) = run(cgroup.dir.to_str().expect("utf-8 path"));
    assert_eq!(lines, [libc::EPERM.to_string()], "denied in the cgroup");
    let (_, lines) = run("");
    assert_eq!(lines, ["0"], "allowed outside it");

    let enforcement = agent.collect_until("the kernel's record", WAIT, |events| {
        events
            .iter()
            .find(|e| enforcement_of(e, inside).is_some())
            .cloned()
    });
    let e = enforcement_of(&enforcement, inside).expect("enforcement");
    assert_eq!(e.action, "connect_denied", "{}", json(&enforcement));
    assert_eq!(e.by, By::Kernel);
    assert_eq!(e.rule.as_deref(), Some("deny-loopback-from-test-cgroup"));
    agent.stop();
}
