//! Containment of containers started through the CRI of a real containerd (runc, the
//! kubelet's cgroupfs layout): a container found by its id, its network isolated while the
//! other container of its pod and the host still connect, and the container frozen and
//! thawed while the other one keeps running. Then end to end: a policy rule in enforce mode
//! freezes a container when something runs in it, and an operator thaws it with `vigil
//! contain thaw` through the agent's API.
//!
//! The pods use the node's network (there is no CNI here), so a container's loopback is the
//! host's: the test's listener on 127.0.0.1 is reachable from inside, and only the cgroup of
//! the isolated container sets its connects apart. Enforcement is installed under a layout
//! private to each test and is declared after the pod, so it is cleared (and what it froze
//! thawed) before the pod is removed and containerd stopped, even when an assertion fails.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    time::Duration,
};

use vigil::{
    cgroup::CgroupFs,
    config::Config,
    enforce::CgroupRef,
    event::{Detail, Event},
    policy::{Finding, Status, Target},
    response::{By, Enforcement},
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    binary::{run, vigil_binary},
    containerd::Containerd,
    enforcement::{Installed, PrivateLayout, install},
    json::render,
    pod::{Pod, PodSpec},
    spawn::TempDir,
};

/// A container that does nothing until its pod is stopped.
const IDLE: [&str; 2] = ["/bin/sleep", "100000"];
/// A container that appends a line to `/ticks` (in its own root) every 50 ms.
const TICKER: [&str; 3] = [
    "/bin/sh",
    "-c",
    "while :; do echo x >> /ticks; sleep 0.05; done",
];
/// Long enough for [`TICKER`] to write several lines, even on a loaded machine.
const PROGRESS: Duration = Duration::from_millis(500);

/// What [`connect_from`] prints when the connect went through.
const CONNECTED: &str = "rc=0";
/// What it prints when the kernel refused the connect with EPERM.
const DENIED: &str = "nc: can't connect to remote host (127.0.0.1): Operation not permitted\nrc=1";

/// A TCP connect from inside container `id` (busybox `nc`, run by `ExecSync` as `kubectl
/// exec` would) to 127.0.0.1:`port`: nc's error line, if any, then `rc=<its exit code>`.
#[track_caller]
fn connect_from(pod: &Pod<'_>, id: &str, port: u16) -> String {
    let script = format!("/bin/busybox nc 127.0.0.1 {port} -e /bin/true 2>&1; echo rc=$?");
    let (code, out) = pod.exec_sync(id, &["/bin/sh", "-c", &script]);
    assert_eq!(code, 0, "the shell around nc failed: {out}");
    out.trim().to_owned()
}

/// The cgroup of container `id` of the pod `spec`, found by the enforcer from the id alone
/// (in full and by its 12-character short form).
#[track_caller]
fn container_cgroup(installed: &Installed, spec: &PodSpec, id: &str) -> CgroupRef {
    let cgroup = installed
        .enforcer
        .container_cgroup(id)
        .expect("the container's cgroup is found by its id");
    assert_eq!(cgroup.path, format!("{}/{id}", spec.cgroup_parent()));
    assert_eq!(
        Some(cgroup.id),
        CgroupFs::discover().cgroup_id(&cgroup.path),
        "the id the connect programs see"
    );
    let short = installed
        .enforcer
        .container_cgroup(&id[..12])
        .expect("the container's cgroup is found by its short id");
    assert_eq!(short, cgroup);
    cgroup
}

