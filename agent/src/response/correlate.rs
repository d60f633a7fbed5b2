//! Findings wait for their action's outcome. A finding whose action was handed on
//! (`pending`) is held here until the outcome arrives, then emitted with it, next to an
//! enforcement event that reports the action itself:
//! - a kernel action (`kill_on_exec`, `deny_connect`) is completed by the kernel's record for
//!   the same rule and process (either may arrive first: records of our rules wait too);
//! - a userspace action by the responder thread's report for the same rule and target.
//!
//! Past `result_timeout`, a kernel finding says `failed` (the kernel did not act: the file is
//! not the one the rule was installed for) and a userspace one stays `pending` (its
//! enforcement event follows). Pure and synchronous: owned by the pipeline task.

use std::{collections::BTreeMap, sync::Arc};
use vigil_common::enforce::EnforceAction;

use super::{
    operator::QueueDrops,
    record::{By, Enforcement},
    worker::Report,
};
use crate::{
    event::{Detail, Event},
    policy::{Status, Target},
};

/// Findings held at most; past it a finding leaves at once, `pending`.
const MAX_HELD: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    /// A kernel action: the rule and the process it hit.
    Kernel { rule: String, tgid: u32 },
    /// A userspace action: the rule and the target, as the finding shows it.
    Job { rule: String, target: String },
}

struct Held {
    deadline_ns: u64,
    key: Key,
    event: Event,
}

pub struct Correlator {
    timeout_ns: u64,
    held: Vec<Held>,
    /// Kernel records of our rules that came before their finding.
    early: Vec<(u64, String, Event)>,
    /// Enforcement events emitted, by (action, outcome); findings dropped by a full queue.
    actions: BTreeMap<(&'static str, &'static str), u64>,
    /// Operators' requests refused by a full queue (counted by the API's side).
    queue_drops: Option<Arc<QueueDrops>>,
}

impl Correlator {
    pub fn new(timeout_ns: u64) -> Self {
        Self {
            timeout_ns,
            held: Vec::new(),
            early: Vec::new(),
            actions: BTreeMap::new(),
            queue_drops: None,
        }
    }

    /// Also counts the operators' requests that `drops` saw refused by a full queue.
    pub fn with_queue_drops(mut self, drops: Arc<QueueDrops>) -> Self {
        self.queue_drops = Some(drops);
        self
    }

    /// `vigil_enforcement_actions_total{action, outcome}`.
    pub fn actions(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut actions = self.actions.clone();
        for (action, n) in self.queue_drops.iter().flat_map(|d| d.snapshot()) {
            *actions.entry((action, "dropped")).or_default() += n;
        }
        actions.into_iter().map(|((a, o), n)| (a, o, n)).collect()
    }

    /// Takes the pending findings out of `out` (to be emitted when their outcome is known)
    /// and completes those whose kernel record came first.
    pub fn hold(&mut self, out: &mut Vec<Event>, now_ns: u64) {
        if !out.iter().any(|e| status(e).is_some()) {
            return;
        }
        let mut kept = Vec::with_capacity(out.len());
        let mut done = Vec::new();
        for event in out.drain(..) {
            let Some((status, key)) = status(&event) else {
                kept.push(event);
                continue;
            };
            if status == Status::Dropped {
                let action = finding_action(&event);
                *self.actions.entry((action, "dropped")).or_default() += 1;
            }
            let Some(key) = key.filter(|_| status == Status::Pending) else {
                kept.push(event);
                continue;
            };
            if let Key::Kernel { rule, tgid } = &key
                && let Some(at) = self
                    .early
                    .iter()
                    .position(|(_, r, e)| r == rule && record(e).is_some_and(|r| r.tgid == *tgid))
            {
                let (_, _, record) = self.early.remove(at);
                done.push((event, record));
                continue;
            }
            if self.held.len() >= MAX_HELD {
                kept.push(event);
                continue;
            }
            self.held.push(Held {
                deadline_ns: now_ns + self.timeout_ns,
                key,
                event,
            });
        }
        *out = kept;
        for (finding, record) in done {
            self.complete(finding, record, out);
        }
    }

