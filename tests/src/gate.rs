//! Whether a privileged test can run here. A test that cannot (no privileges, no BTF, no
//! `vigil` binary) prints why and returns; with `VIGIL_REQUIRE_BPF=1` (CI, `cargo xtask
//! test` on a machine that must run them) it fails instead, so a green run means the tests
//! really ran.

use std::{error::Error, io::Write as _};

use vigil::{
    bpf::{BpfError, preflight},
    runtime::StartError,
};

/// The variable that turns a skip into a failure.
pub const REQUIRE_BPF_VAR: &str = "VIGIL_REQUIRE_BPF";

/// Whether `VIGIL_REQUIRE_BPF` is set to something other than `0` or nothing.
pub fn bpf_required() -> bool {
    std::env::var(REQUIRE_BPF_VAR).is_ok_and(|v| !matches!(v.trim(), "" | "0"))
}

/// Gives up on the running test: prints `reason` and returns, so that the caller returns
/// too; panics instead when `VIGIL_REQUIRE_BPF=1`.
#[track_caller]
pub fn skip(reason: &str) {
    if bpf_required() {
        panic!("{REQUIRE_BPF_VAR}=1 and this test cannot run: {reason}");
    }
    announce_skip(&format!(
        "{reason} (set {REQUIRE_BPF_VAR}=1 to make this a failure)"
    ));
}

/// Prints that the running test gives up, and why, even when output is captured: the test
/// harness captures `eprintln!` of passing tests, and a skip nobody sees reads as a pass.
/// For what no machine is required to have (a mount, a tool); see [`skip`] for eBPF.
pub fn announce_skip(reason: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

/// Whether this process has the capabilities that loading the sensor needs.
pub fn privileged() -> bool {
    preflight::caps_sufficient(preflight::effective_caps())
}

/// Whether a start failure comes from this machine (privileges, kernel features) rather than
/// from Vigil: only those may be skipped, and only without `VIGIL_REQUIRE_BPF=1`.
pub fn is_environmental(error: &StartError) -> bool {
    match error {
        StartError::Bpf(BpfError::Preflight(_)) => true,
        StartError::Bpf(BpfError::Object(_) | BpfError::Program { .. }) => denied_by_kernel(error),
        _ => false,
    }
}

/// Whether a syscall somewhere in the causes of `error` was refused for lack of privileges
/// (in a container without CAP_BPF, under a seccomp profile, with a locked-down kernel).
fn denied_by_kernel(error: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return true;
        }
        cause = current.source();
    }
    false
}

/// `error` and each of its causes, joined by `: `.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}