#[test]
fn isolating_a_cri_container_cuts_its_network_and_nothing_else() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let spec = PodSpec::unique("isolate");
    let pod = containerd.run_pod(spec.clone());
    let target = pod.start_container("target", &IDLE, &[]);
    let neighbour = pod.start_container("neighbour", &IDLE, &[]);
    let Some(mut installed) = install("cri-isolate") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let port = listener.local_addr().expect("its address").port();
    assert_eq!(connect_from(&pod, &target, port), CONNECTED, "before");

    let cgroup = container_cgroup(&installed, &spec, &target);
    let rule = installed
        .enforcer
        .isolate_ref("cli", cgroup.clone())
        .expect("the container is isolated");
    assert_eq!(connect_from(&pod, &target, port), DENIED, "isolated");
    assert_eq!(
        connect_from(&pod, &neighbour, port),
        CONNECTED,
        "the other container of the pod is not isolated"
    );
    TcpStream::connect(("127.0.0.1", port)).expect("the host still connects");

    // What the kernel recorded: the isolated container's connect, and nothing else.
    let actions = installed.enforcer.drain_actions();
    let denied = actions
        .iter()
        .find(|a| a.action == "connect_denied")
        .unwrap_or_else(|| panic!("no record of the denied connect: {actions:?}"));
    assert_eq!(
        (denied.rule_id, denied.cgroup_id, denied.destination),
        (
            rule,
            cgroup.id,
            Some(SocketAddr::from(([127, 0, 0, 1], port)))
        ),
        "{actions:?}"
    );
    assert_eq!(denied.comm, "busybox");
    assert!(
        actions.iter().all(|a| a.cgroup_id == cgroup.id),
        "only the isolated container was denied anything: {actions:?}"
    );
    let rules = installed.enforcer.list().expect("the rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].hits.is_some_and(|h| h >= 1), "{rules:?}");

    installed
        .enforcer
        .release(rule)
        .expect("the isolation is released");
    assert_eq!(connect_from(&pod, &target, port), CONNECTED, "released");
}

/// Where the host reads the `/ticks` of the container whose first process is `pid`.
fn ticks_of(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root/ticks"))
}

/// Whether the file at `path` grew during `wait`: whether its writer made progress.
fn grows(path: &Path, wait: Duration) -> bool {
    let len = || std::fs::metadata(path).map_or(0, |m| m.len());
    let before = len();
    std::thread::sleep(wait);
    len() > before
}

#[test]
fn freezing_a_cri_container_stops_it_until_thawed() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let spec = PodSpec::unique("freeze");
    let pod = containerd.run_pod(spec.clone());
    let target = pod.start_container("target", &TICKER, &[]);
    let neighbour = pod.start_container("neighbour", &TICKER, &[]);
    let Some(mut installed) = install("cri-freeze") else {
        return;
    };
    let cgroup = container_cgroup(&installed, &spec, &target);
    let pid = pod.container_pid(&target);
    assert_eq!(
        CgroupFs::discover().v2_path_of_pid(Path::new(&format!("/proc/{pid}"))),
        Some(cgroup.path.clone()),
        "the container's first process is in the cgroup found"
    );
    let (target_ticks, neighbour_ticks) = (ticks_of(pid), ticks_of(pod.container_pid(&neighbour)));
    assert!(grows(&target_ticks, PROGRESS), "the container runs");

    installed
        .enforcer
        .freeze("cli", Path::new(&cgroup.path))
        .expect("the container is frozen");
    let v2_dir = CgroupFs::discover()
        .v2_root
        .expect("a cgroup v2 root")
        .join(cgroup.path.trim_start_matches('/'));
    let events = std::fs::read_to_string(v2_dir.join("cgroup.events")).expect("cgroup.events");
    assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    assert!(!grows(&target_ticks, PROGRESS), "frozen: no progress");
    assert!(
        grows(&neighbour_ticks, PROGRESS),
        "the other container of the pod still runs"
    );
    let rules = installed.enforcer.list().expect("the rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].rule.kind.name(), "freeze");

    installed
        .enforcer
        .thaw(Path::new(&cgroup.path))
        .expect("the container is thawed");
    assert!(
        installed.enforcer.list().expect("the rules").is_empty(),
        "thawing drops the freeze rule"
    );
    assert!(grows(&target_ticks, PROGRESS), "thawed: runs again");
    let (code, ticks) = pod.exec_sync(&target, &["/bin/cat", "/ticks"]);
    assert_eq!(code, 0, "the thawed container runs what the runtime asks");
    assert!(ticks.lines().count() > 1, "{ticks}");
}

/// A [`TICKER`] that, when the host drops a `/trigger` file in its root, removes it and runs
/// `/bin/echo vigil-freeze-trigger`: an exec inside the container, at a moment of the test's
/// choosing.
const TRIGGERED_TICKER: [&str; 3] = [
    "/bin/sh",
    "-c",
    "while :; do echo x >> /ticks; if [ -e /trigger ]; then rm /trigger; /bin/echo vigil-freeze-trigger; fi; sleep 0.05; done",
];

