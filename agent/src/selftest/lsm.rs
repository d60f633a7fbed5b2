//! BPF-LSM enforcement checks: the slot where the LSM variants of the enforcement hooks are
//! tested on kernels that allow them.
//!
//! Today the agent ships no BPF-LSM program, so every row says `unsupported` with "not built
//! yet" and what the kernel would allow, clearly apart from a kernel that refuses LSM. When
//! an LSM program lands in the eBPF object (section `lsm/<hook>`), its row turns into
//! `unsupported: ... its selftest check is not written yet` until a check is added here:
//!
//! 1. write `fn <hook>(installed: &mut Installed, workdir: &Path) -> Outcome` below (deny an
//!    exec / an open of a protected file / a connect with the LSM program, scoped so that a
//!    second process is unaffected, the way `super::enforce` does for the fallbacks);
//! 2. return it from [`run_check`] for that hook.
//!
//! On a kernel where the probe says LSM programs are refused or the `bpf` LSM is inactive,
//! the row stays `unsupported` with the probe's reason and the fallback that enforcement
//! takes instead (kill-on-exec, cgroup connect deny), which `super::enforce` checks.

use std::path::Path;

use object::{Object as _, ObjectSection as _};

use crate::bpf::{OBJECT, probe::ProbeReport};

use super::{Outcome, enforce::Installed};

/// The LSM hooks Vigil's enforcement is meant to use, each with its row name and the
/// fallback taken without it.
pub const HOOKS: &[(&str, &str, &str)] = &[
    (
        "bprm_check_security",
        "lsm.exec_deny",
        "kill-on-exec (raw_tp/sched_process_exec + SIGKILL)",
    ),
    (
        "file_open",
        "lsm.file_open_deny",
        "none (files are only reported)",
    ),
    (
        "socket_connect",
        "lsm.socket_connect_deny",
        "cgroup connect deny (cgroup/connect4|6)",
    ),
];

/// The hooks of the `lsm/<hook>` (and sleepable `lsm.s/<hook>`) programs in the embedded
/// eBPF object.
pub fn lsm_programs_in_object() -> Vec<String> {
    let Ok(file) = object::File::parse(OBJECT) else {
        return Vec::new();
    };
    file.sections()
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .filter_map(|name| {
            name.strip_prefix("lsm/")
                .or_else(|| name.strip_prefix("lsm.s/"))
                .map(str::to_owned)
        })
        .collect()
}

/// One row per LSM hook.
pub fn rows(
    probe: &ProbeReport,
    installed: Option<&mut Installed>,
    workdir: &Path,
) -> Vec<(String, Outcome)> {
    let supported = |name: &str| {
        probe
            .features
            .iter()
            .find(|f| f.name == name)
            .map(|f| (f.supported, f.detail.clone()))
            .unwrap_or((false, "not probed".into()))
    };
    let (loads, loads_detail) = supported("lsm");
    let (active, active_detail) = supported("bpf_lsm_enabled");
    let kernel = match (loads, active) {
        (true, true) => "this kernel allows BPF-LSM".to_owned(),
        (false, _) => format!("this kernel refuses BPF-LSM programs ({loads_detail})"),
        (true, false) => format!("the bpf LSM is not active ({active_detail})"),
    };
    let built = lsm_programs_in_object();
    let mut installed = installed;
    HOOKS
        .iter()
        .map(|&(hook, row, fallback)| {
            let outcome = if !built.iter().any(|h| h == hook) {
                Outcome::Unsupported(format!(
                    "not built yet: the agent has no lsm/{hook} program; {kernel}; fallback: {fallback}"
                ))
            } else if !(loads && active) {
                Outcome::Unsupported(format!("{kernel}; fallback: {fallback}"))
            } else {
                match installed.as_deref_mut() {
                    Some(installed) => run_check(hook, installed, workdir),
                    None => Outcome::Fail("the enforcement install failed".into()),
                }
            };
            (row.to_owned(), outcome)
        })
        .collect()
}

/// The check of the LSM program at `hook`, on a kernel that allows BPF-LSM.
fn run_check(hook: &str, _installed: &mut Installed, _workdir: &Path) -> Outcome {
    // Add `"bprm_check_security" => exec_deny(installed, workdir),` and the others here.
    Outcome::Unsupported(format!(
        "lsm/{hook} is in the eBPF object but its selftest check is not written yet (agent/src/selftest/lsm.rs)"
    ))
}
