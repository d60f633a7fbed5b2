//! The response stage's contract: what an action is aimed at, and what came of it.
//!
//! Monitor mode never calls a responder: the finding reports `would_<action>` with status
//! `dry_run`. Enforce mode hands the request to a [`Responder`]: the agent's is
//! `crate::response::EnforceResponder`, which queues the action for its thread and answers
//! `pending`; the runtime holds such a finding until the result (or the kernel's record)
//! arrives and emits it with the final status. [`DryRunResponder`] (answers
//! `not_implemented`) serves tests and tools that run rules without containment.

use std::time::Instant;

use super::{
    action::{Action, Mode},
    rule::RuleInfo,
};
use crate::event::{Detail, Event};

/// What an action is aimed at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A process (kill): its tgid and exec id.
    Process { tgid: u32, exec_id: String },
    /// A process and its descendants (kill_tree).
    ProcessTree { tgid: u32, exec_id: String },
    /// A container (freeze, isolate).
    Container { id: String },
    /// The exec being made (kill_on_exec): the process that called execve.
    Exec { tgid: u32 },
    /// A file being opened (deny_open): the process that called open.
    Open { tgid: u32 },
    /// A connection being made (deny_connect).
    Connection { tgid: u32, dst: String },
    /// The flight recorder of this node (capture).
    Recorder,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Process { tgid, exec_id } => write!(f, "process:{tgid}:{exec_id}"),
            Self::ProcessTree { tgid, exec_id } => write!(f, "process_tree:{tgid}:{exec_id}"),
            Self::Container { id } => write!(f, "container:{id}"),
            Self::Exec { tgid } => write!(f, "exec:{tgid}"),
            Self::Open { tgid } => write!(f, "open:{tgid}"),
            Self::Connection { tgid, dst } => write!(f, "connection:{tgid}:{dst}"),
            Self::Recorder => f.write_str("recorder"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// No action (`action: none`).
    None,
    /// Monitor mode: reported, not done.
    DryRun,
    /// Enforce mode, but nothing can carry the action out yet.
    NotImplemented,
    /// Handed to an asynchronous responder; the result comes later.
    Pending,
    Ok,
    Failed,
    /// The event has nothing to act on (a kill without a process, a freeze outside containers).
    NoTarget,
    /// The responder's queue was full: the action was not taken (counted).
    Dropped,
    /// Enforce mode, but `[enforcement] enabled = false`: nothing was done.
    Disabled,
}

impl Status {
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DryRun => "dry_run",
            Self::NotImplemented => "not_implemented",
            Self::Pending => "pending",
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::NoTarget => "no_target",
            Self::Dropped => "dropped",
            Self::Disabled => "disabled",
        }
    }
}

/// What the response did for one finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `kill`, `would_kill` in monitor mode, `none`.
    pub action: &'static str,
    pub target: Option<Target>,
    pub status: Status,
    pub error: Option<String>,
    /// Time the response took (0 when nothing was asked of a responder).
    pub latency_ns: u64,
}

/// One action to carry out.
pub struct Request<'a> {
    pub action: Action,
    pub target: &'a Target,
    pub rule: &'a RuleInfo,
    pub event: &'a Event,
}

/// Carries out enforce-mode actions. Called on the pipeline task: an implementation must not
/// block (hand slow work to a task and answer [`Status::Pending`]).
pub trait Responder: Send {
    fn respond(&mut self, request: &Request<'_>) -> (Status, Option<String>);
}

/// Records what would be done and does nothing: the responder until containment exists.
#[derive(Debug, Default)]
pub struct DryRunResponder;

impl Responder for DryRunResponder {
    fn respond(&mut self, _request: &Request<'_>) -> (Status, Option<String>) {
        (Status::NotImplemented, None)
    }
}

/// The target of `action` in `event`, if it has one.
pub fn target(action: Action, event: &Event) -> Option<Target> {
    let process = event.process.as_deref();
    let tgid = process.map(|p| p.key.tgid);
    match action {
        Action::None => None,
        Action::Kill => process.map(|p| Target::Process {
            tgid: p.key.tgid,
            exec_id: p.exec_id.as_str().to_owned(),
        }),
        Action::KillTree => process.map(|p| Target::ProcessTree {
            tgid: p.key.tgid,
            exec_id: p.exec_id.as_str().to_owned(),
        }),
        Action::Freeze | Action::Isolate => event
            .container
            .as_deref()
            .map(|c| Target::Container { id: c.id.0.clone() }),
        Action::KillOnExec => tgid.map(|tgid| Target::Exec { tgid }),
        Action::DenyOpen => tgid.map(|tgid| Target::Open { tgid }),
        Action::DenyConnect => match &event.detail {
            Detail::Network(n) => match &n.addr {
                Some(Ok(addr)) => tgid.map(|tgid| Target::Connection {
                    tgid,
                    dst: sockaddr_text(addr),
                }),
                _ => None,
            },
            Detail::TcpState(t) => tgid.map(|tgid| Target::Connection {
                tgid,
                dst: t.dst.to_string(),
            }),
            _ => None,
        },
        Action::Capture => Some(Target::Recorder),
    }
}

/// Decides and, in enforce mode, asks `responder`; measures how long that took.
pub fn respond(
    responder: &mut dyn Responder,
    action: Action,
    mode: Mode,
    rule: &RuleInfo,
    event: &Event,
) -> Outcome {
    let mut outcome = Outcome {
        action: match mode {
            Mode::Monitor => action.would_name(),
            Mode::Enforce => action.name(),
        },
        target: None,
        status: Status::None,
        error: None,
        latency_ns: 0,
    };
    if action == Action::None {
        return outcome;
    }
    outcome.target = target(action, event);
    let Some(target) = &outcome.target else {
        outcome.status = Status::NoTarget;
        return outcome;
    };
    if mode == Mode::Monitor {
        outcome.status = Status::DryRun;
        return outcome;
    }
    let start = Instant::now();
    let (status, error) = responder.respond(&Request {
        action,
        target,
        rule,
        event,
    });
    outcome.latency_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    outcome.status = status;
    outcome.error = error;
    outcome
}

fn sockaddr_text(addr: &crate::network::Sockaddr) -> String {
    use crate::network::{Sockaddr, UnixAddr};
    match addr {
        Sockaddr::Inet { ip, port } => std::net::SocketAddr::from((*ip, *port)).to_string(),
        Sockaddr::Inet6 { ip, port } => std::net::SocketAddr::from((*ip, *port)).to_string(),
        Sockaddr::Unix(UnixAddr::Path(path)) => crate::export::escape::escape(path).into_owned(),
        Sockaddr::Unix(UnixAddr::Abstract(name)) => {
            format!("@{}", crate::export::escape::escape(name))
        }
        Sockaddr::Unix(UnixAddr::Unnamed) => "unix".into(),
        Sockaddr::Other { family } => format!("af_{family}"),
    }
}
