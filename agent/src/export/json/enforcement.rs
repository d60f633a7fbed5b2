//! `enforcement: {action, by, rule, rule_id, target, tgid, pid, comm, cgroup_id, binary,
//! destination, outcome, error, latency_ns, requested_by, reason, record}` of an enforcement
//! event (`kind: "enforcement"`). The process, container and pod are those of the finding it
//! completes, when there is one; for an operator's action, those the pipeline knows of its
//! target.

use serde::Serialize;

use crate::{enforce::Rule, response::Enforcement};

#[derive(Serialize)]
pub(super) struct EnforcementJson<'a> {
    /// `exec_killed`, `connect_denied`, `sendmsg_denied` (kernel); `kill`, `kill_tree`,
    /// `freeze`, `isolate` (userspace); `deny_exec`, `deny_connect`, `isolate`, `freeze`,
    /// `thaw`, `kill`, `kill_tree`, `release` (operator).
    action: &'static str,
    /// `kernel`, `userspace` (a policy rule's action) or `operator` (through the API).
    by: &'static str,
    /// The policy rule; absent for an operator's rule (`vigil contain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_id: Option<u32>,
    target: &'a str,
    tgid: u32,
    pid: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    comm: &'a str,
    cgroup_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
    /// `ok`, `failed`, `refused`, `rate_limited`, `dropped`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    latency_ns: u64,
    /// Operator actions: who asked (the API peer), why, and the rule made or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a Rule>,
}

impl<'a> EnforcementJson<'a> {
    pub(super) fn new(e: &'a Enforcement) -> Self {
        Self {
            action: e.action,
            by: e.by.name(),
            rule: e.rule.as_deref(),
            rule_id: e.rule_id,
            target: &e.target,
            tgid: e.tgid,
            pid: e.pid,
            comm: &e.comm,
            cgroup_id: e.cgroup_id,
            binary: e.binary.as_deref(),
            destination: e.destination.map(|d| d.to_string()),
            outcome: e.outcome,
            error: e.error.as_deref(),
            latency_ns: e.latency_ns,
            requested_by: e.operator.as_ref().map(|o| o.requested_by.as_str()),
            reason: e
                .operator
                .as_ref()
                .map(|o| o.reason.as_str())
                .filter(|r| !r.is_empty()),
            record: e.operator.as_ref().and_then(|o| o.record.as_ref()),
        }
    }
}
