//! The responder thread's side of policy sets: the kernel rules of each set put in force are
//! installed, those already in place kept, and the agent's rules that left the set released;
//! what is installed is published for the responder.

use std::{collections::BTreeMap, sync::Arc};

use super::{ORIGIN_PREFIX, Worker, chain};
use crate::{
    enforce::{EnforceError, Enforcer, RuleKind},
    policy::PolicySet,
    response::plan::{self, Scope, Spec},
};

impl Worker {
    /// Installs the kernel rules `set` asks for, keeps those already in place, and releases
    /// the agent's rules that `set` no longer has.
    pub fn reconcile(&mut self, set: &PolicySet) {
        if plan::needs_enforcement(set) {
            self.ensure_installed();
        }
        let plans = plan::plan(set, &self.node);
        let mut installed = BTreeMap::new();
        let Some(enforcer) = self.enforcer.as_mut() else {
            let reason = self
                .unavailable
                .clone()
                .unwrap_or_else(|| "enforcement is not installed".into());
            for p in plans {
                installed.insert(p.rule, Err(reason.clone()));
            }
            self.installed.send_replace(Arc::new(installed));
            return;
        };
        // The agent's kernel rules in place now, by policy rule: (id, identity). What a rule's
        // userspace action froze or isolated is not the set's to take back: it stays until an
        // operator releases it, across reloads and restarts.
        let mut current: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
        match enforcer.list() {
            Ok(list) => {
                for view in list
                    .into_iter()
                    .filter(|v| plan::is_kernel_rule(&v.rule.kind))
                {
                    if let Some(rule) = view.rule.origin.strip_prefix(ORIGIN_PREFIX) {
                        current
                            .entry(rule.to_owned())
                            .or_default()
                            .push((view.rule.id, identity_of(&view.rule.kind)));
                    }
                }
            }
            Err(error) => {
                tracing::error!(error = %chain(&error), "Reading the enforcement record failed; kernel rules are left as they are.");
                return;
            }
        }
        let (mut kept, mut added, mut released) = (0usize, 0usize, 0usize);
        for p in plans {
            let have = current.remove(&p.rule).unwrap_or_default();
            let specs = match p.specs {
                Ok(specs) => specs,
                Err(reason) => {
                    tracing::warn!(rule = %p.rule, %reason, "A kernel action cannot be installed; its findings will say so.");
                    released += release(enforcer, &have);
                    installed.insert(p.rule, Err(reason));
                    continue;
                }
            };
            let wanted: Result<Vec<String>, String> = specs
                .iter()
                .map(|s| identity_of_spec(enforcer, s))
                .collect();
            let mut have_ids: Vec<&String> = have.iter().map(|(_, k)| k).collect();
            have_ids.sort();
            if let Ok(wanted) = &wanted {
                let mut w: Vec<&String> = wanted.iter().collect();
                w.sort();
                if w == have_ids {
                    kept += have.len();
                    installed.insert(p.rule, Ok(have.iter().map(|(id, _)| *id).collect()));
                    continue;
                }
            }
            released += release(enforcer, &have);
            let origin = format!("{ORIGIN_PREFIX}{}", p.rule);
            let result: Result<Vec<u32>, String> = specs
                .iter()
                .map(|s| install(enforcer, &origin, s))
                .collect();
            match result {
                Ok(ids) => {
                    added += ids.len();
                    installed.insert(p.rule, Ok(ids));
                }
                Err(reason) => {
                    // Half a rule is not the rule: take back what went in.
                    let partial: Vec<(u32, String)> = enforcer
                        .list()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|v| v.rule.origin == origin)
                        .map(|v| (v.rule.id, String::new()))
                        .collect();
                    release(enforcer, &partial);
                    tracing::error!(rule = %p.rule, %reason, "Installing a kernel rule failed; its findings will say so.");
                    installed.insert(p.rule, Err(reason));
                }
            }
        }
        for (rule, have) in current {
            tracing::info!(rule = %rule, "Released the kernel rules of a policy rule no longer enforced.");
            released += release(enforcer, &have);
        }
        if kept + added + released > 0 {
            tracing::info!(
                kept,
                added,
                released,
                "Kernel enforcement rules reconciled with the policies."
            );
        }
        self.refresh_origins();
        self.installed.send_replace(Arc::new(installed));
    }
}

