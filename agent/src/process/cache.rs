//! The process cache: applies lifecycle events in order and resolves each event's process,
//! parent and ancestors. Owned by the pipeline task; plain synchronous code, no locks.
//! Storage, bounds and eviction live in `store.rs`.

use std::{collections::HashMap, sync::Arc};

// Looked up for every event once /proc was read (`renamed`): the store's fast hasher.
use foldhash::HashMap as FastMap;

use super::{
    ExecId, Image, Origin, Process, ProcessKey,
    snapshot::ProcEntry,
    store::{Store, StoreLimits},
};
use crate::event::{
    CredChange, Creds, Detail, Event, Exec, Exit, Fork, KernelEvent, Syscall, Task,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessCacheConfig {
    pub max_entries: usize,
    /// Bound on the cache's accounted memory, in bytes.
    pub max_bytes: usize,
    /// How long an exited process stays resolvable, in ns.
    pub exit_grace_ns: u64,
    /// How many ancestors above the parent each event carries (0: none).
    pub ancestors: usize,
}

impl Default for ProcessCacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 65_536,
            max_bytes: 64 * 1024 * 1024,
            exit_grace_ns: 5_000_000_000,
            ancestors: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Events whose process (or parent) was not in the cache.
    pub misses: u64,
    /// Entries removed to stay within the bounds.
    pub evictions: u64,
    /// Of those, processes that were still ancestors of live processes.
    pub evicted_ancestors: u64,
    /// Exited entries removed after their grace period.
    pub expired: u64,
    /// Processes read from /proc at start-up.
    pub snapshot: u64,
}

#[derive(Debug)]
pub struct ProcessCache {
    config: ProcessCacheConfig,
    store: Store,
    /// Snapshot entries by tgid: their start time is only tick-precise, so the first kernel
    /// record of such a process finds it here and re-keys it to the exact start time.
    approx: FastMap<u32, ProcessKey>,
    /// Tick-precise keys already re-keyed, for children that still name them as parent.
    renamed: FastMap<ProcessKey, ProcessKey>,
    /// Precision of snapshot start times, in ns.
    tick_ns: u64,
    misses: u64,
    snapshot: u64,
}

impl Default for ProcessCache {
    fn default() -> Self {
        Self::new(ProcessCacheConfig::default())
    }
}

impl ProcessCache {
    pub fn new(config: ProcessCacheConfig) -> Self {
        Self {
            config,
            store: Store::new(StoreLimits {
                max_entries: config.max_entries,
                max_bytes: config.max_bytes,
                exit_grace_ns: config.exit_grace_ns,
            }),
            approx: FastMap::default(),
            renamed: FastMap::default(),
            tick_ns: 1,
            misses: 0,
            snapshot: 0,
        }
    }

