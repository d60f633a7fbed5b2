//! Which kernel rules a policy set asks for: every rule in `mode: enforce` whose action the
//! kernel decides (`kill_on_exec`, `deny_connect`) becomes deny-map entries, installed when the
//! set is put in force rather than per event. Pure: read from the compiled rules, unit-tested
//! without a kernel. A rule the kernel cannot express (an inode, every container, a node-wide
//! connect deny) gets the reason instead, which its findings then report.

use std::{path::PathBuf, sync::Arc};

use crate::policy::{
    Action, Mode, PolicySet, Rule,
    condition::Cond,
    field::{Field, ProcessField, Value},
    operator::Op,
};

/// Where a kernel rule applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// A cgroup v2 path and everything below it.
    Cgroup(String),
    /// The cgroup of a container, by id (resolved when installed).
    Container(String),
}

/// One kernel rule to install.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Spec {
    /// Kill-on-exec of a file, or (`dir`) of every executable below a directory.
    Exec {
        path: PathBuf,
        dir: bool,
        scope: Option<Scope>,
    },
    /// Open deny (BPF-LSM) of a file, or (`dir`) of every file below a directory.
    Open {
        path: PathBuf,
        dir: bool,
        scope: Option<Scope>,
    },
    /// Connect deny to a CIDR (and ports; empty: every port) from a cgroup.
    Connect {
        scope: Scope,
        cidr: String,
        ports: Vec<u16>,
    },
}

/// The kernel rules of one policy rule, or why it has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPlan {
    pub rule: String,
    pub specs: Result<Vec<Spec>, String>,
}

/// The kernel plans of `set` on node `node` (rules scoped to other nodes have none).
pub fn plan(set: &PolicySet, node: &str) -> Vec<KernelPlan> {
    set.rules()
        .iter()
        .filter(|r| r.mode == Mode::Enforce && r.action.is_kernel())
        .filter(|r| on_node(r, node))
        .map(|r| KernelPlan {
            rule: r.info.name.clone(),
            specs: specs(r),
        })
        .collect()
}

/// Whether `set` has a rule that acts (enforce mode, an action): containment is then needed.
pub fn needs_enforcement(set: &PolicySet) -> bool {
    set.rules()
        .iter()
        .any(|r| r.mode == Mode::Enforce && r.action != Action::None)
}

/// Whether a recorded rule is one that plans install (and reconciling may release): the
/// kernel's deny entries, not the records of userspace actions (freeze, isolate, kill).
pub fn is_kernel_rule(kind: &crate::enforce::RuleKind) -> bool {
    use crate::enforce::RuleKind;
    match kind {
        RuleKind::DenyExec { .. } | RuleKind::DenyOpen { .. } | RuleKind::DenyConnect { .. } => {
            true
        }
        RuleKind::Isolate { .. } | RuleKind::Freeze { .. } | RuleKind::Kill { .. } => false,
    }
}

/// Shared between the responder thread (which writes it after each install) and the
/// responder (which reads it when a kernel rule fires).
pub type Installed = Arc<std::collections::BTreeMap<String, Result<Vec<u32>, String>>>;

fn tops(cond: Option<&Cond>) -> Vec<&Cond> {
    match cond {
        None => Vec::new(),
        Some(Cond::All(list)) => list.iter().collect(),
        Some(c) => vec![c],
    }
}

fn on_node(rule: &Rule, node: &str) -> bool {
    tops(rule.scope.as_ref()).into_iter().all(|c| match c {
        Cond::Test {
            field: Field::Node,
            op,
        } => op.test(Value::Str(node.as_bytes())),
        _ => true,
    })
}

fn strings(op: &Op) -> Option<(Vec<String>, bool)> {
    let list = |l: &[Box<[u8]>]| {
        l.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    };
    match op {
        Op::StrIn(l) => Some((list(l), false)),
        Op::Prefix(l) => Some((list(l), true)),
        _ => None,
    }
}

