//! What `vigil probe` says about enforcement: which path each kind of enforcement takes on
//! this kernel. BPF-LSM hooks (`bprm_check_security`, `socket_connect`, `file_open`) would
//! deny before the operation; this version always takes the fallbacks, and says so when the
//! kernel would have allowed LSM.

use vigil_common::maps::programs;

use crate::bpf::probe::Use;

/// The enforcement programs' uses, given whether BPF-LSM programs load and the `bpf` LSM is
/// active.
pub fn uses(lsm_loads: bool, bpf_lsm_active: bool) -> Vec<Use> {
    let lsm_note: &'static str = match (lsm_loads, bpf_lsm_active) {
        (true, true) => {
            "BPF-LSM is available here, but Vigil's LSM variants are not written yet: the fallback is used"
        }
        (false, _) => {
            "BPF-LSM programs are refused by this kernel (no BPF trampolines or lsm program type): the fallback is used"
        }
        (true, false) => "the bpf LSM is not active (boot with lsm=...,bpf): the fallback is used",
    };
    vec![
        Use {
            program: programs::ENFORCE_EXEC,
            hook: "raw_tp/sched_process_exec + bpf_send_signal(SIGKILL)".into(),
            mechanism: "kill-on-exec (pinned)",
            reason: lsm_note,
        },
        Use {
            program: programs::ENFORCE_CONNECT4,
            hook: "cgroup/connect4, connect6, sendmsg4, sendmsg6".into(),
            mechanism: "cgroup_sock_addr at the cgroup v2 root (pinned links)",
            reason: "denies before the connection with EPERM, per cgroup; needs no LSM",
        },
    ]
}