/// The cgroup v2 directory of container `id` of the pod `spec`.
fn v2_dir(spec: &PodSpec, id: &str) -> PathBuf {
    CgroupFs::discover()
        .v2_root
        .expect("a cgroup v2 root")
        .join(format!("{}/{id}", spec.cgroup_parent()).trim_start_matches('/'))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn finding_of<'e>(event: &'e Event, rule: &str) -> Option<&'e Finding> {
    match &event.detail {
        Detail::Finding(f) if f.rule.name == rule && f.outcome.status != Status::Pending => Some(f),
        _ => None,
    }
}

fn enforcement_of<'e>(event: &'e Event, by: By, action: &str) -> Option<&'e Enforcement> {
    match &event.detail {
        Detail::Enforcement(e) if e.by == by && e.action == action => Some(e),
        _ => None,
    }
}

#[test]
fn a_policy_freezes_a_container_on_exec_and_an_operator_thaws_it_through_the_api() {
    let Some(vigil) = vigil_binary() else {
        return;
    };
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let spec = PodSpec::unique("policy-freeze");
    let pod = containerd.run_pod(spec.clone());
    let target = pod.start_container("target", &TRIGGERED_TICKER, &[]);
    let neighbour = pod.start_container("neighbour", &TICKER, &[]);

    // An agent with one rule: an exec of the trigger in this test's pod freezes its container.
    let dir = TempDir::new("policy-freeze");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("a policy directory");
    let rule = "freeze-on-trigger";
    let policy = format!(
        "rules:\n  - name: {rule}\n    severity: critical\n    match: {{kind: exec, pod.name: '{}', process.args: vigil-freeze-trigger}}\n    action: freeze\n    mode: enforce\n",
        spec.name
    );
    std::fs::write(policies.join("freeze.yaml"), &policy).expect("the policy file");
    let socket = dir.path().join("run/vigil.sock");
    let socket_arg = socket.to_str().expect("UTF-8 path");
    let private = PrivateLayout::new("cri-policy-freeze", &dir.path().join("state"));
    let mut config = Config::default();
    config.api.socket = socket.clone();
    config.enrich.cri_socket = containerd.socket().display().to_string();
    config.policy.default_pack = false;
    config.policy.directory = policies.display().to_string();
    config.policy.reload_interval_ms = 100;
    private.apply(&mut config);
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };

    let pid = pod.container_pid(&target);
    let (target_ticks, neighbour_ticks) = (ticks_of(pid), ticks_of(pod.container_pid(&neighbour)));
    assert!(grows(&target_ticks, PROGRESS), "the container runs");
    let dir_v2 = v2_dir(&spec, &target);
    assert_eq!(read(&dir_v2.join("cgroup.freeze")).trim(), "0");

    // The exec inside the container.
    std::fs::write(format!("/proc/{pid}/root/trigger"), "").expect("the trigger file");
    let (finding, frozen) =
        agent.collect_until("the finding and its freeze", EVENT_TIMEOUT, |events| {
            let finding = events.iter().find(|e| finding_of(e, rule).is_some())?;
            let frozen = events
                .iter()
                .find(|e| enforcement_of(e, By::Userspace, "freeze").is_some())?;
            Some((finding.clone(), frozen.clone()))
        });
    eprintln!("{}\n{}", render(&finding), render(&frozen));
    let f = finding_of(&finding, rule).expect("the finding");
    assert_eq!(f.outcome.action, "freeze");
    assert_eq!(f.outcome.status, Status::Ok, "{:?}", f.outcome);
    assert_eq!(
        f.outcome.target,
        Some(Target::Container { id: target.clone() })
    );
    assert!(f.outcome.latency_ns > 0);
    let process = finding.process.as_deref().expect("the exec's process");
    assert_eq!(process.args[1], b"vigil-freeze-trigger");
    assert_eq!(
        finding.container.as_deref().map(|c| c.id.as_str()),
        Some(target.as_str())
    );
    assert_eq!(
        finding.pod.as_deref().and_then(|p| p.name.as_deref()),
        Some(spec.name.as_str())
    );
    let e = enforcement_of(&frozen, By::Userspace, "freeze").expect("the freeze");
    assert_eq!(e.outcome, "ok", "{e:?}");
    assert_eq!(e.rule.as_deref(), Some(rule));
    assert_eq!(e.target, format!("container:{target}"));
    let freeze_rule = e.rule_id.expect("the freeze is recorded as a rule");

    // Frozen: the cgroup says so, and the container makes no progress.
    assert_eq!(read(&dir_v2.join("cgroup.freeze")).trim(), "1");
    assert!(
        read(&dir_v2.join("cgroup.events"))
            .lines()
            .any(|l| l == "frozen 1"),
        "cgroup.events"
    );
    assert!(!grows(&target_ticks, PROGRESS), "frozen: no progress");
    // The rest of the node is not: the pod's other container, and the host.
    assert!(
        grows(&neighbour_ticks, PROGRESS),
        "the neighbour still runs"
    );
    assert!(
        std::process::Command::new("/bin/true")
            .status()
            .expect("a host process")
            .success()
    );
    let list = run(&vigil, &["enforcement", "--socket", socket_arg, "list"]);
    assert!(
        list.ok().contains(&format!("{freeze_rule}  freeze"))
            && list.ok().contains(&format!("(origin policy:{rule})")),
        "{list:?}"
    );

    // A reload of the policies does not thaw what a rule froze: only an operator does.
    std::fs::write(
        policies.join("freeze.yaml"),
        format!("{policy}  - name: reloaded\n    match: {{kind: exit}}\n"),
    )
    .expect("the policy file");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the client");
    rt.block_on(async {
        let mut client = vigil::api::client::connect(&socket).await.expect("the API");
        let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let info = client
                .get_info(vigil::api::proto::InfoRequest {})
                .await
                .expect("GetInfo")
                .into_inner();
            if info.policies == 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the reload never came"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // The responder thread reconciles within its next round (50 ms).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        read(&dir_v2.join("cgroup.freeze")).trim(),
        "1",
        "still frozen after the reload"
    );
    let list = run(&vigil, &["enforcement", "--socket", socket_arg, "list"]);
    assert!(
        list.ok().contains(&format!("{freeze_rule}  freeze")),
        "{list:?}"
    );

    // The operator thaws it through the agent, by the container's short id.
    let short = &target[..12];
    let thawed = run(
        &vigil,
        &[
            "contain",
            "--socket",
            socket_arg,
            "--reason",
            "forensics done",
            "thaw",
            "--container",
            short,
        ],
    );
    assert_eq!(
        thawed.ok().trim(),
        format!("thawed container:{target} (released rules {freeze_rule})"),
        "reported by its whole id"
    );
    assert_eq!(read(&dir_v2.join("cgroup.freeze")).trim(), "0");
    assert!(grows(&target_ticks, PROGRESS), "thawed: runs again");
    let thaw = agent.collect_until("the thaw's event", EVENT_TIMEOUT, |events| {
        events
            .iter()
            .find(|e| enforcement_of(e, By::Operator, "thaw").is_some())
            .cloned()
    });
    eprintln!("{}", render(&thaw));
    let t = enforcement_of(&thaw, By::Operator, "thaw").expect("the thaw");
    assert_eq!((t.outcome, t.rule_id), ("ok", Some(freeze_rule)));
    assert_eq!(t.target, format!("container:{target}"));
    assert_eq!(
        t.operator.as_deref().map(|o| o.reason.as_str()),
        Some("forensics done")
    );
    // Correlatable: the container and pod of the thawed container.
    assert_eq!(
        thaw.container.as_deref().map(|c| c.id.as_str()),
        Some(target.as_str())
    );
    assert_eq!(
        thaw.pod.as_deref().and_then(|p| p.name.as_deref()),
        Some(spec.name.as_str())
    );
    let list = run(&vigil, &["enforcement", "--socket", socket_arg, "list"]);
    assert!(
        list.ok().contains("no rules"),
        "thawing drops the freeze rule: {list:?}"
    );
    let (code, _) = pod.exec_sync(&target, &["/bin/true"]);
    assert_eq!(code, 0, "the thawed container runs what the runtime asks");
    agent.stop();
}
