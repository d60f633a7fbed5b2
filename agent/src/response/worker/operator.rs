//! The responder thread's side of operator actions: each request is carried out with the
//! agent's enforcer (installed on first use), guard and operator rate limit; the caller is
//! answered and the pipeline gets the enforcement event (`by: operator`), also when the
//! action was refused or failed: an attempt is worth reporting too.

use std::path::Path;

use vigil_common::enforce::NET_PORTS_MAX;

use super::{Report, Worker};
use crate::{
    enforce::{CgroupRef, EnforceError, Enforcer, Rule, process_facts},
    enrich::{ContainerRef, cgroup_path},
    process::ProcessKey,
    response::{
        operator::{Applied, CgroupSel, OperatorAction, OperatorError, OperatorJob},
        record::{By, Enforcement, Operator},
    },
};

/// Origin of the rules operators make through the API (`vigil enforcement list`), followed by
/// who asked: `api:uid=0`.
pub const ORIGIN_API: &str = "api:";

/// What an action was aimed at, as its event reports it; filled in as the action resolves it.
#[derive(Default)]
struct Subject {
    target: String,
    rule_id: Option<u32>,
    record: Option<Rule>,
    tgid: u32,
    comm: String,
    cgroup_id: u64,
    binary: Option<String>,
    process: Option<ProcessKey>,
    container: Option<ContainerRef>,
}

impl Subject {
    fn cgroup(&mut self, cgroup: &CgroupRef) {
        self.cgroup_id = cgroup.id;
        self.container = cgroup_path::parse(cgroup.path.as_bytes());
        // A container named by a prefix of its id is reported by its whole id.
        if let Some(c) = &self.container
            && self.target.starts_with("container:")
        {
            self.target = format!("container:{}", c.id);
        }
    }

    /// The rule `id` made, as it is now listed.
    fn made(&mut self, id: u32, enforcer: &Enforcer) {
        self.rule_id = Some(id);
        self.record = listed(enforcer, id);
    }
}

fn listed(enforcer: &Enforcer, id: u32) -> Option<Rule> {
    let list = enforcer.list().ok()?;
    list.into_iter().find(|v| v.rule.id == id).map(|v| v.rule)
}

fn resolve(enforcer: &Enforcer, sel: &CgroupSel) -> Result<CgroupRef, EnforceError> {
    match sel {
        CgroupSel::Path(path) => enforcer.cgroup(path),
        CgroupSel::Container(id) => enforcer.container_cgroup(id),
    }
}

impl Worker {
    /// Carries out one operator request, answers it, and returns its report.
    pub(super) fn operate(&mut self, job: OperatorJob) -> Report {
        let OperatorJob {
            request,
            requested,
            reply,
        } = job;
        let mut subject = Subject::default();
        let result = self.apply(&request.action, &request.requested_by, &mut subject);
        let (outcome, error) = match &result {
            Ok(_) => ("ok", None),
            Err(e) => {
                let outcome = match e {
                    OperatorError::Enforce { source, .. } => match source.as_ref() {
                        EnforceError::Refused { .. } => "refused",
                        EnforceError::RateLimited { .. } => "rate_limited",
                        _ => "failed",
                    },
                    _ => "failed",
                };
                (outcome, Some(e.message()))
            }
        };
        match &error {
            Some(error) => {
                tracing::warn!(action = request.action.name(), target = %subject.target, requested_by = %request.requested_by, %error, "An operator's containment action was not carried out.")
            }
            None => {
                tracing::info!(action = request.action.name(), target = %subject.target, requested_by = %request.requested_by, rule_id = ?subject.rule_id, "An operator's containment action was carried out.")
            }
        }
        let enforcement = Enforcement {
            action: request.action.name(),
            by: By::Operator,
            rule: None,
            rule_id: subject.rule_id,
            target: subject.target,
            tgid: subject.tgid,
            pid: subject.tgid,
            comm: subject.comm,
            cgroup_id: subject.cgroup_id,
            binary: subject.binary,
            destination: None,
            outcome,
            error,
            latency_ns: u64::try_from(requested.elapsed().as_nanos()).unwrap_or(u64::MAX),
            operator: Some(Box::new(Operator {
                requested_by: request.requested_by,
                reason: request.reason,
                record: subject.record,
                process: subject.process,
                container: subject.container,
            })),
        };
        let answer = result.map(|released| Applied {
            enforcement: enforcement.clone(),
            released,
        });
        // A caller that gave up does not undo the action: its event reports it all the same.
        let _ = reply.send(answer);
        Report::Operator(Box::new(enforcement))
    }

