//! An enforcement event (`kind: "enforcement"`): one containment action, taken by the kernel
//! (from the enforcement ring buffer: a kill at exec, a denied connect) or by the responder
//! thread (a kill, a freeze, an isolation), with its outcome.

use std::net::SocketAddr;

/// Who took the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// An enforcement program, synchronously, from its deny maps.
    Kernel,
    /// The responder thread, after the event.
    Userspace,
}

impl By {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Userspace => "userspace",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enforcement {
    /// Kernel: `exec_killed`, `connect_denied`, `sendmsg_denied`; userspace: the policy
    /// action (`kill`, `kill_tree`, `freeze`, `isolate`, `capture`).
    pub action: &'static str,
    pub by: By,
    /// The policy rule that asked for it; `None` for an operator's rule (`vigil contain`).
    pub rule: Option<String>,
    /// The enforcement rule (`vigil enforcement list`) the kernel applied, or the one the
    /// action recorded (freeze, isolate).
    pub rule_id: Option<u32>,
    /// As a finding's `action.target` (`exec:4242`, `process:4242:...`, `container:...`).
    pub target: String,
    /// The process acted on (0 for a container).
    pub tgid: u32,
    pub pid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    /// Exec: the executable the kernel rule names.
    pub binary: Option<String>,
    /// Network: the destination refused.
    pub destination: Option<SocketAddr>,
    /// `ok`, `failed`, `refused` (the guard: the agent itself, an allow-listed executable or
    /// cgroup), `rate_limited` or `dropped` (the responder's queue was full).
    pub outcome: &'static str,
    pub error: Option<String>,
    /// From the request to the end of the action (userspace); 0 for the kernel, which acts
    /// in the hook.
    pub latency_ns: u64,
}
