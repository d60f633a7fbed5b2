//! `--direct`: the commands on the pinned maps from this process (root; no agent needed).
//! Operator commands are not rate-limited here (origin `cli`), but the guard of the config
//! holds: never pid 1, this process, an allow-listed executable or cgroup, the cgroup root.

use std::path::Path;

use anyhow::Context as _;

use super::ContainCommand;
use crate::{
    api::{proto, rules},
    enforce::{CgroupRef, Enforcer, Guard, Layout, clear as clear_pins, enforcer::ORIGIN_CLI},
};

fn installed(layout: Layout, guard: Guard) -> anyhow::Result<Enforcer> {
    let (enforcer, report) =
        Enforcer::install(layout, guard).context("installing the enforcement programs")?;
    if !report.attached.is_empty() {
        eprintln!("attached and pinned: {}", report.attached.join(", "));
    }
    Ok(enforcer)
}

/// The cgroup named by `--cgroup` or `--container`.
fn resolve(
    enforcer: &Enforcer,
    cgroup: Option<&str>,
    container: Option<&str>,
) -> anyhow::Result<CgroupRef> {
    match (cgroup, container) {
        (Some(path), _) => Ok(enforcer.cgroup(path)?),
        (None, Some(id)) => Ok(enforcer.container_cgroup(id)?),
        (None, None) => anyhow::bail!("--cgroup or --container is required"),
    }
}

/// What a command did, in the shape the agent answers with.
fn reply(
    enforcer: &Enforcer,
    action: &str,
    id: Option<u32>,
    target: String,
) -> proto::ContainReply {
    let record = id.and_then(|id| {
        let list = enforcer.list().ok()?;
        list.into_iter().find(|v| v.rule.id == id)
    });
    proto::ContainReply {
        enforcement: Some(proto::Enforcement {
            action: action.to_owned(),
            by: "cli".to_owned(),
            target,
            outcome: "ok".to_owned(),
            rule_id: id,
            record: record.map(|v| rules::rule(&v.rule, v.hits)),
            ..Default::default()
        }),
        released: Vec::new(),
    }
}

pub fn contain(
    layout: Layout,
    guard: Guard,
    command: &ContainCommand,
) -> anyhow::Result<proto::ContainReply> {
    let mut enforcer = installed(layout, guard)?;
    let e = &mut enforcer;
    Ok(match command {
        ContainCommand::DenyExec(rule) | ContainCommand::DenyOpen(rule) => {
            let (path, dir) = (&rule.path, &rule.dir);
            let (cgroup, container) = (&rule.cgroup, &rule.container);
            let scope = match (cgroup, container) {
                (None, None) => None,
                _ => Some(resolve(e, cgroup.as_deref(), container.as_deref())?.path),
            };
            let scope = scope.as_deref();
            if matches!(command, ContainCommand::DenyOpen(_)) {
                let id = e.deny_open(ORIGIN_CLI, path, *dir, scope)?;
                reply(e, "deny_open", Some(id), format!("file:{}", path.display()))
            } else {
                let id = e.deny_exec(ORIGIN_CLI, path, *dir, scope)?;
                reply(
                    e,
                    "deny_exec",
                    Some(id),
                    format!("binary:{}", path.display()),
                )
            }
        }
        ContainCommand::DenyConnect {
            target,
            cidr,
            ports,
        } => {
            let cgroup = resolve(e, target.cgroup.as_deref(), target.container.as_deref())?;
            let id = e.deny_connect(ORIGIN_CLI, &cgroup.path, cidr, ports)?;
            reply(
                e,
                "deny_connect",
                Some(id),
                format!("cgroup:{}", cgroup.path),
            )
        }
        ContainCommand::Isolate { target } => {
            let cgroup = resolve(e, target.cgroup.as_deref(), target.container.as_deref())?;
            let path = cgroup.path.clone();
            let id = e.isolate_ref(ORIGIN_CLI, cgroup)?;
            reply(e, "isolate", Some(id), format!("cgroup:{path}"))
        }
        ContainCommand::Freeze { target } | ContainCommand::Thaw { target } => {
            // A freeze path may also be a v1 freezer directory, which the v2 lookup rejects.
            let path = match (&target.cgroup, &target.container) {
                (Some(path), _) => path.clone(),
                _ => resolve(e, None, target.container.as_deref())?.path,
            };
            if matches!(command, ContainCommand::Freeze { .. }) {
                let id = e.freeze(ORIGIN_CLI, Path::new(&path))?;
                reply(e, "freeze", Some(id), format!("cgroup:{path}"))
            } else {
                let released = e.thaw(Path::new(&path))?;
                let mut out = reply(
                    e,
                    "thaw",
                    released.first().copied(),
                    format!("cgroup:{path}"),
                );
                out.released = released;
                out
            }
        }
        ContainCommand::Kill {
            pid,
            tree,
            start_time_ns,
        } => {
            let pid = i32::try_from(*pid).context("--pid is not a process id")?;
            let (id, _) = e.kill(ORIGIN_CLI, pid, *start_time_ns, *tree)?;
            let action = if *tree { "kill_tree" } else { "kill" };
            reply(e, action, Some(id), format!("process:{pid}"))
        }
        ContainCommand::Release { id } => {
            let rule = e.release(*id)?;
            let mut out = reply(e, "release", Some(*id), format!("rule:{id}"));
            if let Some(enforcement) = &mut out.enforcement {
                enforcement.record = Some(rules::rule(&rule, None));
            }
            out
        }
    })
}

/// `vigil enforcement clear`.
pub fn clear(layout: &Layout) -> anyhow::Result<()> {
    let report = clear_pins(layout)?;
    println!(
        "cleared: {} rules, programs {:?}, maps {:?}",
        report.rules, report.links, report.maps
    );
    Ok(())
}

/// `vigil enforcement actions`.
pub fn actions(layout: Layout, guard: Guard, json: bool) -> anyhow::Result<()> {
    let Some(mut enforcer) = Enforcer::open_existing(layout, guard)? else {
        println!("enforcement is not installed");
        return Ok(());
    };
    for action in enforcer.drain_actions() {
        if json {
            println!("{}", serde_json::to_string(&action)?);
        } else {
            println!("{action:?}");
        }
    }
    Ok(())
}
