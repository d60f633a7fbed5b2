//! The process cache: applies lifecycle events in order and resolves each event's process
//! and parent. Owned by the pipeline task; plain synchronous code, no locks.
//!
//! Bounded: at most `max_entries` processes. An exited process stays for `exit_grace` so that
//! late events still resolve, then goes; past the bound, the oldest entries go first
//! (exited ones before live ones). Every miss and eviction is counted.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use super::{ExecId, Origin, Process, ProcessKey, snapshot::ProcEntry};
use crate::event::{Creds, Detail, Event, Exec, Exit, Fork, KernelEvent, Task, WalkedPath};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessCacheConfig {
    pub max_entries: usize,
    /// How long an exited process stays resolvable, in ns.
    pub exit_grace_ns: u64,
}

impl Default for ProcessCacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 65_536,
            exit_grace_ns: 5_000_000_000,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Events whose process was not in the cache.
    pub misses: u64,
    /// Entries removed to stay within `max_entries`.
    pub evictions: u64,
    /// Exited entries removed after their grace period.
    pub expired: u64,
    /// Processes read from /proc at start-up.
    pub snapshot: u64,
}

#[derive(Debug)]
struct Entry {
    process: Arc<Process>,
    exited_at_ns: Option<u64>,
}

#[derive(Debug, Default)]
pub struct ProcessCache {
    config: ProcessCacheConfig,
    entries: HashMap<ProcessKey, Entry>,
    /// Keys in insertion order; may hold keys already removed (skipped when popped).
    order: VecDeque<ProcessKey>,
    /// Exited keys in exit order, for the grace-period sweep.
    exited: VecDeque<(u64, ProcessKey)>,
    /// Snapshot entries by tgid: their start time is only tick-precise, so the first kernel
    /// record of such a process finds it here and re-keys it to the exact start time.
    approx: HashMap<u32, ProcessKey>,
    /// Precision of snapshot start times, in ns.
    tick_ns: u64,
    stats: CacheStats,
}

impl ProcessCache {
    pub fn new(config: ProcessCacheConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &ProcessKey) -> Option<&Arc<Process>> {
        self.entries.get(key).map(|e| &e.process)
    }

    /// Records the processes read from /proc at start-up (start times precise to `tick_ns`).
    pub fn seed(&mut self, entries: Vec<ProcEntry>, tick_ns: u64) {
        self.tick_ns = tick_ns;
        let starts: HashMap<u32, u64> = entries.iter().map(|e| (e.tgid, e.start_time_ns)).collect();
        for entry in entries {
            let key = ProcessKey::new(entry.tgid, entry.start_time_ns);
            let parent = starts
                .get(&entry.ppid)
                .map(|&start| ProcessKey::new(entry.ppid, start));
            let process = Arc::new(Process {
                key,
                exec_id: ExecId::at_start(key),
                ppid: entry.ppid,
                parent,
                parent_exec_id: parent.map(ExecId::at_start),
                binary: entry.binary,
                args: entry.args,
                args_truncated: false,
                cwd: entry.cwd,
                creds: entry.creds,
                comm: entry.comm,
                cgroup_id: entry.cgroup_id,
                cgroup_path: entry.cgroup_path,
                origin: Origin::Snapshot,
            });
            self.approx.insert(key.tgid, key);
            self.insert(process);
            self.stats.snapshot += 1;
        }
    }

    /// The entry for `key`, re-keying a tick-precise snapshot entry of the same process.
    fn lookup(&mut self, key: ProcessKey) -> Option<Arc<Process>> {
        if let Some(entry) = self.entries.get(&key) {
            return Some(entry.process.clone());
        }
        let approx = *self.approx.get(&key.tgid)?;
        let same = approx.start_time_ns <= key.start_time_ns
            && key.start_time_ns < approx.start_time_ns.saturating_add(self.tick_ns.max(1));
        if !same {
            return None;
        }
        self.approx.remove(&key.tgid);
        let old = self.entries.remove(&approx)?;
        let process = Arc::new(Process {
            key,
            ..(*old.process).clone()
        });
        self.entries.insert(
            key,
            Entry {
                process: process.clone(),
                exited_at_ns: old.exited_at_ns,
            },
        );
        self.order.push_back(key);
        Some(process)
    }

    /// Applies one kernel event and returns it resolved.
    pub fn apply(&mut self, event: KernelEvent) -> Event {
        match event {
            KernelEvent::Exec(exec) => self.apply_exec(exec),
            KernelEvent::Fork(fork) => self.apply_fork(fork),
            KernelEvent::Exit(exit) => self.apply_exit(exit),
        }
    }

