//! Vigil's own records back from their messages: findings, enforcement actions, losses.
//! Rules never match the first two; they are restored so that a capture reads back whole.

use std::sync::Arc;

use vigil_common::{enforce::EnforceAction, stats::KernelCounter};

use super::{RestoreError, invalid, missing, text};
use crate::{
    api::proto::{self, event::Detail as Pd},
    event::Loss,
    policy::{Action, Finding, Mode, Outcome, RuleInfo, Severity, Status, response},
    response::{By, Enforcement},
    telemetry::Drop,
};

const STATUSES: [Status; 9] = [
    Status::None,
    Status::DryRun,
    Status::NotImplemented,
    Status::Pending,
    Status::Ok,
    Status::Failed,
    Status::NoTarget,
    Status::Dropped,
    Status::Disabled,
];

/// The target is worked out again from the trigger, as the response stage did. Not
/// carried: the rule's source file (empty), the action's error and latency.
pub(super) fn finding(f: &proto::Finding) -> Result<Finding, RestoreError> {
    let trigger = f.trigger.as_deref().ok_or_else(|| missing("trigger"))?;
    // Findings are never matched, so never trigger one (and a record cannot nest forever).
    if matches!(trigger.detail, Some(Pd::Finding(_))) {
        return Err(invalid("trigger.kind", &trigger.kind, "a kind rules match"));
    }
    let trigger = super::event(trigger).map_err(|e| e.within("trigger"))?;
    if f.event_kind != trigger.detail.kind() {
        return Err(invalid(
            "event_kind",
            &f.event_kind,
            "the kind of `trigger`",
        ));
    }
    if f.rule.is_empty() {
        return Err(missing("rule"));
    }
    let mode =
        Mode::parse(&f.mode).ok_or_else(|| invalid("mode", &f.mode, "monitor or enforce"))?;
    let reported = |a: &Action| match mode {
        Mode::Monitor => a.would_name(),
        Mode::Enforce => a.name(),
    };
    let action = Action::ALL
        .iter()
        .copied()
        .find(|a| reported(a) == f.action)
        .ok_or_else(|| {
            invalid(
                "action",
                &f.action,
                "an action as its mode reports it (`would_<action>` in monitor mode)",
            )
        })?;
    let status = STATUSES
        .into_iter()
        .find(|s| s.name() == f.action_status)
        .ok_or_else(|| invalid("action_status", &f.action_status, "a status Vigil reports"))?;
    Ok(Finding {
        rule: Arc::new(RuleInfo {
            name: f.rule.clone(),
            description: f.description.clone(),
            severity: Severity::parse(&f.severity).ok_or_else(|| {
                invalid(
                    "severity",
                    &f.severity,
                    "info, low, medium, high or critical",
                )
            })?,
            tags: f.tags.clone(),
            source: String::new(),
        }),
        mode,
        action,
        outcome: Outcome {
            action: reported(&action),
            target: (action != Action::None)
                .then(|| response::target(action, &trigger))
                .flatten(),
            status,
            error: None,
            latency_ns: 0,
        },
        trigger: trigger.detail,
    })
}

/// The process acted on is read from the target (`process:<tgid>:...`, `exec:<tgid>`...):
/// the message does not name it otherwise. Not carried: its thread, comm and cgroup, the
/// kernel rule's id, the executable, the latency.
pub(super) fn enforcement(e: &proto::Enforcement) -> Result<Enforcement, RestoreError> {
    let kernel = (1..=3)
        .filter_map(EnforceAction::from_u32)
        .map(EnforceAction::name);
    let userspace = Action::ALL
        .iter()
        .filter(|a| **a != Action::None)
        .map(|a| a.name());
    let action = text::one_of(
        &e.action,
        kernel.chain(userspace),
        "action",
        "an enforcement action Vigil takes",
    )?;
    let by = match e.by.as_str() {
        "kernel" => By::Kernel,
        "userspace" => By::Userspace,
        other => return Err(invalid("by", other, "kernel or userspace")),
    };
    let outcome = text::one_of(
        &e.outcome,
        ["ok", "failed", "refused", "rate_limited", "dropped"],
        "outcome",
        "ok, failed, refused, rate_limited or dropped",
    )?;
    let mut parts = e.target.split(':');
    let kind = parts.next().unwrap_or_default();
    let tgid = match kind {
        "process" | "process_tree" | "exec" | "connection" => {
            parts.next().and_then(|t| t.parse().ok())
        }
        _ => None,
    };
    let destination = e
        .target
        .strip_prefix("connection:")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(_, dst)| dst.parse().ok());
    Ok(Enforcement {
        action,
        by,
        rule: super::non_empty(&e.rule),
        rule_id: None,
        target: e.target.clone(),
        tgid: tgid.unwrap_or(0),
        pid: tgid.unwrap_or(0),
        comm: String::new(),
        cgroup_id: 0,
        binary: None,
        destination,
        outcome,
        error: super::non_empty(&e.error),
        latency_ns: 0,
        // Not carried back: rules never match enforcement events.
        operator: None,
    })
}

/// Causes in the order the agent reports them: kernel counters, then userspace drops, then
/// the API's own.
fn loss_causes() -> impl Iterator<Item = &'static str> {
    let kernel = KernelCounter::ALL
        .into_iter()
        .filter(|c| c.is_loss())
        .map(KernelCounter::name);
    // `crate::api::convert::stream_loss`'s cause.
    kernel
        .chain(Drop::ALL.into_iter().map(Drop::name))
        .chain(["api_client_lagged"])
}

pub(super) fn loss(l: &proto::Loss) -> Result<Loss, RestoreError> {
    for cause in l.causes.keys() {
        text::one_of(
            cause,
            loss_causes(),
            &format!("causes.{cause}"),
            "a loss cause Vigil counts",
        )?;
    }
    let counts: Vec<(&'static str, u64)> = loss_causes()
        .filter_map(|cause| l.causes.get(cause).map(|&n| (cause, n)))
        .collect();
    // Checked: the counts are the file's, and may be anything.
    let sum = counts
        .iter()
        .try_fold(0u64, |sum, (_, n)| sum.checked_add(*n));
    if sum != Some(l.total) {
        return Err(invalid("total", l.total, "the sum of `causes`"));
    }
    Ok(Loss { counts })
}
