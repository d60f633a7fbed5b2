//! BPF-LSM enforcement checks, on the install that prefers the BPF-LSM variants
//! (`enforce::install(.., true)`): deny an exec (`bprm_check_security`), an open
//! (`file_open`) and a connect (`socket_connect`), each next to a process, file or cgroup
//! that must be left alone.
//!
//! Where the install fell back for a duty (the kernel refuses BPF-LSM programs, or the `bpf`
//! LSM is not active) the row is `unsupported` with the install's reason and the fallback in
//! force; `super::enforce` checks those fallbacks on every kernel.

use std::{io::ErrorKind, path::Path, process::Command, time::Duration};

use crate::{
    cgroup::CgroupFs,
    enforce::{Duty, InstallReport},
    telemetry::chain,
};

use super::{
    BUSYBOX, Outcome,
    enforce::{Installed, TestCgroup, busybox_copy, connect_deny},
    trigger::Child,
};

const WAIT: Duration = Duration::from_secs(20);

/// The duties with a BPF-LSM variant: row, duty.
const ROWS: &[(&str, Duty)] = &[
    ("lsm.exec_deny", Duty::Exec),
    ("lsm.file_open_deny", Duty::Open),
    ("lsm.socket_connect_deny", Duty::Connect),
];

/// One row per BPF-LSM duty.
pub fn rows(
    install: Result<(&mut Installed, &InstallReport), &str>,
    workdir: &Path,
) -> Vec<(String, Outcome)> {
    let (installed, report) = match install {
        Ok(ok) => ok,
        Err(why) => {
            return ROWS
                .iter()
                .map(|&(row, _)| {
                    (
                        row.to_owned(),
                        Outcome::Fail(format!("the enforcement install failed: {why}")),
                    )
                })
                .collect();
        }
    };
    ROWS.iter()
        .map(|&(row, duty)| {
            let outcome = match report.fallbacks.iter().find(|f| f.duty == duty) {
                Some(fallback) => {
                    let instead = if fallback.programs.is_empty() {
                        "nothing (this duty needs BPF-LSM)".to_owned()
                    } else {
                        fallback.programs.join(", ")
                    };
                    Outcome::Unsupported(format!("{}; fallback: {instead}", fallback.reason))
                }
                None => match duty {
                    Duty::Exec => exec_deny(installed, workdir),
                    Duty::Open => open_deny(installed, workdir),
                    Duty::Connect => connect_deny(installed),
                    Duty::Sendmsg => Outcome::Fail("no BPF-LSM variant".into()),
                },
            };
            (row.to_owned(), outcome)
        })
        .collect()
}

fn outcome(result: Result<String, String>) -> Outcome {
    match result {
        Ok(detail) => Outcome::Pass(detail),
        Err(why) => Outcome::Fail(why),
    }
}

/// The exec of a denied copy of busybox fails with EPERM (the program is never loaded, so no
/// child runs); another copy runs.
fn exec_deny(installed: &mut Installed, workdir: &Path) -> Outcome {
    outcome((|| {
        let dir = workdir.join("lsm-bin");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let denied = busybox_copy(&dir, "busybox-lsm-denied")?;
        let allowed = busybox_copy(&dir, "busybox-lsm-allowed")?;
        let rule = installed
            .enforcer
            .deny_exec("cli", &denied, false, None)
            .map_err(|e| format!("deny rule: {}", chain(&e)))?;
        let refused = Command::new(&denied).arg("true").status();
        let other = Command::new(&allowed).arg("true").status();
        let record = installed
            .enforcer
            .drain_actions()
            .into_iter()
            .find(|a| a.rule_id == rule);
        let _ = installed.enforcer.release(rule);
        match (&refused, &other, record) {
            (Err(e), Ok(status), Some(record))
                if e.kind() == ErrorKind::PermissionDenied
                    && status.success()
                    && record.action == "exec_denied" =>
            {
                Ok(format!(
                    "exec of {} refused with EPERM (kernel record {} for pid {}); another copy ran and exited 0",
                    denied.display(),
                    record.action,
                    record.tgid
                ))
            }
            (refused, other, record) => Err(format!(
                "denied exec: {refused:?} (want EPERM), other copy: {other:?}, kernel record: {record:?}"
            )),
        }
    })())
}

/// `cat` of a protected file fails with EPERM in the denied cgroup and reads it in another
/// cgroup; another file opens in the denied cgroup.
fn open_deny(installed: &mut Installed, workdir: &Path) -> Outcome {
    outcome((|| {
        let root = CgroupFs::discover()
            .v2_root
            .ok_or("no cgroup v2 hierarchy is mounted")?;
        let deny = TestCgroup::new(&root, "vigil-selftest-open-deny")?;
        let allow = TestCgroup::new(&root, "vigil-selftest-open-allow")?;
        let secret = workdir.join("lsm-secret");
        let other = workdir.join("lsm-other");
        for (path, text) in [(&secret, "secret"), (&other, "other")] {
            std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        let rule = installed
            .enforcer
            .deny_open("cli", &secret, false, Some(&deny.rel))
            .map_err(|e| format!("deny rule: {}", chain(&e)))?;
        // busybox joins the cgroup, then `cat`s; the paths are the suite's own.
        let cat = |cgroup: &TestCgroup, file: &Path| -> Result<Option<i32>, String> {
            let script = format!(
                "echo 0 > {}/cgroup.procs && exec {BUSYBOX} cat {} > /dev/null",
                cgroup.dir.display(),
                file.display()
            );
            let mut child = Child::spawn(Command::new(BUSYBOX).args(["sh", "-c", &script]))
                .map_err(|e| format!("spawning busybox: {e}"))?;
            Ok(child.wait(WAIT).and_then(|s| s.code()))
        };
        let denied = cat(&deny, &secret)?;
        let allowed = cat(&allow, &secret)?;
        let unrelated = cat(&deny, &other)?;
        let record = installed
            .enforcer
            .drain_actions()
            .into_iter()
            .find(|a| a.rule_id == rule);
        let _ = installed.enforcer.release(rule);
        match (denied, allowed, unrelated, record) {
            (Some(code), Some(0), Some(0), Some(record))
                if code != 0 && record.action == "open_denied" =>
            {
                Ok(format!(
                    "open of {} refused in {} (cat exit {code}, kernel record {} for pid {}); read from {}; another file read in {}",
                    secret.display(),
                    deny.rel,
                    record.action,
                    record.tgid,
                    allow.rel,
                    deny.rel
                ))
            }
            (denied, allowed, unrelated, record) => Err(format!(
                "cat exits: denied {denied:?} (want non-zero), allowed {allowed:?}, other file {unrelated:?}; kernel record {record:?}"
            )),
        }
    })())
}
