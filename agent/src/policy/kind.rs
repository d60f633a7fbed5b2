//! Event kinds as rules name them (the JSON `kind`), and the bit sets rules are indexed by.

use crate::event::Detail;

/// Every kind a rule may name, in index order. `finding` is not among them: findings are
/// never matched (a rule cannot fire on another rule's finding).
pub const KINDS: &[&str] = &[
    "exec",
    "fork",
    "exit",
    "syscall",
    "connect",
    "accept",
    "bind",
    "listen",
    "close",
    "file",
    "dns",
    "loss",
    "cred_change",
];

/// Slot of events whose kind this table does not know yet (a kind added since): only rules
/// that name no kind see them.
pub const OTHER: usize = KINDS.len();
/// Number of slots in the index (every kind, plus [`OTHER`]).
pub const SLOTS: usize = KINDS.len() + 1;

/// A set of kinds, one bit per [`KINDS`] index (bit [`OTHER`] for unknown kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindSet(pub u32);

impl KindSet {
    pub const ALL: Self = Self((1 << SLOTS) - 1);
    pub const NONE: Self = Self(0);

    pub fn of(names: &[&str]) -> Self {
        Self(
            names
                .iter()
                .filter_map(|n| index(n))
                .fold(0, |set, i| set | 1 << i),
        )
    }

    pub const fn contains(self, slot: usize) -> bool {
        self.0 & (1 << slot) != 0
    }

    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_only(self, name: &str) -> bool {
        index(name).is_some_and(|i| self.0 == 1 << i)
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        KINDS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.contains(*i))
            .map(|(_, n)| *n)
    }
}

/// Index of kind `name` in [`KINDS`].
pub fn index(name: &str) -> Option<usize> {
    KINDS.iter().position(|k| *k == name)
}

/// The slot of an event's kind; `None` for findings (never matched).
pub fn slot(detail: &Detail) -> Option<usize> {
    // By name rather than by variant, so that a kind added to `Detail` keeps this compiling
    // and lands in OTHER until it is given a slot here.
    Some(match detail.kind() {
        "exec" => 0,
        "fork" => 1,
        "exit" => 2,
        "syscall" => 3,
        "connect" => 4,
        "accept" => 5,
        "bind" => 6,
        "listen" => 7,
        "close" => 8,
        "file" => 9,
        "dns" => 10,
        "loss" => 11,
        "cred_change" => 12,
        // Containment's own records: a rule firing on them could act on its own actions.
        "finding" | "enforcement" => return None,
        _ => OTHER,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_table() {
        for (i, name) in KINDS.iter().enumerate() {
            assert_eq!(index(name), Some(i));
        }
        assert!(KindSet::of(&["exec"]).is_only("exec"));
        assert!(!KindSet::of(&["exec", "file"]).is_only("exec"));
        assert!(KindSet::ALL.contains(OTHER));
    }
}
