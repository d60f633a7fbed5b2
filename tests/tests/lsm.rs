//! BPF-LSM enforcement: deny exec (`bprm_check_security`), deny open (`file_open`) and deny
//! connect (`socket_connect`) before the operation, each scoped so that other files,
//! binaries and cgroups are unaffected.
//!
//! Where the kernel does not run BPF-LSM programs (this project's CI kernel refuses BPF
//! trampolines) the install must say so and fall back: the fallback half of each test runs
//! everywhere and asserts it; the BPF-LSM half skips with the kernel's reason. The kernel
//! matrix (`cargo xtask test-kernels`) runs the same checks on stock kernels where BPF-LSM
//! works.

use std::{
    io::ErrorKind, os::unix::process::ExitStatusExt, path::Path, process::Command, time::Duration,
};

use vigil::enforce::Duty;
use vigil_tests::{
    enforcement::install_preferring_lsm,
    gate,
    spawn::{TempDir, install_executable, spawn},
};

const WAIT: Duration = Duration::from_secs(10);

/// The reason BPF-LSM was not used for `duty`, from the install's report.
fn fell_back(report: &vigil::enforce::InstallReport, duty: Duty) -> Option<String> {
    report
        .fallbacks
        .iter()
        .find(|f| f.duty == duty)
        .map(|f| f.reason.clone())
}

#[test]
fn exec_and_open_are_denied_before_they_happen_or_the_fallback_is_reported() {
    let Some((mut installed, report)) = install_preferring_lsm("lsm-file") else {
        return;
    };
    let dir = TempDir::new("lsm-file");
    let denied = install_executable(Path::new("/usr/bin/touch"), dir.path(), "lsm-denied");
    let allowed = install_executable(Path::new("/usr/bin/touch"), dir.path(), "lsm-allowed");
    let secret = dir.path().join("secret");
    let other = dir.path().join("other");
    std::fs::write(&secret, b"s").expect("secret file");
    std::fs::write(&other, b"o").expect("other file");

    if let Some(reason) = fell_back(&report, Duty::Exec) {
        // The fallback: kill-on-exec attached, no open deny, and a refusal that says why.
        assert!(
            report.attached.contains(&"enforce_exec"),
            "{:?}",
            report.attached
        );
        assert!(!report.attached.contains(&"enforce_lsm_exec"));
        assert!(fell_back(&report, Duty::Open).is_some(), "{report:?}");
        let refused = installed
            .enforcer
            .deny_open("cli", &secret, false, None)
            .expect_err("no BPF-LSM: deny_open is refused");
        let message = refused.to_string();
        assert!(message.contains("needs BPF-LSM"), "{message}");
        let rule = installed
            .enforcer
            .deny_exec("cli", &denied, false, None)
            .expect("deny rule");
        let marker = dir.path().join("marker");
        let status = spawn(Command::new(&denied).arg(&marker)).wait(WAIT);
        assert_eq!(status.signal(), Some(9), "fallback: killed at exec");
        let actions = installed.enforcer.drain_actions();
        assert!(
            actions
                .iter()
                .any(|a| a.rule_id == rule && a.action == "exec_killed"),
            "{actions:?}"
        );
        gate::announce_skip(&format!(
            "BPF-LSM exec/open deny not testable on this kernel ({reason}); the fallback was checked"
        ));
        return;
    }

    // BPF-LSM: the exec fails with EPERM and the binary never runs.
    let rule = installed
        .enforcer
        .deny_exec("cli", &denied, false, None)
        .expect("deny rule");
    let marker = dir.path().join("marker");
    let error = Command::new(&denied)
        .arg(&marker)
        .status()
        .expect_err("the exec is refused");
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert!(!marker.exists(), "the denied binary ran");
    assert!(
        spawn(Command::new(&allowed).arg(&marker))
            .wait(WAIT)
            .success(),
        "another binary still runs"
    );
    let open_rule = installed
        .enforcer
        .deny_open("cli", &secret, false, None)
        .expect("open rule");
    let error = std::fs::read(&secret).expect_err("the open is refused");
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error}");
    assert_eq!(std::fs::read(&other).expect("another file opens"), b"o");
    let actions = installed.enforcer.drain_actions();
    let me = std::process::id();
    assert!(
        actions
            .iter()
            .any(|a| a.rule_id == rule && a.action == "exec_denied"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.rule_id == open_rule && a.action == "open_denied" && a.tgid == me),
        "{actions:?}"
    );
    installed.enforcer.release(open_rule).expect("release");
    assert_eq!(std::fs::read(&secret).expect("released: it opens"), b"s");
}
