//! The responder thread: owns the [`Enforcer`] and does everything that blocks (bpffs and
//! /proc, the rule record's lock, cgroup writes, pidfds) off the pipeline task. It
//! - installs the kernel rules of each policy set put in force and releases the rules of
//!   removed ones (`reconcile`), publishing what is installed for the responder;
//! - carries out queued userspace actions (kill, kill_tree, freeze, isolate);
//! - carries out operators' requests from the API (`operator`);
//! - drains the kernel's enforcement records every [`DRAIN_INTERVAL`];
//!
//! and reports each action to the pipeline task, which emits it as an event.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc,
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};

use super::{
    operator::OperatorJob,
    plan::Installed,
    record::{By, Enforcement},
};
use crate::{
    enforce::{EnforceError, Enforcer, Guard, KernelAction, Layout, RateLimit, RuleKind},
    policy::{Action, PolicySet, Target},
};

mod operator;
mod reconcile;

pub use operator::ORIGIN_API;

/// How often the kernel's enforcement records are drained.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

/// Enforcement rules the agent installs for a policy rule carry `policy:<rule name>` as
/// their origin (`vigil enforcement list`); `cli` marks an operator's.
pub const ORIGIN_PREFIX: &str = "policy:";

/// A userspace action to carry out.
pub struct Job {
    pub rule: String,
    pub action: Action,
    pub target: Target,
    /// The process's start time (its `ProcessKey`), so that a reused pid is never hit.
    pub start_time_ns: Option<u64>,
    pub comm: String,
    pub cgroup_id: u64,
    pub requested: Instant,
}

/// What the thread is asked to do, in one queue.
pub enum Work {
    /// A policy rule's userspace action.
    Policy(Job),
    /// An operator's request from the API.
    Operator(OperatorJob),
}

/// What the thread tells the pipeline task.
#[derive(Debug)]
pub enum Report {
    /// The kernel acted; `rule` is the policy rule when the enforcement rule is one of ours.
    Kernel {
        action: KernelAction,
        rule: Option<String>,
        binary: Option<String>,
    },
    /// A userspace action ended.
    Done(Box<Enforcement>),
    /// An operator's action ended (carried out, refused or failed).
    Operator(Box<Enforcement>),
}

