//! The responders the policy stage calls on the pipeline task. They never block: a kernel
//! action is already in the deny maps (the finding waits for the kernel's record), a
//! userspace action is queued for the responder thread (a full queue drops it).

use std::{
    sync::mpsc::{SyncSender, TrySendError},
    time::Instant,
};

use tokio::sync::watch;

use super::{
    plan::Installed,
    worker::{Job, Work},
};
use crate::policy::{
    Action, Status, Target,
    response::{Request, Responder},
};

/// Enforce-mode findings when `[enforcement] enabled = false`.
#[derive(Debug, Default)]
pub struct DisabledResponder;

impl Responder for DisabledResponder {
    fn respond(&mut self, _request: &Request<'_>) -> (Status, Option<String>) {
        (Status::Disabled, None)
    }
}

/// Hands enforce-mode actions to the responder thread.
pub struct EnforceResponder {
    jobs: SyncSender<Work>,
    installed: watch::Receiver<Installed>,
}

impl EnforceResponder {
    pub(super) fn new(jobs: SyncSender<Work>, installed: watch::Receiver<Installed>) -> Self {
        Self { jobs, installed }
    }
}

impl Responder for EnforceResponder {
    fn respond(&mut self, request: &Request<'_>) -> (Status, Option<String>) {
        let rule = &request.rule.name;
        if request.action.is_kernel() {
            // Installed when the set was put in force: the kernel has acted already (or
            // refused the connect); its record completes the finding.
            return match self.installed.borrow().get(rule) {
                Some(Ok(ids)) if !ids.is_empty() => (Status::Pending, None),
                Some(Err(reason)) => (Status::Failed, Some(reason.clone())),
                _ => (
                    Status::Failed,
                    Some("the rule is not installed in the kernel (yet)".into()),
                ),
            };
        }
        if request.action == Action::Capture {
            // The pipeline's flight recorder starts the dump when the finding leaves; the
            // agent log and `[recorder] dir` say where it went.
            return (Status::Ok, None);
        }
        let process = request.event.process.as_deref();
        let job = Job {
            rule: rule.clone(),
            action: request.action,
            target: request.target.clone(),
            start_time_ns: process.map(|p| p.key.start_time_ns),
            comm: process
                .map(|p| String::from_utf8_lossy(&p.comm).into_owned())
                .unwrap_or_default(),
            cgroup_id: process.map_or(0, |p| p.cgroup_id),
            requested: Instant::now(),
        };
        debug_assert!(!matches!(
            job.target,
            Target::Exec { .. } | Target::Open { .. } | Target::Connection { .. }
        ));
        match self.jobs.try_send(Work::Policy(job)) {
            Ok(()) => (Status::Pending, None),
            Err(TrySendError::Full(_)) => (
                Status::Dropped,
                Some("the responder's queue is full ([enforcement] queue_capacity)".into()),
            ),
            Err(TrySendError::Disconnected(_)) => (
                Status::Failed,
                Some("the responder thread has stopped".into()),
            ),
        }
    }
}