    pub fn stats(&self) -> CacheStats {
        let store = self.store.stats();
        CacheStats {
            misses: self.misses,
            evictions: store.evictions,
            evicted_ancestors: store.evicted_ancestors,
            expired: store.expired,
            snapshot: self.snapshot,
        }
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Accounted memory of the cached processes, in bytes.
    pub fn bytes(&self) -> usize {
        self.store.bytes()
    }

    pub fn get(&self, key: &ProcessKey) -> Option<&Arc<Process>> {
        let key = self.renamed.get(key).unwrap_or(key);
        self.store.get(key)
    }

    /// The process `tgid` that started within `tolerance_ns` of `start_time_ns`: for a start
    /// time read from /proc (tick-precise), as an operator's kill knows it. Scans when the
    /// exact key is not stored: for rare lookups only.
    pub fn find_near(
        &self,
        tgid: u32,
        start_time_ns: u64,
        tolerance_ns: u64,
    ) -> Option<&Arc<Process>> {
        self.get(&ProcessKey::new(tgid, start_time_ns)).or_else(|| {
            self.store.find(|key| {
                key.tgid == tgid && key.start_time_ns.abs_diff(start_time_ns) <= tolerance_ns
            })
        })
    }

    /// Records the processes read from /proc at start-up (start times precise to `tick_ns`).
    pub fn seed(&mut self, entries: Vec<ProcEntry>, tick_ns: u64) {
        self.tick_ns = tick_ns.max(1);
        let starts: HashMap<u32, u64> = entries.iter().map(|e| (e.tgid, e.start_time_ns)).collect();
        for entry in entries {
            let key = ProcessKey::new(entry.tgid, entry.start_time_ns);
            let parent = starts
                .get(&entry.ppid)
                .map(|&start| ProcessKey::new(entry.ppid, start));
            self.approx.insert(key.tgid, key);
            self.store.insert(Arc::new(Process {
                key,
                exec_id: ExecId::at_start(key),
                ppid: entry.ppid,
                parent,
                parent_exec_id: parent.map(ExecId::at_start),
                image: Arc::new(Image {
                    binary: entry.binary,
                    args: entry.args,
                    args_truncated: false,
                    cwd: entry.cwd,
                    comm: entry.comm,
                    cgroup_path: entry.cgroup_path,
                    json: Default::default(),
                }),
                creds: entry.creds,
                cgroup_id: entry.cgroup_id,
                origin: Origin::Snapshot,
                parent_json: Default::default(),
            }));
            self.snapshot += 1;
        }
    }

    /// Applies one kernel event and returns it resolved.
    pub fn apply(&mut self, event: KernelEvent) -> Event {
        let mut event = match event {
            KernelEvent::Exec(exec) => self.apply_exec(exec),
            KernelEvent::Fork(fork) => self.apply_fork(fork),
            KernelEvent::Exit(exit) => self.apply_exit(exit),
            KernelEvent::Syscall(syscall) => self.apply_syscall(syscall),
            KernelEvent::TcpState(change) if !change.owner_known => {
                let time_ns = change.task.time_ns;
                Event::new(time_ns, 0, None, None, Detail::TcpState(change))
            }
            KernelEvent::TcpState(change) => {
                let (task, detail) = (change.task.clone(), Detail::TcpState(change));
                self.apply_task_event(&task, detail)
            }
            KernelEvent::Network(network) => {
                let (task, detail) = (network.task.clone(), Detail::Network(network));
                self.apply_task_event(&task, detail)
            }
            KernelEvent::File(file) => {
                let (task, detail) = (file.task.clone(), Detail::File(file));
                self.apply_task_event(&task, detail)
            }
            KernelEvent::Dns(dns) => {
                let (task, detail) = (dns.task.clone(), Detail::Dns(dns));
                self.apply_task_event(&task, detail)
            }
            KernelEvent::CredChange(change) => self.apply_cred_change(change),
        };
        event.ancestors = self.ancestors(event.parent.as_deref());
        event
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
            image: exec.image.clone(),
            creds: exec.creds,
            cgroup_id: exec.task.cgroup_id,
            origin: Origin::Exec,
            parent_json: Default::default(),
        });
        self.store.insert(process.clone());
        Event::new(
            time_ns,
            exec.task.pid,
            Some(process),
            parent,
            Detail::Exec(exec),
        )
    }

    fn apply_fork(&mut self, fork: Fork) -> Event {
        let time_ns = fork.task.time_ns;
        let parent = self.resolve(fork.parent, None);
        let process = if fork.thread {
            self.resolve(fork.task.key, Some(&fork.task))
        } else {
            let child = Arc::new(forked(&fork, parent.as_deref()));
            self.store.insert(child.clone());
            Some(child)
        };
        Event::new(time_ns, fork.task.pid, process, parent, Detail::Fork(fork))
    }

    fn apply_exit(&mut self, exit: Exit) -> Event {
        let time_ns = exit.task.time_ns;
        let process = self.resolve(exit.task.key, Some(&exit.task));
        let parent = process
            .as_ref()
            .and_then(|p| p.parent)
            .and_then(|key| self.get(&key).cloned());
        if exit.group_dead {
            self.store.mark_exited(exit.task.key, time_ns);
        }
        Event::new(time_ns, exit.task.pid, process, parent, Detail::Exit(exit))
    }

    fn apply_syscall(&mut self, syscall: Syscall) -> Event {
        let task = syscall.task.clone();
        self.apply_task_event(&task, Detail::Syscall(syscall))
    }

    /// A credential change of the group leader becomes the process's credentials (what
    /// /proc/PID/status shows), so later events carry them; the event itself shows the process
    /// as after the change. Another thread's change is its own (a raw syscall changes one
    /// thread; glibc's setuid runs it in every thread, the leader included).
    fn apply_cred_change(&mut self, change: CredChange) -> Event {
        let task = change.task.clone();
        if task.pid == task.key.tgid
            && let Some(process) = self.lookup(task.key)
        {
            let after = &change.after;
            let creds = Creds {
                uid: after.uid,
                gid: after.gid,
                euid: after.euid,
                egid: after.egid,
                loginuid: process.creds.loginuid,
            };
            if creds != process.creds {
                self.store.insert(Arc::new(Process {
                    creds,
                    ..(*process).clone()
                }));
            }
        }
        self.apply_task_event(&task, Detail::CredChange(change))
    }

    /// An event that changes no process: resolves the task's process and its parent.
    fn apply_task_event(&mut self, task: &Task, detail: Detail) -> Event {
        let process = self.resolve(task.key, Some(task));
        let parent = process
            .as_ref()
            .and_then(|p| p.parent)
            .and_then(|key| self.get(&key).cloned());
        Event::new(task.time_ns, task.pid, process, parent, detail)
    }

    /// Removes exited processes whose grace period ended before `now_ns`.
    pub fn sweep(&mut self, now_ns: u64) {
        self.store.sweep(now_ns);
    }

    /// Up to `config.ancestors` processes above `parent`, nearest first.
    fn ancestors(&self, parent: Option<&Process>) -> Vec<Arc<Process>> {
        let mut out = Vec::new();
        let mut next = parent.and_then(|p| p.parent);
        while out.len() < self.config.ancestors {
            let Some(process) = next.and_then(|key| self.get(&key)) else {
                break;
            };
            next = process.parent.filter(|&key| key != process.key);
            out.push(process.clone());
        }
        out
    }

    /// The entry for `key`, re-keying a tick-precise snapshot entry of the same process.
    fn lookup(&mut self, key: ProcessKey) -> Option<Arc<Process>> {
        if let Some(process) = self.get(&key) {
            return Some(process.clone());
        }
        let approx = *self.approx.get(&key.tgid)?;
        let same = approx.start_time_ns <= key.start_time_ns
            && key.start_time_ns < approx.start_time_ns.saturating_add(self.tick_ns);
        if !same {
            return None;
        }
        self.approx.remove(&key.tgid);
        let old = self.store.get(&approx)?.clone();
        let process = Arc::new(Process {
            key,
            ..(*old).clone()
        });
        self.store.rekey(approx, process.clone());
        self.renamed.insert(approx, key);
        Some(process)
    }

    /// The process for `key`; an unknown process is recorded with what the event tells, so
    /// that later events of it get the same exec id.
    fn resolve(&mut self, key: ProcessKey, task: Option<&Task>) -> Option<Arc<Process>> {
        if let Some(process) = self.lookup(key) {
            return Some(process);
        }
        self.misses += 1;
        if key.tgid == 0 {
            return None;
        }
        let process = Arc::new(Process {
            key,
            exec_id: ExecId::at_start(key),
            ppid: 0,
            parent: None,
            parent_exec_id: None,
            image: Arc::default(),
            creds: Creds::default(),
            cgroup_id: task.map_or(0, |t| t.cgroup_id),
            origin: Origin::Unknown,
            parent_json: Default::default(),
        });
        self.store.insert(process.clone());
        Some(process)
    }
}

/// A forked child runs its parent's image until it execs: it shares it.
fn forked(fork: &Fork, parent: Option<&Process>) -> Process {
    let key = fork.task.key;
    Process {
        key,
        exec_id: ExecId::at_start(key),
        ppid: fork.parent.tgid,
        parent: Some(fork.parent),
        parent_exec_id: parent.map(|p| p.exec_id.clone()),
        image: parent.map(|p| p.image.clone()).unwrap_or_default(),
        creds: parent.map(|p| p.creds).unwrap_or_default(),
        cgroup_id: fork.task.cgroup_id,
        origin: Origin::Fork,
        parent_json: Default::default(),
    }
}