    /// Carries out `action`; returns the rules a thaw removed.
    fn apply(
        &mut self,
        action: &OperatorAction,
        requested_by: &str,
        subject: &mut Subject,
    ) -> Result<Vec<u32>, OperatorError> {
        let field = action.field();
        subject.target = target(action);
        if !action.is_undo() && !self.operator_limit.try_acquire() {
            return Err(OperatorError::at(field)(EnforceError::RateLimited {
                what: action.name(),
            }));
        }
        if let OperatorAction::Release { id } = action {
            // Nothing to release where nothing is installed: no reason to install it.
            self.open_existing();
            if self.enforcer.is_none() {
                return Err(OperatorError::at("release.id")(EnforceError::NoSuchRule {
                    id: *id,
                }));
            }
        }
        self.ensure_installed();
        let unavailable = self.unavailable.clone();
        let enforcer = self.enforcer.as_mut().ok_or_else(|| {
            OperatorError::at(field)(EnforceError::Refused {
                reason: unavailable.unwrap_or_else(|| "enforcement is not installed".into()),
            })
        })?;
        let who = requested_by.split_whitespace().next().unwrap_or("unknown");
        let origin = format!("{ORIGIN_API}{who}");
        match action {
            OperatorAction::DenyExec { path, dir, scope }
            | OperatorAction::DenyOpen { path, dir, scope } => {
                let open = matches!(action, OperatorAction::DenyOpen { .. });
                let (scope_field, path_field) = if open {
                    ("deny_open.scope", "deny_open.path")
                } else {
                    ("deny_exec.scope", "deny_exec.path")
                };
                subject.binary = Some(path.display().to_string());
                let scope = match scope {
                    Some(sel) => {
                        let at = OperatorError::at(sel.field(scope_field));
                        let cgroup = resolve(enforcer, sel)
                            .and_then(|c| self.guard.check_cgroup(&c.path).map(|()| c))
                            .map_err(at)?;
                        subject.cgroup(&cgroup);
                        Some(cgroup.path)
                    }
                    None => None,
                };
                let id = if open {
                    enforcer.deny_open(&origin, path, *dir, scope.as_deref())
                } else {
                    enforcer.deny_exec(&origin, path, *dir, scope.as_deref())
                }
                .map_err(OperatorError::at(path_field))?;
                subject.made(id, enforcer);
            }
            OperatorAction::DenyConnect { scope, cidr, ports } => {
                let at = OperatorError::at(scope.field("deny_connect.scope"));
                let cgroup = resolve(enforcer, scope)
                    .and_then(|c| self.guard.check_cgroup(&c.path).map(|()| c))
                    .map_err(at)?;
                subject.cgroup(&cgroup);
                crate::enforce::parse_cidr(cidr).map_err(OperatorError::at("deny_connect.cidr"))?;
                if ports.len() > NET_PORTS_MAX {
                    return Err(OperatorError::at("deny_connect.ports")(
                        EnforceError::TooMany {
                            what: "ports",
                            max: NET_PORTS_MAX,
                        },
                    ));
                }
                let id = enforcer
                    .deny_connect(&origin, &cgroup.path, cidr, ports)
                    .map_err(OperatorError::at(field))?;
                subject.made(id, enforcer);
            }
            OperatorAction::Isolate(sel) => {
                let at = || OperatorError::at(sel.field("isolate"));
                let cgroup = resolve(enforcer, sel).map_err(at())?;
                subject.cgroup(&cgroup);
                let id = enforcer.isolate_ref(&origin, cgroup).map_err(at())?;
                subject.made(id, enforcer);
            }
            OperatorAction::Freeze(sel) | OperatorAction::Thaw(sel) => {
                let at = || OperatorError::at(sel.field(field));
                let path = match sel {
                    CgroupSel::Container(_) => {
                        let cgroup = resolve(enforcer, sel).map_err(at())?;
                        subject.cgroup(&cgroup);
                        cgroup.path
                    }
                    // A v2 path (or a directory under a v1 freezer mount, which has no id).
                    CgroupSel::Path(path) => {
                        if let Ok(cgroup) = enforcer.cgroup(path) {
                            subject.cgroup(&cgroup);
                        }
                        path.clone()
                    }
                };
                if matches!(action, OperatorAction::Freeze(_)) {
                    let id = enforcer.freeze(&origin, Path::new(&path)).map_err(at())?;
                    subject.made(id, enforcer);
                } else {
                    let before = enforcer.list().map_err(at())?;
                    let released = enforcer.thaw(Path::new(&path)).map_err(at())?;
                    subject.rule_id = released.first().copied();
                    subject.record = before
                        .into_iter()
                        .find(|v| subject.rule_id == Some(v.rule.id))
                        .map(|v| v.rule);
                    self.contained.retain(|_, id| !released.contains(id));
                    return Ok(released);
                }
            }
            OperatorAction::Kill {
                pid,
                tree,
                start_time_ns,
            } => {
                subject.tgid = u32::try_from(*pid).unwrap_or_default();
                if let Some(facts) = process_facts(*pid) {
                    subject.comm = facts.comm;
                    subject.cgroup_id = facts.cgroup_id;
                    subject.process = Some(ProcessKey::new(
                        subject.tgid,
                        start_time_ns.unwrap_or(facts.start_time_ns),
                    ));
                }
                let (id, _) = enforcer
                    .kill(&origin, *pid, *start_time_ns, *tree)
                    .map_err(|e| {
                        let field = match e {
                            EnforceError::PidReused { .. } => "kill.start_time_ns",
                            _ => "kill.pid",
                        };
                        OperatorError::at(field)(e)
                    })?;
                subject.made(id, enforcer);
            }
            OperatorAction::Release { id } => {
                let rule = enforcer
                    .release(*id)
                    .map_err(OperatorError::at("release.id"))?;
                subject.rule_id = Some(*id);
                subject.record = Some(rule);
                self.contained.retain(|_, done| done != id);
            }
        }
        Ok(Vec::new())
    }
}

/// The action's target before it is resolved, as the operator named it.
fn target(action: &OperatorAction) -> String {
    match action {
        OperatorAction::DenyExec { path, dir, .. } => {
            let what = if *dir { "directory" } else { "binary" };
            format!("{what}:{}", path.display())
        }
        OperatorAction::DenyOpen { path, dir, .. } => {
            let what = if *dir { "directory" } else { "file" };
            format!("{what}:{}", path.display())
        }
        OperatorAction::DenyConnect { scope, .. } => scope.target(),
        OperatorAction::Isolate(sel) | OperatorAction::Freeze(sel) | OperatorAction::Thaw(sel) => {
            sel.target()
        }
        OperatorAction::Kill { pid, tree, .. } => {
            let what = if *tree { "process_tree" } else { "process" };
            format!("{what}:{pid}")
        }
        OperatorAction::Release { id } => format!("rule:{id}"),
    }
}
