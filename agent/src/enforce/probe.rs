//! What `vigil probe` says about enforcement: which program does each duty on this kernel.
//! The BPF-LSM variants (`bprm_check_security`, `file_open`, `socket_connect`) refuse before
//! the operation; they are chosen where BPF-LSM programs load and the `bpf` LSM is active,
//! and the fallbacks (kill-on-exec, cgroup connect deny) otherwise. The install makes the
//! same choice and proves it by attaching (see `install::ensure_installed`).

use vigil_common::maps::programs;

use crate::bpf::probe::Use;

const NO_LSM_PROGRAMS: &str = "BPF-LSM programs are refused by this kernel (no BPF trampolines or no lsm program type): the fallback is used";
const LSM_INACTIVE: &str = "the bpf LSM is not active: boot with `bpf` in lsm= (e.g. lsm=lockdown,capability,landlock,yama,bpf) to deny before the operation; the fallback is used";

/// The enforcement programs' uses, given whether BPF-LSM programs load and the `bpf` LSM is
/// active.
pub fn uses(lsm_loads: bool, bpf_lsm_active: bool) -> Vec<Use> {
    let cgroup_sendmsg = Use {
        program: programs::ENFORCE_SENDMSG4,
        hook: "cgroup/sendmsg4, sendmsg6".into(),
        mechanism: "cgroup_sock_addr at the cgroup v2 root (pinned links)",
        reason: "unconnected UDP sends, per cgroup, EPERM before the send; needs no LSM",
    };
    if lsm_loads && bpf_lsm_active {
        let lsm = "BPF-LSM (pinned link)";
        let before = "refuses before the operation with EPERM: the program never runs, the file is never opened, the connection is never made";
        return vec![
            Use {
                program: programs::ENFORCE_LSM_EXEC,
                hook: "lsm/bprm_check_security".into(),
                mechanism: lsm,
                reason: before,
            },
            Use {
                program: programs::ENFORCE_LSM_OPEN,
                hook: "lsm/file_open".into(),
                mechanism: lsm,
                reason: before,
            },
            Use {
                program: programs::ENFORCE_LSM_CONNECT,
                hook: "lsm/socket_connect".into(),
                mechanism: lsm,
                reason: before,
            },
            cgroup_sendmsg,
        ];
    }
    let why: &'static str = if lsm_loads {
        LSM_INACTIVE
    } else {
        NO_LSM_PROGRAMS
    };
    vec![
        Use {
            program: programs::ENFORCE_EXEC,
            hook: "raw_tp/sched_process_exec + bpf_send_signal(SIGKILL)".into(),
            mechanism: "kill-on-exec (pinned)",
            reason: why,
        },
        Use {
            program: programs::ENFORCE_LSM_OPEN,
            hook: "lsm/file_open".into(),
            mechanism: "not available: deny_open rules are refused",
            reason: why,
        },
        Use {
            program: programs::ENFORCE_CONNECT4,
            hook: "cgroup/connect4, connect6".into(),
            mechanism: "cgroup_sock_addr at the cgroup v2 root (pinned links)",
            reason: why,
        },
        cgroup_sendmsg,
    ]
}
