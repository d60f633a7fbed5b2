//! An enforcement event (`kind: "enforcement"`): one containment action, taken by the kernel
//! (from the enforcement ring buffer: a kill at exec, a denied connect), by the responder
//! thread for a policy rule (a kill, a freeze, an isolation), or by the responder thread for
//! an operator who asked through the API (`vigil contain`), with its outcome.

use std::net::SocketAddr;

use crate::{enforce::Rule, enrich::cgroup_path::ContainerRef, process::ProcessKey};

/// Who took the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// An enforcement program, synchronously, from its deny maps.
    Kernel,
    /// The responder thread, after the event.
    Userspace,
    /// The responder thread, for an operator's request through the API.
    Operator,
}

impl By {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Userspace => "userspace",
            Self::Operator => "operator",
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
    /// An operator's action: who asked, why, and the rule it made or removed.
    pub operator: Option<Box<Operator>>,
}

/// What an operator's action adds to its event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Operator {
    /// The API peer: `uid=0 pid=4242` on the unix socket, `tls:ADDRESS` over TCP.
    pub requested_by: String,
    /// What the operator gave as the reason (may be empty).
    pub reason: String,
    /// The enforcement rule the action made (or, for a release, removed).
    pub record: Option<Rule>,
    /// The process acted on (read from /proc before the action: tick-precise start time),
    /// for the pipeline to attach it from its cache.
    pub process: Option<ProcessKey>,
    /// The container acted on, as its cgroup path names it.
    pub container: Option<ContainerRef>,
}