    fn apply_exec(&mut self, exec: Exec) -> Event {
        let time_ns = exec.task.time_ns;
        let previous = self.lookup(exec.task.key);
        let parent = self.resolve(exec.parent, None);
        // The parent's exec at the time of the fork, when the fork was seen; else its current.
        let parent_exec_id = previous
            .as_ref()
            .filter(|p| p.parent == Some(exec.parent))
            .and_then(|p| p.parent_exec_id.clone())
            .or_else(|| parent.as_ref().map(|p| p.exec_id.clone()));
        let process = Arc::new(Process {
            key: exec.task.key,
            exec_id: ExecId::new(exec.task.key, time_ns),
            ppid: exec.parent.tgid,
            parent: Some(exec.parent),
            parent_exec_id,
            binary: exec.binary.clone(),
            args: exec.args.clone(),
            args_truncated: exec.args_truncated,
            cwd: exec.cwd.clone(),
            creds: exec.creds,
            comm: exec.comm.clone(),
            cgroup_id: exec.task.cgroup_id,
            cgroup_path: exec.cgroup_path.path.clone(),
            origin: Origin::Exec,
        });
        self.insert(process.clone());
        Event {
            time_ns,
            pid: exec.task.pid,
            process: Some(process),
            parent,
            detail: Detail::Exec(exec),
        }
    }

    fn apply_fork(&mut self, fork: Fork) -> Event {
        let time_ns = fork.task.time_ns;
        let parent = self.resolve(fork.parent, None);
        let process = if fork.thread {
            self.resolve(fork.task.key, Some(&fork.task))
        } else {
            let child = Arc::new(forked(&fork, parent.as_deref()));
            self.insert(child.clone());
            Some(child)
        };
        Event {
            time_ns,
            pid: fork.task.pid,
            process,
            parent,
            detail: Detail::Fork(fork),
        }
    }

    fn apply_exit(&mut self, exit: Exit) -> Event {
        let time_ns = exit.task.time_ns;
        let process = self.resolve(exit.task.key, Some(&exit.task));
        let parent = process
            .as_ref()
            .and_then(|p| p.parent)
            .and_then(|key| self.get(&key).cloned());
        if exit.group_dead {
            if let Some(entry) = self.entries.get_mut(&exit.task.key) {
                entry.exited_at_ns = Some(time_ns);
                self.exited.push_back((time_ns, exit.task.key));
            }
        }
        Event {
            time_ns,
            pid: exit.task.pid,
            process,
            parent,
            detail: Detail::Exit(exit),
        }
    }

    /// Removes exited processes whose grace period ended before `now_ns`.
    pub fn sweep(&mut self, now_ns: u64) {
        while let Some(&(exited_at, key)) = self.exited.front() {
            if exited_at.saturating_add(self.config.exit_grace_ns) > now_ns {
                break;
            }
            self.exited.pop_front();
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.exited_at_ns == Some(exited_at))
            {
                self.entries.remove(&key);
                self.stats.expired += 1;
            }
        }
    }

    /// The process for `key`; an unknown process is recorded with what the event tells, so
    /// that later events of it get the same exec id.
    fn resolve(&mut self, key: ProcessKey, task: Option<&Task>) -> Option<Arc<Process>> {
        if let Some(process) = self.lookup(key) {
            return Some(process);
        }
        self.stats.misses += 1;
        if key.tgid == 0 {
            return None;
        }
        let process = Arc::new(Process {
            key,
            exec_id: ExecId::at_start(key),
            ppid: 0,
            parent: None,
            parent_exec_id: None,
            binary: WalkedPath::default(),
            args: Vec::new(),
            args_truncated: false,
            cwd: WalkedPath::default(),
            creds: Creds::default(),
            comm: Vec::new(),
            cgroup_id: task.map_or(0, |t| t.cgroup_id),
            cgroup_path: Vec::new(),
            origin: Origin::Unknown,
        });
        self.insert(process.clone());
        Some(process)
    }

    fn insert(&mut self, process: Arc<Process>) {
        let key = process.key;
        let fresh = self
            .entries
            .insert(
                key,
                Entry {
                    process,
                    exited_at_ns: None,
                },
            )
            .is_none();
        if fresh {
            self.order.push_back(key);
            self.evict_over_bound();
        }
    }

    fn evict_over_bound(&mut self) {
        while self.entries.len() > self.config.max_entries {
            let victim = self
                .exited
                .pop_front()
                .map(|(_, key)| key)
                .or_else(|| self.order.pop_front());
            let Some(victim) = victim else { break };
            if self.entries.remove(&victim).is_some() {
                self.stats.evictions += 1;
            }
        }
        // Keep the order queue from growing without bound with stale keys.
        if self.order.len() > self.entries.len() * 2 + 1024 {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }
}

/// A forked child runs its parent's image until it execs.
fn forked(fork: &Fork, parent: Option<&Process>) -> Process {
    let key = fork.task.key;
    let inherit = |f: fn(&Process) -> WalkedPath| parent.map(f).unwrap_or_default();
    Process {
        key,
        exec_id: ExecId::at_start(key),
        ppid: fork.parent.tgid,
        parent: Some(fork.parent),
        parent_exec_id: parent.map(|p| p.exec_id.clone()),
        binary: inherit(|p| p.binary.clone()),
        args: parent.map(|p| p.args.clone()).unwrap_or_default(),
        args_truncated: parent.is_some_and(|p| p.args_truncated),
        cwd: inherit(|p| p.cwd.clone()),
        creds: parent.map(|p| p.creds).unwrap_or_default(),
        comm: parent.map(|p| p.comm.clone()).unwrap_or_default(),
        cgroup_id: fork.task.cgroup_id,
        cgroup_path: parent.map(|p| p.cgroup_path.clone()).unwrap_or_default(),
        origin: Origin::Fork,
    }
}
