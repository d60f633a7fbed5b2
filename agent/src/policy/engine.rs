//! A policy set: the compiled rules of every file, indexed by event kind. Evaluation is pure
//! (`&self`) and allocates nothing: it walks the rules of the event's kind and appends the
//! index of every rule that fires (all of them, in load order: no first-match).

use super::{
    kind::{self, SLOTS},
    rule::Rule,
};
use crate::event::Event;

#[derive(Debug, Default)]
pub struct PolicySet {
    rules: Vec<Rule>,
    /// Rule indices by kind slot, in load order.
    by_kind: [Vec<u32>; SLOTS],
    /// The files the set was built from, in load order.
    sources: Vec<String>,
}

impl PolicySet {
    /// Builds the index. Rule names are unique (checked by the loader).
    pub fn new(rules: Vec<Rule>, sources: Vec<String>) -> Self {
        let mut by_kind: [Vec<u32>; SLOTS] = Default::default();
        for (i, rule) in rules.iter().enumerate() {
            for (slot, list) in by_kind.iter_mut().enumerate() {
                if rule.kinds.contains(slot) {
                    list.push(i as u32);
                }
            }
        }
        Self {
            rules,
            by_kind,
            sources,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rule(&self, index: u32) -> &Rule {
        &self.rules[index as usize]
    }

    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Appends to `out` the index of every rule that fires on `event`.
    pub fn evaluate(&self, event: &Event, node: &str, out: &mut Vec<u32>) {
        let Some(slot) = kind::slot(&event.detail) else {
            return;
        };
        for &i in &self.by_kind[slot] {
            if self.rules[i as usize].fires(event, node) {
                out.push(i);
            }
        }
    }
}
