//! The rules and response stages of the pipeline: every event is evaluated against the
//! policy set in force, and each rule that fires adds a finding event after the batch.

use std::sync::Arc;

use super::{
    engine::PolicySet,
    finding::Finding,
    response::{self, DryRunResponder, Responder},
};
use crate::event::Event;

/// Counters of the policy stages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyStats {
    pub evaluated: u64,
    pub findings: u64,
    pub reloads: u64,
}

pub struct PolicyStage {
    set: Arc<PolicySet>,
    responder: Box<dyn Responder>,
    node: String,
    /// Reused for every event: the indices of the rules that fired.
    fired: Vec<u32>,
    findings: Vec<Event>,
    stats: PolicyStats,
}

impl PolicyStage {
    /// With the dry-run responder (see [`PolicyStage::set_responder`]).
    pub fn new(set: Arc<PolicySet>, node: String) -> Self {
        Self {
            set,
            responder: Box::new(DryRunResponder),
            node,
            fired: Vec::with_capacity(8),
            findings: Vec::new(),
            stats: PolicyStats::default(),
        }
    }

    pub fn set_responder(&mut self, responder: Box<dyn Responder>) {
        self.responder = responder;
    }

    /// Puts `set` in force from the next event on (a reload: the swap is atomic between
    /// batches, never half a set).
    pub fn replace(&mut self, set: Arc<PolicySet>) {
        self.set = set;
        self.stats.reloads += 1;
    }

    pub fn set(&self) -> &Arc<PolicySet> {
        &self.set
    }

    pub fn stats(&self) -> PolicyStats {
        self.stats
    }

    /// Evaluates the events of `out` from `start` on and appends their findings.
    pub fn process(&mut self, out: &mut Vec<Event>, start: usize) {
        let end = out.len();
        for event in &out[start..end] {
            self.stats.evaluated += 1;
            self.fired.clear();
            self.set.evaluate(event, &self.node, &mut self.fired);
            for &index in &self.fired {
                let rule = self.set.rule(index);
                let outcome = response::respond(
                    &mut *self.responder,
                    rule.action,
                    rule.mode,
                    &rule.info,
                    event,
                );
                let finding = Finding {
                    rule: rule.info.clone(),
                    mode: rule.mode,
                    action: rule.action,
                    outcome,
                    trigger: event.detail.clone(),
                };
                self.findings.push(Finding::event(event, finding));
            }
        }
        self.stats.findings += self.findings.len() as u64;
        out.append(&mut self.findings);
    }
}
