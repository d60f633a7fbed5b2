//! Offline replay (`vigil replay`): recorded events go through the policy stage again, so a
//! policy can be tried on what nodes saw. Each message is restored ([`restore::event`]) and
//! handed to a [`PolicyStage`] as the live pipeline hands it a batch, so findings are the
//! ones live evaluation gives, as domain events. Nothing is enforced: the stage has the
//! dry-run responder (enforce-mode findings say `not_implemented`).

use std::{collections::BTreeMap, sync::Arc};

use super::restore::{self, RestoreError};
use crate::{
    api::proto::{self, event::Detail as Pd},
    event::Event,
    policy::{PolicySet, PolicyStage},
};

/// Counters of one replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Messages read.
    pub read: u64,
    /// Events the rules were evaluated on.
    pub evaluated: u64,
    /// Findings and enforcement records: rules never match them, live or here.
    pub skipped: u64,
    /// Messages that could not be restored.
    pub errors: u64,
    pub findings: u64,
}

/// A finding of the replay, with the node its rules saw (print it with
/// `crate::api::convert::event(&r.event, &r.node, &restore::clock())`).
#[derive(Clone, Debug)]
pub struct Replayed {
    pub node: String,
    pub event: Event,
}

/// A replay in progress: feed it messages one at a time (a capture need not fit in memory).
pub struct Replay {
    set: Arc<PolicySet>,
    /// Rules read `node`, and a capture may hold several nodes' events: one stage per node.
    stages: BTreeMap<String, PolicyStage>,
    /// Evaluate every event as if on this node, instead of the node it was recorded on.
    node: Option<String>,
    /// The one-event batch handed to the stage, reused.
    batch: Vec<Event>,
    stats: ReplayStats,
}

impl Replay {
    pub fn new(set: Arc<PolicySet>, node: Option<String>) -> Self {
        Self {
            set,
            stages: BTreeMap::new(),
            node,
            batch: Vec::with_capacity(4),
            stats: ReplayStats::default(),
        }
    }

    /// Evaluates `message` and appends its findings to `out`; a message that cannot be
    /// restored is the error (and counted), and the replay can go on.
    pub fn push(
        &mut self,
        message: &proto::Event,
        out: &mut Vec<Replayed>,
    ) -> Result<(), RestoreError> {
        self.stats.read += 1;
        if matches!(message.detail, Some(Pd::Finding(_) | Pd::Enforcement(_))) {
            self.stats.skipped += 1;
            return Ok(());
        }
        let event = restore::event(message).inspect_err(|_| self.stats.errors += 1)?;
        let node = self.node.as_deref().unwrap_or(&message.node);
        let stage = self
            .stages
            .entry(node.to_owned())
            .or_insert_with_key(|node| PolicyStage::new(self.set.clone(), node.clone()));
        self.batch.clear();
        self.batch.push(event);
        stage.process(&mut self.batch, 0);
        self.stats.evaluated += 1;
        for finding in self.batch.drain(1..) {
            self.stats.findings += 1;
            out.push(Replayed {
                node: node.to_owned(),
                event: finding,
            });
        }
        Ok(())
    }

    pub fn stats(&self) -> ReplayStats {
        self.stats
    }
}

/// What [`replay`] found.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Replayed>,
    /// Messages that could not be restored: their index in the input, and why.
    pub errors: Vec<(usize, RestoreError)>,
    pub stats: ReplayStats,
}

/// Replays `messages` against `set` (each on its own node, or on `node` when given).
pub fn replay(
    messages: impl IntoIterator<Item = proto::Event>,
    set: Arc<PolicySet>,
    node: Option<&str>,
) -> Report {
    let mut replay = Replay::new(set, node.map(str::to_owned));
    let mut report = Report::default();
    for (i, message) in messages.into_iter().enumerate() {
        if let Err(error) = replay.push(&message, &mut report.findings) {
            report.errors.push((i, error));
        }
    }
    report.stats = replay.stats();
    report
}

#[cfg(test)]
mod tests;
