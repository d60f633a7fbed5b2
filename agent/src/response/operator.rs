//! Operator actions: containment that an operator asks the running agent for through the API
//! (`vigil contain`), without a policy file. The API turns a request into an
//! [`OperatorRequest`] and hands it to the responder thread through [`OperatorHandle`] (the
//! same bounded queue as the policy actions: a full queue refuses the request, counted); the
//! thread carries it out with the agent's guard, rate limit and enforcement layout, answers
//! the caller, and reports an enforcement event (`by: operator`) to the pipeline like every
//! other action.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{SyncSender, TrySendError},
    },
    time::Instant,
};

use tokio::sync::oneshot;

use super::{record::Enforcement, worker::Work};
use crate::enforce::{EnforceError, Layout};

/// A cgroup, as the operator named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupSel {
    /// A cgroup v2 path below the root (or a directory under a cgroup mount, for freeze).
    Path(String),
    /// A container id, or a prefix of it of 12 characters or more.
    Container(String),
}

impl CgroupSel {
    /// The request field that named it, below `parent` (`isolate.container_id`).
    pub fn field(&self, parent: &str) -> String {
        match self {
            Self::Path(_) => format!("{parent}.cgroup"),
            Self::Container(_) => format!("{parent}.container_id"),
        }
    }

    /// As an action's target: `cgroup:PATH` or `container:ID`.
    pub fn target(&self) -> String {
        match self {
            Self::Path(path) => format!("cgroup:{path}"),
            Self::Container(id) => format!("container:{id}"),
        }
    }
}

/// What the operator asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorAction {
    DenyExec {
        path: PathBuf,
        dir: bool,
        /// `None`: node-wide.
        scope: Option<CgroupSel>,
    },
    /// Open deny (BPF-LSM), shaped as `DenyExec`.
    DenyOpen {
        path: PathBuf,
        dir: bool,
        /// `None`: node-wide.
        scope: Option<CgroupSel>,
    },
    DenyConnect {
        scope: CgroupSel,
        cidr: String,
        ports: Vec<u16>,
    },
    Isolate(CgroupSel),
    Freeze(CgroupSel),
    Thaw(CgroupSel),
    Kill {
        pid: i32,
        tree: bool,
        /// Checked against the process's start time when given: a reused pid is refused.
        start_time_ns: Option<u64>,
    },
    Release {
        id: u32,
    },
}

impl OperatorAction {
    /// Every action's name, as its events and the request's fields name it.
    pub const NAMES: [&'static str; 9] = [
        "deny_exec",
        "deny_connect",
        "isolate",
        "freeze",
        "thaw",
        "kill",
        "kill_tree",
        "release",
        "deny_open",
    ];

