//! A finding: the event that matched a rule, the rule, and what the response did about it.
//! It travels as its own event (`Detail::Finding`, `kind: "finding"` in the JSON), with the
//! same process, parent, ancestors, container and pod as the event that matched.

use std::sync::Arc;

use super::{
    action::{Action, Mode},
    response::Outcome,
    rule::RuleInfo,
};
use crate::event::{Detail, Event};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: Arc<RuleInfo>,
    pub mode: Mode,
    pub action: Action,
    pub outcome: Outcome,
    /// The detail of the event that matched (an exec, a file open...).
    pub trigger: Detail,
}

impl Finding {
    /// The finding event for `trigger`: its process and workload, this finding as detail.
    pub fn event(trigger: &Event, finding: Finding) -> Event {
        Event {
            time_ns: trigger.time_ns,
            pid: trigger.pid,
            process: trigger.process.clone(),
            parent: trigger.parent.clone(),
            ancestors: trigger.ancestors.clone(),
            container: trigger.container.clone(),
            pod: trigger.pod.clone(),
            detail: Detail::Finding(Box::new(finding)),
        }
    }
}
