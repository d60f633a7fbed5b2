//! Bounded storage of processes: by key, with exit grace periods, a size bound in entries and
//! bytes, and an eviction order that keeps the ancestors of live processes.
//!
//! - An exited process stays for the grace period so late events resolve; after it, it goes,
//!   unless children in the store still name it as parent (then it is kept as an ancestor and
//!   looked at again one grace period later). A chain of exited ancestors above a live
//!   process therefore stays whole, and goes from the bottom up once the process is gone.
//! - Past `max_entries` or `max_bytes`, exited processes go first (oldest exit first), then
//!   the oldest live processes that have no children; only if every candidate has children
//!   does an ancestor go. Every removal is counted by reason.

use std::{
    collections::{VecDeque, hash_map::Entry as Slot},
    sync::Arc,
};

// Keys are the kernel's pids and start times: foldhash is fast on them and seeded per run.
use foldhash::HashMap;

use super::{Image, Process, ProcessKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
    /// How long an exited process stays resolvable, in ns.
    pub exit_grace_ns: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Removed to stay within the bounds.
    pub evictions: u64,
    /// Of those, processes that still had live children (the bound won over ancestry).
    pub evicted_ancestors: u64,
    /// Exited processes removed after their grace period.
    pub expired: u64,
}

#[derive(Debug)]
struct Entry {
    process: Arc<Process>,
    exited_at_ns: Option<u64>,
    /// Processes in the store (live, or exited and kept) whose parent is this one.
    children: u32,
    bytes: usize,
}

#[derive(Debug)]
pub struct Store {
    limits: StoreLimits,
    entries: HashMap<ProcessKey, Entry>,
    /// Keys in insertion order; may hold keys already removed (skipped when popped).
    order: VecDeque<ProcessKey>,
    /// (exit time, key) in exit order, for the grace-period sweep.
    exited: VecDeque<(u64, ProcessKey)>,
    bytes: usize,
    stats: StoreStats,
}

/// Approximate heap and table cost of one process, for the byte bound. Counts its image
/// whole even when shared with its parent (a forked child that has not exec'd), and the JSON
/// exporter's renderings of it as a parent (`Process::parent_json`) and of its image
/// (`Image::json`) as if made.
pub fn process_bytes(p: &Process) -> usize {
    const FIXED: usize = size_of::<Process>() + size_of::<Image>() + size_of::<Entry>() + 64;
    let args = p
        .args
        .iter()
        .map(|a| a.len() + size_of::<Vec<u8>>())
        .sum::<usize>();
    // Its member names, pid and start time, and its texts.
    let parent_json = 64 + p.binary.path.len() + args + p.exec_id.as_str().len();
    // The image's `process` members: their names, and its texts (each arg quoted).
    let image_json = 64
        + p.binary.path.len()
        + p.args.iter().map(|a| a.len() + 3).sum::<usize>()
        + p.cwd.path.len()
        + p.comm.len()
        + p.cgroup_path.len();
    FIXED
        + p.binary.path.len()
        + p.cwd.path.len()
        + args
        + p.comm.len()
        + p.cgroup_path.len()
        + p.exec_id.as_str().len()
        + p.parent_exec_id.as_ref().map_or(0, |id| id.as_str().len())
        + parent_json
        + image_json
}

