//! Enforcement checks through the same path `vigil contain --direct` takes: the enforcement
//! programs installed and pinned (in a private bpffs folder, cleared at the end), rules
//! written into their deny maps by [`Enforcer`], and processes that must be stopped next to
//! processes that must not be.

use std::{
    os::unix::{fs::PermissionsExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{
    cgroup::CgroupFs,
    enforce::{Enforcer, Guard, InstallReport, Layout, clear},
};

use super::{
    BUSYBOX, Outcome,
    capture::loopback_listener,
    trigger::{self, Child},
};

const WAIT: Duration = Duration::from_secs(20);
const SIGKILL: i32 = 9;

/// The installed enforcement, cleared (unpinned, detached) on drop.
pub struct Installed {
    pub enforcer: Enforcer,
    layout: Layout,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Err(error) = clear(&self.layout) {
            eprintln!("vigil selftest: clearing enforcement: {error}");
        }
    }
}

/// Installs the enforcement programs under `<workdir>` state and a private bpffs folder: the
/// BPF-LSM variants where this kernel runs them (`lsm`), else the fallbacks every kernel
/// runs (what a kernel without BPF-LSM gets, checked on every kernel).
pub fn install(workdir: &Path, lsm: bool) -> Result<(Installed, InstallReport), String> {
    let name = if lsm { "lsm" } else { "fallback" };
    let layout = Layout {
        bpffs_dir: PathBuf::from(format!("/sys/fs/bpf/vigil-selftest-{name}")),
        state_dir: workdir.join(format!("enforcement-{name}")),
    };
    let guard = Guard::new(&[], &[]);
    let (enforcer, report) = if lsm {
        Enforcer::install(layout.clone(), guard)
    } else {
        Enforcer::install_fallbacks(layout.clone(), guard)
    }
    .map_err(|e| crate::telemetry::chain(&e))?;
    Ok((Installed { enforcer, layout }, report))
}

/// A copy of busybox at `dir/name`: its own inode, so a rule on it touches no other binary.
pub fn busybox_copy(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::copy(BUSYBOX, &path).map_err(|e| format!("copying {BUSYBOX}: {e}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    Ok(path)
}

/// Kill-on-exec: a denied copy of busybox is killed at exec (SIGKILL, the kernel's record
/// names it), while an allowed copy started before keeps running and ends normally.
pub fn kill_on_exec(installed: &mut Installed, workdir: &Path) -> Outcome {
    match try_kill_on_exec(installed, workdir) {
        Ok(detail) => Outcome::Pass(detail),
        Err(why) => Outcome::Fail(why),
    }
}

fn try_kill_on_exec(installed: &mut Installed, workdir: &Path) -> Result<String, String> {
    let dir = workdir.join("bin");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // busybox runs argv[1] as the applet when its own name starts with "busybox".
    let denied = busybox_copy(&dir, "busybox-denied")?;
    let allowed = busybox_copy(&dir, "busybox-allowed")?;
    let rule = installed
        .enforcer
        .deny_exec("cli", &denied, false, None)
        .map_err(|e| format!("deny rule: {}", crate::telemetry::chain(&e)))?;
    let spawn = |path: &Path, args: &[&str]| {
        Child::spawn(Command::new(path).args(args))
            .map_err(|e| format!("spawning {}: {e}", path.display()))
    };
    let mut running = spawn(&allowed, &["sleep", "2"])?;
    let mut victim = spawn(&denied, &["true"])?;
    let status = victim.wait(WAIT);
    let still_running = running.running();
    let other = running.wait(WAIT);
    let record = installed
        .enforcer
        .drain_actions()
        .into_iter()
        .find(|a| a.tgid == victim.pid);
    let _ = installed.enforcer.release(rule);
    let killed = status.and_then(|s| s.signal()) == Some(SIGKILL);
    match (killed, still_running, other.map(|s| s.success()), record) {
        (true, true, Some(true), Some(record)) => Ok(format!(
            "pid {} killed at exec ({}, rule {}); the allowed copy kept running and exited 0",
            victim.pid, record.action, record.rule_id
        )),
        (killed, still_running, other_ok, record) => Err(format!(
            "denied copy ended {status:?} (killed: {killed}), kernel record {record:?}; allowed copy running during it: {still_running}, ended ok: {other_ok:?}"
        )),
    }
}

/// A cgroup v2 directory below the root, removed on drop.
pub struct TestCgroup {
    pub dir: PathBuf,
    /// Below the v2 root, as in /proc/PID/cgroup.
    pub rel: String,
}

impl TestCgroup {
    pub fn new(root: &Path, name: &str) -> Result<Self, String> {
        let dir = root.join(name);
        if !dir.is_dir() {
            std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        Ok(Self {
            dir,
            rel: format!("/{name}"),
        })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The triggers have exited; the kernel may take a moment to empty the cgroup.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Connect deny per cgroup: a child in the denied cgroup gets EPERM connecting to a loopback
/// listener, a child in another cgroup connects to the same address.
pub fn connect_deny(installed: &mut Installed) -> Outcome {
    match try_connect_deny(installed) {
        Ok(detail) => Outcome::Pass(detail),
        Err(why) => Outcome::Fail(why),
    }
}

fn try_connect_deny(installed: &mut Installed) -> Result<String, String> {
    let root = CgroupFs::discover()
        .v2_root
        .ok_or("no cgroup v2 hierarchy is mounted")?;
    let deny = TestCgroup::new(&root, "vigil-selftest-deny")?;
    let allow = TestCgroup::new(&root, "vigil-selftest-allow")?;
    let (_listener, addr) = loopback_listener().map_err(|e| format!("listener: {e}"))?;
    let rule = installed
        .enforcer
        .deny_connect("cli", &deny.rel, "127.0.0.1/32", &[addr.port()])
        .map_err(|e| format!("deny rule: {}", crate::telemetry::chain(&e)))?;
    let run = |cgroup: &Path| -> Result<Option<i32>, String> {
        let mut child = Child::spawn(&mut trigger::connect_command(addr, Some(cgroup)))
            .map_err(|e| format!("spawning the connect trigger: {e}"))?;
        Ok(child.wait(WAIT).and_then(|s| s.code()))
    };
    let denied = run(&deny.dir)?;
    let allowed = run(&allow.dir)?;
    let record = installed
        .enforcer
        .drain_actions()
        .into_iter()
        .find(|a| a.rule_id == rule && a.destination == Some(addr));
    let _ = installed.enforcer.release(rule);
    if denied == Some(trigger::DENIED)
        && allowed == Some(trigger::CONNECTED)
        && let Some(record) = record
    {
        Ok(format!(
            "connect to {addr}: EPERM in {}, connected from {}; kernel record {} for pid {}",
            deny.rel, allow.rel, record.action, record.tgid
        ))
    } else {
        Err(format!(
            "connect to {addr}: exit {denied:?} in {} (expected {} for EPERM), exit {allowed:?} in {} (expected {} for connected)",
            deny.rel,
            trigger::DENIED,
            allow.rel,
            trigger::CONNECTED
        ))
    }
}