    /// The action's name (`kill_tree` for a tree kill).
    pub fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }

    fn index(&self) -> usize {
        match self {
            Self::DenyExec { .. } => 0,
            Self::DenyOpen { .. } => 8,
            Self::DenyConnect { .. } => 1,
            Self::Isolate(_) => 2,
            Self::Freeze(_) => 3,
            Self::Thaw(_) => 4,
            Self::Kill { tree: false, .. } => 5,
            Self::Kill { tree: true, .. } => 6,
            Self::Release { .. } => 7,
        }
    }

    /// The request message that carries it (`kill` for both kills), for error fields.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Kill { .. } => "kill",
            other => other.name(),
        }
    }

    /// Undoing is never rate-limited: an operator must always be able to take an action back.
    pub fn is_undo(&self) -> bool {
        matches!(self, Self::Thaw(_) | Self::Release { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorRequest {
    pub action: OperatorAction,
    /// The API peer (`uid=0 pid=4242`, `tls:ADDRESS`).
    pub requested_by: String,
    pub reason: String,
}

/// What came of a request that was carried out.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The action's event detail, as it goes to the pipeline.
    pub enforcement: Enforcement,
    /// Thaw: the freeze rules it removed.
    pub released: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The action was tried and failed or was refused; `field` is the request field at fault.
    #[error("{field}: {source}")]
    Enforce {
        field: String,
        /// Boxed: the enforcement errors carry the loader's, which are large.
        #[source]
        source: Box<EnforceError>,
    },
    #[error("containment is off on this agent ([enforcement] enabled = false)")]
    Disabled,
    #[error("the responder's queue is full ([enforcement] queue_capacity): try again")]
    QueueFull,
    #[error("the responder thread has stopped (the agent is stopping)")]
    Stopped,
}

impl OperatorError {
    /// The error on one line with every cause, once: `kill.pid: refused: pid 1 is init`.
    pub fn message(&self) -> String {
        match self {
            Self::Enforce { field, source } => {
                format!("{field}: {}", super::worker::chain(source.as_ref()))
            }
            other => other.to_string(),
        }
    }

    pub(super) fn at(field: impl Into<String>) -> impl FnOnce(EnforceError) -> Self {
        let field = field.into();
        move |source| Self::Enforce {
            field,
            source: Box::new(source),
        }
    }
}

/// One request on its way to the responder thread, with where its answer goes.
pub struct OperatorJob {
    pub request: OperatorRequest,
    pub requested: Instant,
    pub reply: oneshot::Sender<Result<Applied, OperatorError>>,
}

/// Requests refused because the responder's queue was full, by action
/// (`vigil_enforcement_actions_total{outcome="dropped"}`).
#[derive(Debug, Default)]
pub struct QueueDrops([AtomicU64; OperatorAction::NAMES.len()]);

impl QueueDrops {
    fn count(&self, action: &OperatorAction) {
        self.0[action.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// (action, dropped) of the actions that had drops.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        OperatorAction::NAMES
            .iter()
            .zip(&self.0)
            .map(|(name, n)| (*name, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// What the API holds to reach the responder thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OperatorHandle {
    /// `None`: `[enforcement] enabled = false`.
    jobs: Option<SyncSender<Work>>,
    layout: Layout,
    drops: Arc<QueueDrops>,
}

impl OperatorHandle {
    pub(super) fn new(
        jobs: Option<SyncSender<Work>>,
        layout: Layout,
        drops: Arc<QueueDrops>,
    ) -> Self {
        Self {
            jobs,
            layout,
            drops,
        }
    }

    /// A handle for an agent whose enforcement is disabled: every request is refused, the
    /// pinned rules can still be listed.
    pub fn disabled(layout: Layout) -> Self {
        Self::new(None, layout, Arc::default())
    }

    /// Where enforcement lives (for listing it).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Queues `request` and waits for its outcome. Never blocks the caller's thread: a full
    /// queue is an immediate [`OperatorError::QueueFull`].
    pub async fn submit(&self, request: OperatorRequest) -> Result<Applied, OperatorError> {
        let jobs = self.jobs.as_ref().ok_or(OperatorError::Disabled)?;
        let (reply, answer) = oneshot::channel();
        let action = request.action.clone();
        let job = OperatorJob {
            request,
            requested: Instant::now(),
            reply,
        };
        match jobs.try_send(Work::Operator(job)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.drops.count(&action);
                tracing::warn!(
                    action = action.name(),
                    "An operator's request was refused: the responder's queue is full."
                );
                return Err(OperatorError::QueueFull);
            }
            Err(TrySendError::Disconnected(_)) => return Err(OperatorError::Stopped),
        }
        answer.await.map_err(|_| OperatorError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::*;

    fn kill(pid: i32) -> OperatorRequest {
        OperatorRequest {
            action: OperatorAction::Kill {
                pid,
                tree: false,
                start_time_ns: None,
            },
            requested_by: "uid=0".into(),
            reason: String::new(),
        }
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_counts_the_drop() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (tx, rx) = sync_channel(1);
        let drops = Arc::new(QueueDrops::default());
        let handle = OperatorHandle::new(Some(tx), Layout::default(), drops.clone());
        rt.block_on(async {
            // The first request waits in the queue (nobody serves it); the second finds the
            // queue full.
            let first = tokio::spawn({
                let handle = handle.clone();
                async move { handle.submit(kill(10)).await }
            });
            tokio::task::yield_now().await;
            let second = handle.submit(kill(11)).await;
            assert!(
                matches!(second, Err(OperatorError::QueueFull)),
                "{second:?}"
            );
            assert_eq!(drops.snapshot(), [("kill", 1)]);
            drop(rx);
            assert!(matches!(
                first.await.expect("task"),
                Err(OperatorError::Stopped)
            ));
        });
        let disabled = OperatorHandle::disabled(Layout::default());
        let refused = rt.block_on(disabled.submit(kill(12)));
        assert!(
            matches!(refused, Err(OperatorError::Disabled)),
            "{refused:?}"
        );
    }

    #[test]
    fn names_and_fields() {
        let tree = OperatorAction::Kill {
            pid: 5,
            tree: true,
            start_time_ns: None,
        };
        assert_eq!((tree.name(), tree.field()), ("kill_tree", "kill"));
        let sel = CgroupSel::Container("abcdef012345".into());
        assert_eq!(sel.field("freeze"), "freeze.container_id");
        assert_eq!(sel.target(), "container:abcdef012345");
        assert!(OperatorAction::Release { id: 1 }.is_undo());
        assert!(!OperatorAction::Isolate(sel).is_undo());
    }
}