impl Store {
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            entries: HashMap::default(),
            order: VecDeque::new(),
            exited: VecDeque::new(),
            bytes: 0,
            stats: StoreStats::default(),
        }
    }

    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes accounted for the stored processes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, key: &ProcessKey) -> Option<&Arc<Process>> {
        self.entries.get(key).map(|e| &e.process)
    }

    /// The first stored process whose key satisfies `wanted` (a scan: for rare lookups).
    pub fn find(&self, wanted: impl Fn(&ProcessKey) -> bool) -> Option<&Arc<Process>> {
        self.entries
            .iter()
            .find(|(key, _)| wanted(key))
            .map(|(_, e)| &e.process)
    }

    /// Stores `process`, replacing the entry of the same key (an exec) and keeping its place
    /// in the tree; then evicts to stay within the bounds.
    pub fn insert(&mut self, process: Arc<Process>) {
        let key = process.key;
        let bytes = process_bytes(&process);
        let parent = process.parent;
        self.bytes += bytes;
        // One lookup for both cases: at the bound every insert also evicts, so the cache
        // pays for each lookup of its table.
        match self.entries.entry(key) {
            Slot::Occupied(mut slot) => {
                let entry = slot.get_mut();
                self.bytes -= entry.bytes;
                entry.bytes = bytes;
                let old = std::mem::replace(&mut entry.process, process);
                if old.parent != parent {
                    self.adjust_children(old.parent, -1);
                    self.adjust_children(parent, 1);
                }
            }
            Slot::Vacant(slot) => {
                slot.insert(Entry {
                    process,
                    exited_at_ns: None,
                    children: 0,
                    bytes,
                });
                self.order.push_back(key);
                self.adjust_children(parent, 1);
            }
        }
        self.evict_over_bounds(key);
    }

    /// Moves the entry under `from` to `to` (a snapshot entry getting its exact key).
    pub fn rekey(&mut self, from: ProcessKey, to: Arc<Process>) {
        let Some(old) = self.entries.remove(&from) else {
            return;
        };
        self.bytes -= old.bytes;
        let key = to.key;
        let bytes = process_bytes(&to);
        self.bytes += bytes;
        self.entries.insert(
            key,
            Entry {
                process: to,
                bytes,
                ..old
            },
        );
        self.order.push_back(key);
        // Children stored under the approximate key keep pointing at it; they are counted
        // here already, and resolve the parent through the re-keyed entry.
    }

    /// Marks `key` exited at `now_ns` (the last thread of the group is gone).
    pub fn mark_exited(&mut self, key: ProcessKey, now_ns: u64) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        if entry.exited_at_ns.is_some() {
            return;
        }
        entry.exited_at_ns = Some(now_ns);
        self.exited.push_back((now_ns, key));
    }

    /// Removes exited processes whose grace period ended before `now_ns`, except those that
    /// are still ancestors of live processes (looked at again one grace period later).
    pub fn sweep(&mut self, now_ns: u64) {
        let grace = self.limits.exit_grace_ns;
        let mut keep = Vec::new();
        while let Some(&(exited_at, key)) = self.exited.front() {
            if exited_at.saturating_add(grace) > now_ns {
                break;
            }
            self.exited.pop_front();
            let Some(entry) = self.entries.get(&key) else {
                continue;
            };
            if entry.exited_at_ns.is_none() {
                continue;
            }
            if entry.children > 0 {
                keep.push((now_ns, key));
                continue;
            }
            self.remove(key);
            self.stats.expired += 1;
        }
        self.exited.extend(keep);
    }

    fn adjust_children(&mut self, parent: Option<ProcessKey>, delta: i32) {
        if let Some(entry) = parent.and_then(|key| self.entries.get_mut(&key)) {
            entry.children = entry.children.saturating_add_signed(delta);
        }
    }

    fn remove(&mut self, key: ProcessKey) -> Option<Entry> {
        let entry = self.entries.remove(&key)?;
        self.bytes -= entry.bytes;
        self.adjust_children(entry.process.parent, -1);
        Some(entry)
    }

    fn over_bounds(&self) -> bool {
        self.entries.len() > self.limits.max_entries || self.bytes > self.limits.max_bytes
    }

    /// Evicts until within the bounds, never the entry just inserted (`keep`).
    fn evict_over_bounds(&mut self, keep: ProcessKey) {
        while self.over_bounds() && self.entries.len() > 1 {
            let Some(victim) = self.pick_victim(keep) else {
                break;
            };
            if let Some(entry) = self.remove(victim) {
                self.stats.evictions += 1;
                if entry.children > 0 {
                    self.stats.evicted_ancestors += 1;
                }
            }
        }
        // Keep the order queue from growing without bound with stale keys.
        if self.order.len() > self.entries.len() * 2 + 1024 {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }

    fn pick_victim(&mut self, keep: ProcessKey) -> Option<ProcessKey> {
        // Exited first, oldest exit first, skipping those that are still ancestors.
        let exited = self.exited.iter().position(|(_, key)| {
            *key != keep
                && self
                    .entries
                    .get(key)
                    .is_some_and(|e| e.exited_at_ns.is_some() && e.children == 0)
        });
        if let Some(i) = exited {
            return self.exited.remove(i).map(|(_, key)| key);
        }
        // Then the oldest process without live children; a bounded scan, so that a node of
        // long-lived parents does not make every insert walk the whole queue.
        let mut fallback = None;
        for _ in 0..self.order.len().min(256) {
            let key = self.order.pop_front()?;
            let Some(entry) = self.entries.get(&key) else {
                continue;
            };
            if key == keep {
                self.order.push_back(key);
                continue;
            }
            if entry.children == 0 {
                return Some(key);
            }
            fallback.get_or_insert(key);
            self.order.push_back(key);
        }
        fallback
    }
}