pub struct Worker {
    layout: Layout,
    guard: Guard,
    limit: RateLimit,
    /// Operators' actions have a bucket of their own: a storm of policy actions never locks
    /// out the responder who is dealing with it.
    operator_limit: RateLimit,
    node: String,
    enforcer: Option<Enforcer>,
    /// Why there is no enforcer, when installing failed.
    unavailable: Option<String>,
    /// Enforcement rule id -> (origin, executable), for kernel records.
    origins: BTreeMap<u32, (String, Option<String>)>,
    /// cgroups already frozen or isolated by a rule: (action, cgroup id) -> record id.
    contained: BTreeMap<(&'static str, u64), u32>,
    installed: watch::Sender<Installed>,
}

impl Worker {
    /// Opens enforcement when it is installed, installs it when `set` needs it, and puts the
    /// kernel rules of `set` in place, on the calling thread (the start waits for them, so
    /// that nothing runs unenforced right after it).
    pub fn new(
        config: &super::EnforcementConfig,
        node: String,
        set: &PolicySet,
    ) -> (Self, watch::Receiver<Installed>) {
        let guard = Guard::new(&config.allow_executables, &config.allow_cgroups);
        let (installed, installed_rx) = watch::channel(Installed::default());
        let mut worker = Self {
            layout: config.layout(),
            guard,
            limit: RateLimit::new(config.rate_limit_per_minute, config.rate_limit_burst),
            operator_limit: RateLimit::new(config.rate_limit_per_minute, config.rate_limit_burst),
            node,
            enforcer: None,
            unavailable: None,
            origins: BTreeMap::new(),
            contained: BTreeMap::new(),
            installed,
        };
        match Enforcer::open_existing(worker.layout.clone(), worker.guard.clone()) {
            Ok(Some(enforcer)) => worker.enforcer = Some(unlimited(enforcer)),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %chain(&error), "Installed enforcement could not be opened; reinstalling.");
            }
        }
        worker.reconcile(set);
        (worker, installed_rx)
    }

    /// Runs until the job queue's sender (the responder) is gone.
    pub fn run(
        mut self,
        jobs: Receiver<Work>,
        mut policies: watch::Receiver<Arc<PolicySet>>,
        reports: mpsc::Sender<Report>,
    ) {
        let mut next_drain = Instant::now() + DRAIN_INTERVAL;
        loop {
            // The pipeline is gone (the API may still hold a sender of the queue).
            if reports.is_closed() {
                return;
            }
            let wait = next_drain.saturating_duration_since(Instant::now());
            let job = match jobs.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.drain(&reports);
                    return;
                }
            };
            if policies.has_changed().unwrap_or(false) {
                let set = policies.borrow_and_update().clone();
                self.reconcile(&set);
            }
            if let Some(work) = job {
                // The kernel's records so far first: an operator's release must not overtake
                // the records of the rule it removes (they would lose its details).
                if matches!(work, Work::Operator(_)) && !self.drain(&reports) {
                    return;
                }
                let report = match work {
                    Work::Policy(job) => Report::Done(Box::new(self.act(job))),
                    Work::Operator(job) => self.operate(job),
                };
                if reports.blocking_send(report).is_err() {
                    return;
                }
            }
            if Instant::now() >= next_drain {
                if !self.drain(&reports) {
                    return;
                }
                next_drain = Instant::now() + DRAIN_INTERVAL;
            }
        }
    }

    /// Forwards the kernel's records; false when the pipeline is gone.
    fn drain(&mut self, reports: &mpsc::Sender<Report>) -> bool {
        if self.enforcer.is_none() {
            // Installed meanwhile by `vigil contain --direct`: its records are ours to report.
            self.open_existing();
        }
        let Some(enforcer) = self.enforcer.as_mut() else {
            return true;
        };
        for action in enforcer.drain_actions() {
            if !self.origins.contains_key(&action.rule_id) {
                self.refresh_origins();
            }
            let (origin, binary) = self
                .origins
                .get(&action.rule_id)
                .cloned()
                .unwrap_or_default();
            let rule = origin.strip_prefix(ORIGIN_PREFIX).map(str::to_owned);
            if reports
                .blocking_send(Report::Kernel {
                    action,
                    rule,
                    binary,
                })
                .is_err()
            {
                return false;
            }
        }
        true
    }

    fn refresh_origins(&mut self) {
        let Some(enforcer) = &self.enforcer else {
            return;
        };
        if let Ok(list) = enforcer.list() {
            self.origins = list
                .into_iter()
                .map(|v| {
                    let binary = match &v.rule.kind {
                        RuleKind::DenyExec { path, .. } => Some(path.display().to_string()),
                        _ => None,
                    };
                    (v.rule.id, (v.rule.origin, binary))
                })
                .collect();
        }
    }

    /// Opens enforcement when someone installed it (a stat while it is not).
    fn open_existing(&mut self) {
        if !self.layout.map(vigil_common::maps::EXEC_DENY).exists() {
            return;
        }
        match Enforcer::open_existing(self.layout.clone(), self.guard.clone()) {
            Ok(Some(enforcer)) => self.enforcer = Some(unlimited(enforcer)),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %chain(&error), "Installed enforcement could not be opened.");
            }
        }
    }

    fn ensure_installed(&mut self) {
        if self.enforcer.is_some() {
            return;
        }
        match Enforcer::install(self.layout.clone(), self.guard.clone()) {
            Ok((enforcer, report)) => {
                tracing::info!(
                    attached = ?report.attached,
                    pins = %self.layout.bpffs_dir.display(),
                    "Installed enforcement for rules in enforce mode."
                );
                self.enforcer = Some(unlimited(enforcer));
                self.unavailable = None;
            }
            Err(error) => {
                let reason = format!("enforcement could not be installed: {}", chain(&error));
                tracing::error!(%reason, "Rules in enforce mode cannot act.");
                self.unavailable = Some(reason);
            }
        }
    }

    fn act(&mut self, job: Job) -> Enforcement {
        let (tgid, container) = match &job.target {
            Target::Process { tgid, .. } | Target::ProcessTree { tgid, .. } => (*tgid, None),
            Target::Container { id } => (0, Some(id.clone())),
            _ => (0, None),
        };
        let origin = format!("{ORIGIN_PREFIX}{}", job.rule);
        let result: Result<Option<u32>, EnforceError> = if !self.limit.try_acquire() {
            Err(EnforceError::RateLimited {
                what: job.action.name(),
            })
        } else {
            match job.action {
                Action::Kill => {
                    crate::enforce::kill_process(&self.guard, tgid as i32, job.start_time_ns)
                        .map(|()| None)
                }
                Action::KillTree => {
                    crate::enforce::kill_tree(&self.guard, tgid as i32, job.start_time_ns)
                        .map(|_| None)
                }
                Action::Freeze | Action::Isolate => self.contain(&job, &origin, container),
                _ => Err(EnforceError::Refused {
                    reason: format!("`{}` is not a userspace action", job.action.name()),
                }),
            }
        };
        let (outcome, rule_id, error) = match result {
            Ok(id) => ("ok", id, None),
            Err(e @ EnforceError::Refused { .. }) => ("refused", None, Some(chain(&e))),
            Err(e @ EnforceError::RateLimited { .. }) => ("rate_limited", None, Some(chain(&e))),
            Err(e) => ("failed", None, Some(chain(&e))),
        };
        if let Some(error) = &error {
            tracing::warn!(rule = %job.rule, action = job.action.name(), target = %job.target, %error, "A containment action was not carried out.");
        }
        Enforcement {
            action: job.action.name(),
            by: By::Userspace,
            rule: Some(job.rule),
            rule_id,
            target: job.target.to_string(),
            tgid,
            pid: tgid,
            comm: job.comm,
            cgroup_id: job.cgroup_id,
            binary: None,
            destination: None,
            outcome,
            error,
            latency_ns: u64::try_from(job.requested.elapsed().as_nanos()).unwrap_or(u64::MAX),
            operator: None,
        }
    }

    /// Freeze or isolate a container's cgroup, once per cgroup.
    fn contain(
        &mut self,
        job: &Job,
        origin: &str,
        container: Option<String>,
    ) -> Result<Option<u32>, EnforceError> {
        let reason = self.unavailable.clone();
        let enforcer = self
            .enforcer
            .as_mut()
            .ok_or_else(|| EnforceError::Refused {
                reason: reason.unwrap_or_else(|| "enforcement is not installed".into()),
            })?;
        let id = container.ok_or(EnforceError::NoSuchContainer { id: String::new() })?;
        let cgroup = enforcer.container_cgroup(&id)?;
        let name = job.action.name();
        if let Some(&done) = self.contained.get(&(name, cgroup.id)) {
            // Unless an operator released or thawed it since (here or with --direct).
            if enforcer.list()?.iter().any(|v| v.rule.id == done) {
                return Ok(Some(done));
            }
            self.contained.remove(&(name, cgroup.id));
        }
        let rule_id = if job.action == Action::Freeze {
            enforcer.freeze(origin, Path::new(&cgroup.path))?
        } else {
            enforcer.isolate_ref(origin, cgroup.clone())?
        };
        self.contained.insert((name, cgroup.id), rule_id);
        Ok(Some(rule_id))
    }
}

/// Policy sets are the operator's configuration, not events: installing their rules is not
/// rate-limited (per-event actions are, by the worker's own bucket).
fn unlimited(enforcer: Enforcer) -> Enforcer {
    enforcer.with_rate_limit(RateLimit::new(u32::MAX, u32::MAX))
}

pub use crate::telemetry::chain;
