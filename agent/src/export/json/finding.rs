//! `finding: {rule, description, severity, tags, mode, event_kind, source, action: {...}}` of
//! a finding event. The rest of the line is the event that matched: its process, workload
//! and detail object (`exec`, `file`, `network`...), as that event's own line has them.

use serde::Serialize;

use crate::policy::Finding;

#[derive(Serialize)]
pub(super) struct FindingJson<'a> {
    rule: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    severity: &'static str,
    /// MITRE ATT&CK technique ids.
    tags: &'a [String],
    mode: &'static str,
    /// The kind of the event that matched.
    event_kind: &'static str,
    /// The policy file of the rule.
    source: &'a str,
    action: ActionJson<'a>,
}

#[derive(Serialize)]
struct ActionJson<'a> {
    /// `kill`, `would_kill` (monitor mode), `none`...
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    /// `none`, `dry_run`, `not_implemented`, `pending`, `ok`, `failed` or `no_target`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    latency_ns: u64,
}

impl<'a> FindingJson<'a> {
    pub(super) fn new(finding: &'a Finding) -> Self {
        let outcome = &finding.outcome;
        Self {
            rule: &finding.rule.name,
            description: &finding.rule.description,
            severity: finding.rule.severity.name(),
            tags: &finding.rule.tags,
            mode: finding.mode.name(),
            event_kind: finding.trigger.kind(),
            source: &finding.rule.source,
            action: ActionJson {
                name: outcome.action,
                target: outcome.target.as_ref().map(ToString::to_string),
                status: outcome.status.name(),
                error: outcome.error.as_deref(),
                latency_ns: outcome.latency_ns,
            },
        }
    }
}
