//! Containment of containers started through the CRI of a real containerd (runc, the
//! kubelet's cgroupfs layout): a container found by its id, its network isolated while the
//! other container of its pod and the host still connect, and the container frozen and
//! thawed while the other one keeps running.
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

use vigil::{cgroup::CgroupFs, enforce::CgroupRef};
use vigil_tests::{
    containerd::Containerd,
    enforcement::{Installed, install},
    pod::{Pod, PodSpec},
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
