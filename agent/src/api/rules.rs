//! Enforcement rules as the API shows them (`EnforcementRule`, `ListActionsReply`), and one
//! readable line per rule: what `vigil enforcement list` prints, whether it asked the agent or
//! read the pinned maps itself.

use std::collections::HashMap;

use super::proto;
use crate::enforce::{
    EnforceError, Enforcer, Guard, Layout, Rule, RuleKind, RuleView, installed_links, program_stats,
};

/// `rule` as the API sends it, with the kernel's hits when known.
pub fn rule(rule: &Rule, hits: Option<u64>) -> proto::EnforcementRule {
    let mut out = proto::EnforcementRule {
        id: rule.id,
        kind: rule.kind.name().to_owned(),
        origin: rule.origin.clone(),
        created_unix_s: rule.created,
        hits,
        ..Default::default()
    };
    match &rule.kind {
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
        } => {
            out.path = path.display().to_string();
            out.dir = *dir;
            out.dev = *dev;
            out.inode = *ino;
            if let Some(c) = cgroup {
                out.cgroup.clone_from(&c.path);
                out.cgroup_id = c.id;
            }
        }
        RuleKind::DenyConnect {
            cgroup,
            cidr,
            ports,
        } => {
            out.cgroup.clone_from(&cgroup.path);
            out.cgroup_id = cgroup.id;
            out.cidr.clone_from(cidr);
            out.ports = ports.iter().map(|&p| u32::from(p)).collect();
        }
        RuleKind::Isolate { cgroup } => {
            out.cgroup.clone_from(&cgroup.path);
            out.cgroup_id = cgroup.id;
        }
        RuleKind::Freeze { cgroup, mode } => {
            out.cgroup = cgroup.display().to_string();
            out.freeze_mode.clone_from(mode);
        }
        RuleKind::Kill { pid, tree, killed } => {
            out.pid = *pid;
            out.tree = *tree;
            out.killed = u32::try_from(*killed).unwrap_or(u32::MAX);
        }
    }
    out
}

/// Everything about enforcement under `layout`: rules with their hits, pinned programs,
/// kernel counters. Blocking (bpffs, the rule record).
pub fn listing(layout: &Layout) -> Result<proto::ListActionsReply, EnforceError> {
    let enforcer = Enforcer::open_existing(layout.clone(), Guard::new(&[], &[]))?;
    let (rules, counters): (Vec<RuleView>, HashMap<String, u64>) = match &enforcer {
        Some(e) => (
            e.list()?,
            e.counters()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        ),
        None => Default::default(),
    };
    Ok(proto::ListActionsReply {
        rules: rules.iter().map(|v| rule(&v.rule, v.hits)).collect(),
        pinned_programs: installed_links(layout)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        counters,
        bpffs_dir: layout.bpffs_dir.display().to_string(),
        state_dir: layout.state_dir.display().to_string(),
        programs: program_stats(layout)
            .into_iter()
            .map(|(name, time, count)| proto::ProgramStats {
                name: name.to_owned(),
                run_count: count,
                run_time_ns: u64::try_from(time.as_nanos()).unwrap_or(u64::MAX),
            })
            .collect(),
    })
}

/// What a rule does, in a few words: `/tmp/x node-wide`, `/c -> 10.0.0.0/8 ports 80,443`.
pub fn describe(rule: &proto::EnforcementRule) -> String {
    let scope = |cgroup: &str| {
        if cgroup.is_empty() {
            "node-wide".to_owned()
        } else {
            format!("in {cgroup}")
        }
    };
    match rule.kind.as_str() {
        "deny_exec" | "deny_open" => format!(
            "{}{} ({}:{}) {}",
            rule.path,
            if rule.dir { "/ (directory)" } else { "" },
            rule.dev,
            rule.inode,
            scope(&rule.cgroup)
        ),
        "deny_connect" => {
            let ports = if rule.ports.is_empty() {
                "every port".to_owned()
            } else {
                let ports: Vec<String> = rule.ports.iter().map(u32::to_string).collect();
                format!("ports {}", ports.join(","))
            };
            format!("{} -> {} {ports}", rule.cgroup, rule.cidr)
        }
        "isolate" => rule.cgroup.clone(),
        "freeze" => format!("{} ({})", rule.cgroup, rule.freeze_mode),
        "kill" => format!(
            "pid {}{}, {} killed",
            rule.pid,
            if rule.tree { " and its tree" } else { "" },
            rule.killed
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::CgroupRef;

    #[test]
    fn rules_convert_and_read_well() {
        let exec = Rule {
            id: 4,
            created: 1_700_000_000,
            origin: "api:uid=0".into(),
            kind: RuleKind::DenyExec {
                path: "/tmp/evil".into(),
                dir: false,
                dev: 254 << 20,
                ino: 99,
                cgroup: None,
            },
        };
        let out = rule(&exec, Some(2));
        assert_eq!(
            (out.id, out.kind.as_str(), out.origin.as_str(), out.hits),
            (4, "deny_exec", "api:uid=0", Some(2))
        );
        assert_eq!((out.path.as_str(), out.inode), ("/tmp/evil", 99));
        assert_eq!(describe(&out), "/tmp/evil (266338304:99) node-wide");
        let connect = Rule {
            kind: RuleKind::DenyConnect {
                cgroup: CgroupRef {
                    path: "/t".into(),
                    id: 7,
                },
                cidr: "10.0.0.0/8".into(),
                ports: vec![80, 443],
            },
            ..exec
        };
        let out = rule(&connect, None);
        assert_eq!((out.cgroup_id, &out.ports[..]), (7, &[80, 443][..]));
        assert_eq!(describe(&out), "/t -> 10.0.0.0/8 ports 80,443");
    }
}