    /// An outcome from the responder thread: its enforcement event, and the finding it
    /// completes when one is held.
    pub fn on_report(&mut self, report: Report, now_ns: u64, out: &mut Vec<Event>) {
        let (key, event) = match report {
            Report::Kernel {
                action,
                rule,
                binary,
            } => {
                let target = match action.destination {
                    Some(dst) => Target::Connection {
                        tgid: action.tgid,
                        dst: dst.to_string(),
                    },
                    None if action.action == EnforceAction::OpenDenied.name() => {
                        Target::Open { tgid: action.tgid }
                    }
                    None => Target::Exec { tgid: action.tgid },
                };
                let enforcement = Enforcement {
                    action: action.action,
                    by: By::Kernel,
                    rule: rule.clone(),
                    rule_id: Some(action.rule_id),
                    target: target.to_string(),
                    tgid: action.tgid,
                    pid: action.pid,
                    comm: action.comm,
                    cgroup_id: action.cgroup_id,
                    binary,
                    destination: action.destination,
                    outcome: "ok",
                    error: None,
                    latency_ns: 0,
                    operator: None,
                };
                let event = Event::new(
                    action.time_ns,
                    action.pid,
                    None,
                    None,
                    Detail::Enforcement(Box::new(enforcement)),
                );
                let Some(rule) = rule else {
                    // An operator's rule: no finding to wait for.
                    self.emit(event, out);
                    return;
                };
                (
                    Key::Kernel {
                        rule,
                        tgid: action.tgid,
                    },
                    event,
                )
            }
            // The pipeline gives these their context first (`Response::on_report`).
            Report::Operator(enforcement) => {
                let event = Event::new(
                    now_ns,
                    enforcement.pid,
                    None,
                    None,
                    Detail::Enforcement(enforcement),
                );
                self.emit(event, out);
                return;
            }
            Report::Done(enforcement) => {
                let key = Key::Job {
                    rule: enforcement.rule.clone().unwrap_or_default(),
                    target: enforcement.target.clone(),
                };
                (
                    key,
                    Event::new(
                        now_ns,
                        enforcement.tgid,
                        None,
                        None,
                        Detail::Enforcement(enforcement),
                    ),
                )
            }
        };
        match self.held.iter().position(|h| h.key == key) {
            Some(at) => {
                let held = self.held.remove(at);
                self.complete(held.event, event, out);
            }
            None => match key {
                // The finding may still be on its way (another ring buffer).
                Key::Kernel { rule, .. } => {
                    self.early.push((now_ns + self.timeout_ns, rule, event))
                }
                Key::Job { .. } => self.emit(event, out),
            },
        }
    }

    /// Lets out what waited past the timeout.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<Event>) {
        let timeout_ms = self.timeout_ns / 1_000_000;
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].deadline_ns > now_ns {
                i += 1;
                continue;
            }
            let mut held = self.held.remove(i);
            if let Detail::Finding(f) = &mut held.event.detail {
                match held.key {
                    Key::Kernel { .. } => {
                        f.outcome.status = Status::Failed;
                        f.outcome.error = Some(format!(
                            "no kernel enforcement record within {timeout_ms} ms: the kernel did not act (is the executable the file the rule was installed for?)"
                        ));
                    }
                    Key::Job { .. } => {
                        f.outcome.error = Some(format!(
                            "no outcome within {timeout_ms} ms; an enforcement event reports it"
                        ));
                    }
                }
            }
            out.push(held.event);
        }
        let (due, early): (Vec<_>, Vec<_>) = self
            .early
            .drain(..)
            .partition(|(deadline, _, _)| *deadline <= now_ns);
        self.early = early;
        for (_, _, event) in due {
            self.emit(event, out);
        }
    }

    /// Lets everything out (shutdown).
    pub fn drain(&mut self, out: &mut Vec<Event>) {
        self.expire(u64::MAX, out);
    }

    /// Emits `finding` with the outcome of `enforcement`, and the enforcement event with the
    /// finding's process and workload.
    fn complete(&mut self, mut finding: Event, mut enforcement: Event, out: &mut Vec<Event>) {
        if let (Detail::Finding(f), Detail::Enforcement(e)) =
            (&mut finding.detail, &enforcement.detail)
        {
            f.outcome.status = if e.outcome == "ok" {
                Status::Ok
            } else {
                Status::Failed
            };
            f.outcome.error = e.error.clone();
            f.outcome.latency_ns = match e.by {
                // In the hook: from the event to the kernel's record of the action.
                By::Kernel => enforcement.time_ns.saturating_sub(finding.time_ns),
                By::Userspace | By::Operator => e.latency_ns,
            };
        }
        enforcement.process = finding.process.clone();
        enforcement.parent = finding.parent.clone();
        enforcement.ancestors = finding.ancestors.clone();
        enforcement.container = finding.container.clone();
        enforcement.pod = finding.pod.clone();
        self.emit(enforcement, out);
        out.push(finding);
    }

    /// Emits an enforcement event (or any event) and counts its action.
    pub fn emit(&mut self, event: Event, out: &mut Vec<Event>) {
        if let Some(e) = record(&event) {
            *self.actions.entry((e.action, e.outcome)).or_default() += 1;
        }
        out.push(event);
    }
}

fn record(event: &Event) -> Option<&Enforcement> {
    match &event.detail {
        Detail::Enforcement(e) => Some(e),
        _ => None,
    }
}

fn finding_action(event: &Event) -> &'static str {
    match &event.detail {
        Detail::Finding(f) => f.action.name(),
        _ => "none",
    }
}

/// A finding's status and, when it waits for an outcome, the key of that outcome.
fn status(event: &Event) -> Option<(Status, Option<Key>)> {
    let Detail::Finding(f) = &event.detail else {
        return None;
    };
    let status = f.outcome.status;
    // A finding let out past its timeout carries an error: it is not held twice.
    let pending = status == Status::Pending && f.outcome.error.is_none();
    if !pending && status != Status::Dropped {
        return None;
    }
    let rule = f.rule.name.clone();
    let key = f.outcome.target.as_ref().map(|target| match target {
        Target::Exec { tgid } | Target::Open { tgid } | Target::Connection { tgid, .. } => {
            Key::Kernel { rule, tgid: *tgid }
        }
        other => Key::Job {
            rule,
            target: other.to_string(),
        },
    });
    Some((status, key))
}

#[cfg(test)]
mod tests;
