//! The process cache: which process (and which exec of it) every event belongs to.

mod cache;
mod key;
pub mod snapshot;
mod store;

pub use cache::{CacheStats, ProcessCache, ProcessCacheConfig};
pub use key::{ExecId, ProcessKey};
pub use store::process_bytes;

use crate::event::{Creds, WalkedPath};

/// How the cache learned about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Seen exec'ing.
    Exec,
    /// Seen being forked; runs its parent's image until it execs.
    Fork,
    /// Read from /proc at start-up: it started before Vigil.
    Snapshot,
    /// Only seen in other events (its fork/exec happened before Vigil or was lost).
    Unknown,
}

/// What is known about one exec of one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub key: ProcessKey,
    pub exec_id: ExecId,
    /// Thread-group id of the real parent, 0 when unknown.
    pub ppid: u32,
    /// The real parent, when known.
    pub parent: Option<ProcessKey>,
    /// The parent's exec at the time of the fork.
    pub parent_exec_id: Option<ExecId>,
    pub binary: WalkedPath,
    pub args: Vec<Vec<u8>>,
    pub args_truncated: bool,
    pub cwd: WalkedPath,
    pub creds: Creds,
    pub comm: Vec<u8>,
    pub cgroup_id: u64,
    /// cgroup v2 path: from the exec, inherited on fork, or from /proc for the snapshot.
    pub cgroup_path: Vec<u8>,
    pub origin: Origin,
}