fn release(enforcer: &mut Enforcer, rules: &[(u32, String)]) -> usize {
    let mut n = 0;
    for (id, _) in rules {
        match enforcer.release(*id) {
            Ok(_) => n += 1,
            Err(error) => {
                tracing::warn!(id, error = %chain(&error), "Releasing a kernel rule failed.");
            }
        }
    }
    n
}

fn install(enforcer: &mut Enforcer, origin: &str, spec: &Spec) -> Result<u32, String> {
    let result = match spec {
        Spec::Exec { path, dir, scope } => match scope {
            None => enforcer.deny_exec(origin, path, *dir, None),
            Some(scope) => resolve(enforcer, scope)
                .and_then(|c| enforcer.deny_exec(origin, path, *dir, Some(&c))),
        },
        Spec::Open { path, dir, scope } => match scope {
            None => enforcer.deny_open(origin, path, *dir, None),
            Some(scope) => resolve(enforcer, scope)
                .and_then(|c| enforcer.deny_open(origin, path, *dir, Some(&c))),
        },
        Spec::Connect { scope, cidr, ports } => {
            resolve(enforcer, scope).and_then(|c| enforcer.deny_connect(origin, &c, cidr, ports))
        }
    };
    result.map_err(|e| chain(&e))
}

/// The cgroup v2 path of a scope.
fn resolve(enforcer: &Enforcer, scope: &Scope) -> Result<String, EnforceError> {
    match scope {
        Scope::Cgroup(path) => enforcer.cgroup(path).map(|c| c.path),
        Scope::Container(id) => enforcer.container_cgroup(id).map(|c| c.path),
    }
}

/// What makes an installed rule the same rule: the executable's identity now (a replaced
/// file is a new rule), the cgroup, the destination.
fn identity_of(kind: &RuleKind) -> String {
    match kind {
        RuleKind::DenyExec {
            path,
            dir,
            dev,
            ino,
            cgroup,
        }
        | RuleKind::DenyOpen {
            path,
            dir,
            dev,
            ino,
            cgroup,
        } => format!(
            "{} {} {dir} {dev}:{ino} {}",
            if matches!(kind, RuleKind::DenyExec { .. }) {
                "exec"
            } else {
                "open"
            },
            path.display(),
            cgroup.as_ref().map_or("-", |c| c.path.as_str())
        ),
        RuleKind::DenyConnect {
            cgroup,
            cidr,
            ports,
        } => {
            let mut ports = ports.clone();
            ports.sort_unstable();
            ports.dedup();
            format!("connect {} {cidr} {ports:?}", cgroup.path)
        }
        other => format!("other {}", other.name()),
    }
}

fn identity_of_spec(enforcer: &Enforcer, spec: &Spec) -> Result<String, String> {
    let err = |e: EnforceError| chain(&e);
    Ok(match spec {
        Spec::Exec { path, dir, scope } | Spec::Open { path, dir, scope } => {
            let key = crate::enforce::file_key_of(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            let cgroup = match scope {
                None => "-".to_owned(),
                Some(s) => resolve(enforcer, s).map_err(err)?,
            };
            let kind = if matches!(spec, Spec::Exec { .. }) {
                "exec"
            } else {
                "open"
            };
            format!(
                "{kind} {} {dir} {}:{} {cgroup}",
                canonical.display(),
                key.dev,
                key.ino
            )
        }
        Spec::Connect { scope, cidr, ports } => {
            let net: ipnet::IpNet = cidr
                .parse()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("invalid CIDR {cidr}"))?;
            let mut ports = ports.clone();
            ports.sort_unstable();
            ports.dedup();
            format!(
                "connect {} {} {ports:?}",
                resolve(enforcer, scope).map_err(err)?,
                net.trunc()
            )
        }
    })
}