fn specs(rule: &Rule) -> Result<Vec<Spec>, String> {
    let name = rule.action.name();
    for c in tops(rule.scope.as_ref()) {
        if let Cond::Test { field, .. } = c
            && *field != Field::Node
        {
            return Err(format!(
                "`{name}`: scope globs cannot be installed in the kernel; use `process.cgroup` (equals, prefix) or `container.id` (equals)"
            ));
        }
    }
    let mut targets: Option<Vec<(String, bool)>> = None;
    let mut files: Option<Vec<(String, bool)>> = None;
    let mut cidrs: Option<Vec<String>> = None;
    let mut ports: Vec<u16> = Vec::new();
    let mut scopes: Vec<Scope> = Vec::new();
    let unsupported = |what: &str| {
        Err(format!(
            "`{name}` cannot be installed in the kernel with {what}"
        ))
    };
    for c in tops(rule.matcher.as_ref()) {
        match c {
            Cond::Test {
                field: Field::Process(ProcessField::Binary),
                op,
            } => {
                let Some((paths, prefix)) = strings(op) else {
                    return unsupported("this `process.binary` operator");
                };
                if targets.is_some() {
                    return unsupported("several `process.binary` conditions");
                }
                targets = Some(paths.into_iter().map(|p| (p, prefix)).collect());
            }
            Cond::Test {
                field: Field::FilePath,
                op,
            } => {
                let Some((paths, prefix)) = strings(op) else {
                    return unsupported("this `file.path` operator");
                };
                if files.is_some() {
                    return unsupported("several `file.path` conditions");
                }
                files = Some(paths.into_iter().map(|p| (p, prefix)).collect());
            }
            Cond::Test {
                field: Field::ExecInode,
                ..
            } => {
                return unsupported(
                    "`exec.inode` (the kernel keys on device and inode): name the executable by `process.binary`",
                );
            }
            Cond::Test {
                field: Field::Process(ProcessField::Cgroup),
                op,
            } => {
                let Some((paths, _)) = strings(op) else {
                    return unsupported("this `process.cgroup` operator");
                };
                scopes.extend(
                    paths
                        .into_iter()
                        .map(|p| Scope::Cgroup(p.trim_end_matches('/').to_owned())),
                );
            }
            Cond::Test {
                field: Field::ContainerId,
                op: Op::StrIn(ids),
            } => scopes.extend(
                ids.iter()
                    .map(|b| Scope::Container(String::from_utf8_lossy(b).into_owned())),
            ),
            Cond::Exists {
                field: Field::ContainerId,
                ..
            } => {
                return unsupported(
                    "`container.id: {exists: ...}` (every container is no one cgroup): name the container or its cgroup",
                );
            }
            Cond::Test {
                field: Field::NetworkDstIp,
                op,
            } => {
                let list: Vec<String> = match op {
                    Op::IpIn(ips) => ips.iter().map(ToString::to_string).collect(),
                    Op::Cidr(nets) => nets.iter().map(ToString::to_string).collect(),
                    _ => return unsupported("this `network.dst_ip` operator"),
                };
                cidrs.get_or_insert_with(Vec::new).extend(list);
            }
            Cond::Test {
                field: Field::NetworkDstPort,
                op: Op::IntIn(list),
            } => {
                for &p in list.iter() {
                    ports.push(u16::try_from(p).map_err(|_| format!("port {p} is out of range"))?);
                }
            }
            Cond::Test {
                field: Field::NetworkDstPort,
                ..
            } => return unsupported("a port range: list the ports"),
            // `kind: ...` and `network.protocol: {exists: false}` say what the hook is.
            Cond::Test {
                field: Field::Kind, ..
            }
            | Cond::Exists {
                field: Field::Kind | Field::NetworkProtocol,
                ..
            } => {}
            _ => return unsupported("this condition"),
        }
    }
    let mut out = Vec::new();
    match rule.action {
        Action::KillOnExec | Action::DenyOpen => {
            let (targets, what) = if rule.action == Action::KillOnExec {
                (targets, "process.binary")
            } else {
                (files, "file.path")
            };
            let Some(targets) = targets else {
                return Err(format!(
                    "`{name}` cannot be installed in the kernel with no `{what}`"
                ));
            };
            let scopes: Vec<Option<Scope>> = if scopes.is_empty() {
                vec![None]
            } else {
                scopes.into_iter().map(Some).collect()
            };
            for (path, prefix) in targets {
                let trimmed = if prefix {
                    path.trim_end_matches('/')
                } else {
                    &path
                };
                if !trimmed.starts_with('/') || trimmed.len() < 2 {
                    return Err(format!(
                        "`{name}`: `{path}` is not an absolute path below `/`"
                    ));
                }
                for scope in &scopes {
                    let (path, dir, scope) = (PathBuf::from(trimmed), prefix, scope.clone());
                    out.push(if rule.action == Action::KillOnExec {
                        Spec::Exec { path, dir, scope }
                    } else {
                        Spec::Open { path, dir, scope }
                    });
                }
            }
        }
        Action::DenyConnect => {
            if scopes.is_empty() {
                return unsupported(
                    "no cgroup: the kernel denies per cgroup, and never for the whole node (the agent's own); add `container.id` or `process.cgroup`",
                );
            }
            let cidrs = cidrs.unwrap_or_else(|| vec!["0.0.0.0/0".into(), "::/0".into()]);
            for scope in &scopes {
                for cidr in &cidrs {
                    out.push(Spec::Connect {
                        scope: scope.clone(),
                        cidr: cidr.clone(),
                        ports: ports.clone(),
                    });
                }
            }
        }
        _ => return unsupported("a userspace action"),
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(yaml: &str) -> PolicySet {
        crate::policy::load::compile(&vec![("t.yaml".into(), yaml.into())]).expect("valid rules")
    }

    #[test]
    fn kill_on_exec_rules_become_exec_specs() {
        let s = set(r#"
rules:
  - name: a
    match: {kind: exec, process.binary: [/usr/bin/nc, /bin/ncat]}
    action: kill_on_exec
    mode: enforce
  - name: b
    match: {kind: exec, process.binary: {prefix: /opt/bad/}, process.cgroup: /t}
    action: kill_on_exec
    mode: enforce
  - name: c
    match: {kind: exec, process.binary: /usr/bin/nc}
    action: kill_on_exec
  - name: d
    match: {kind: exec, exec.inode: 7}
    action: kill_on_exec
    mode: enforce
  - name: e
    match: {kind: exec, process.binary: /x}
    action: kill_on_exec
    mode: enforce
    scope: {nodes: [other]}
"#);
        let plans = plan(&s, "node-1");
        assert_eq!(
            plans.len(),
            3,
            "monitor and other nodes' rules have none: {plans:?}"
        );
        assert_eq!(
            plans[0].specs,
            Ok(vec![
                Spec::Exec {
                    path: "/bin/ncat".into(),
                    dir: false,
                    scope: None
                },
                Spec::Exec {
                    path: "/usr/bin/nc".into(),
                    dir: false,
                    scope: None
                },
            ])
        );
        assert_eq!(
            plans[1].specs,
            Ok(vec![Spec::Exec {
                path: "/opt/bad".into(),
                dir: true,
                scope: Some(Scope::Cgroup("/t".into()))
            }])
        );
        assert!(
            plans[2]
                .specs
                .as_ref()
                .is_err_and(|e| e.contains("exec.inode"))
        );
        assert!(needs_enforcement(&s));
    }

    #[test]
    fn deny_open_rules_become_open_specs() {
        let s = set(r#"
rules:
  - name: a
    match: {kind: file, file.path: [/etc/shadow], process.cgroup: /t}
    action: deny_open
    mode: enforce
  - name: b
    match: {kind: file, file.path: {prefix: /etc/secret/}}
    action: deny_open
    mode: enforce
"#);
        let plans = plan(&s, "n");
        assert_eq!(
            plans[0].specs,
            Ok(vec![Spec::Open {
                path: "/etc/shadow".into(),
                dir: false,
                scope: Some(Scope::Cgroup("/t".into())),
            }])
        );
        assert_eq!(
            plans[1].specs,
            Ok(vec![Spec::Open {
                path: "/etc/secret".into(),
                dir: true,
                scope: None,
            }])
        );
    }

    #[test]
    fn deny_connect_needs_a_cgroup() {
        let s = set(r#"
rules:
  - name: a
    match: {kind: connect, network.dst_ip: {cidr: 10.0.0.0/8}, network.dst_port: [3333, 4444], container.id: abcdefabcdef}
    action: deny_connect
    mode: enforce
  - name: b
    match: {kind: connect, network.dst_port: 3333}
    action: deny_connect
    mode: enforce
"#);
        let plans = plan(&s, "n");
        assert_eq!(
            plans[0].specs,
            Ok(vec![Spec::Connect {
                scope: Scope::Container("abcdefabcdef".into()),
                cidr: "10.0.0.0/8".into(),
                ports: vec![3333, 4444],
            }])
        );
        assert!(plans[1].specs.as_ref().is_err_and(|e| e.contains("cgroup")));
    }
}
