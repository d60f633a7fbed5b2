//! The process cache: which process (and which exec of it) every event belongs to.

mod cache;
mod key;
pub mod snapshot;
mod store;

pub use cache::{CacheStats, ProcessCache, ProcessCacheConfig};
pub use key::{ExecId, ProcessKey};
pub use store::process_bytes;

use std::{
    ops::Deref,
    sync::{Arc, OnceLock},
};

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
    /// What it runs, shared with its forked children until they exec; its fields read as
    /// the process's own (`process.binary`) through `Deref`.
    pub image: Arc<Image>,
    pub creds: Creds,
    pub cgroup_id: u64,
    pub origin: Origin,
    /// The JSON exporter's `parent` object of it, up to the start time.
    pub parent_json: Rendered,
}

/// What an exec set up: the image and where it runs. A fork copies it to the child, which
/// keeps it until it execs; so the child shares its parent's (`Arc`) and a fork copies no
/// text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image {
    pub binary: WalkedPath,
    pub args: Vec<Vec<u8>>,
    pub args_truncated: bool,
    pub cwd: WalkedPath,
    pub comm: Vec<u8>,
    /// cgroup v2 path: from the exec, inherited on fork, or from /proc for the snapshot.
    pub cgroup_path: Vec<u8>,
    /// The JSON exporter's members of it in a `process` object: `binary` to `comm`, then
    /// from the offset, `cgroup`. Made at its first event: a long-lived process's events
    /// all carry the same image.
    pub json: Rendered<(Box<[u8]>, usize)>,
}

impl Deref for Process {
    type Target = Image;

    fn deref(&self) -> &Image {
        &self.image
    }
}

/// A rendering of a process by an exporter, made at its first use and copied into the next
/// events: a process is immutable once in the cache (a change, such as an exec or new
/// credentials, is a new `Process`), so the bytes stay true. Empty in a clone, since a clone
/// is made to be changed; ignored by `==`. An image is as immutable once shared.
pub struct Rendered<T = Box<[u8]>>(OnceLock<T>);

impl<T> Rendered<T> {
    pub fn get_or_init(&self, render: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(render)
    }
}

impl<T> Default for Rendered<T> {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<T> Clone for Rendered<T> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T> PartialEq for Rendered<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Rendered<T> {}

impl<T> std::fmt::Debug for Rendered<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0.get() {
            Some(_) => "Rendered",
            None => "NotRendered",
        })
    }
}
