//! `vigil contain ...` and `vigil enforcement ...`: incident response from a root shell,
//! straight on the pinned maps (no agent needed; the gRPC API comes later).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::{Enforcer, Guard, Layout, enforcer::ORIGIN_CLI, install};

#[derive(Subcommand)]
pub enum ContainCommand {
    /// Kill-on-exec: a process that executes PATH (or, with --dir, anything below it on its
    /// filesystem) is killed before its first instruction.
    DenyExec {
        path: PathBuf,
        #[arg(long)]
        dir: bool,
        /// Only in this cgroup v2 (path below the v2 root) and below; node-wide by default.
        #[arg(long)]
        cgroup: Option<String>,
    },
    /// Deny connects and sends of a cgroup to a CIDR (EPERM), optionally on some ports.
    DenyConnect {
        #[arg(long)]
        cgroup: String,
        #[arg(long)]
        cidr: String,
        #[arg(long = "port")]
        ports: Vec<u16>,
    },
    /// Isolate the network of a cgroup (every connect and send gets EPERM).
    Isolate {
        #[arg(
            long,
            required_unless_present = "container",
            conflicts_with = "container"
        )]
        cgroup: Option<String>,
        /// A container id (12+ characters), resolved to its cgroup from cgroup v2 paths.
        #[arg(long)]
        container: Option<String>,
    },
    /// Freeze a cgroup (v2 `cgroup.freeze`, or the v1 freezer) for forensics.
    Freeze {
        #[command(flatten)]
        target: CgroupTarget,
    },
    /// Thaw a frozen cgroup.
    Thaw {
        #[command(flatten)]
        target: CgroupTarget,
    },
    /// SIGKILL a process (through a pidfd), or its whole tree.
    Kill {
        #[arg(long)]
        pid: i32,
        #[arg(long)]
        tree: bool,
    },
    /// Remove a rule by id (a frozen cgroup is thawed).
    Release { id: u32 },
}

/// A cgroup named by its path or by the container running in it.
#[derive(clap::Args)]
pub struct CgroupTarget {
    /// A cgroup path below the v2 root (as in /proc/PID/cgroup), or a directory under a cgroup
    /// mount.
    #[arg(
        long,
        required_unless_present = "container",
        conflicts_with = "container"
    )]
    cgroup: Option<PathBuf>,
    /// A container id (12+ characters), resolved to its cgroup from cgroup v2 paths.
    #[arg(long)]
    container: Option<String>,
}

impl CgroupTarget {
    fn resolve(&self, enforcer: &Enforcer) -> anyhow::Result<PathBuf> {
        match (&self.cgroup, &self.container) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(id)) => Ok(PathBuf::from(enforcer.container_cgroup(id)?.path)),
            (None, None) => anyhow::bail!("--cgroup or --container is required"),
        }
    }
}

#[derive(Subcommand)]
pub enum EnforcementCommand {
    /// The rules in force, the programs pinned, the kernel's counters.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove every rule and pin: the enforcement programs detach.
    Clear,
    /// Print (and consume) the records of the actions the kernel took.
    Actions {
        #[arg(long)]
        json: bool,
    },
}

fn guard() -> Guard {
    Guard::new(&[], &[])
}

fn installed() -> anyhow::Result<Enforcer> {
    let (enforcer, report) = Enforcer::install(Layout::default(), guard())
        .context("installing the enforcement programs")?;
    if !report.attached.is_empty() {
        eprintln!("attached and pinned: {}", report.attached.join(", "));
    }
    Ok(enforcer)
}

pub fn contain(command: ContainCommand) -> anyhow::Result<()> {
    match command {
        ContainCommand::DenyExec { path, dir, cgroup } => {
            let id = installed()?.deny_exec(ORIGIN_CLI, &path, dir, cgroup.as_deref())?;
            println!("rule {id}: deny exec {}", path.display());
        }
        ContainCommand::DenyConnect {
            cgroup,
            cidr,
            ports,
        } => {
            let id = installed()?.deny_connect(ORIGIN_CLI, &cgroup, &cidr, &ports)?;
            println!("rule {id}: deny connect {cgroup} -> {cidr} {ports:?}");
        }
        ContainCommand::Isolate { cgroup, container } => {
            let mut enforcer = installed()?;
            let target = match (cgroup, container) {
                (Some(c), _) => enforcer.cgroup(&c)?,
                (None, Some(id)) => enforcer.container_cgroup(&id)?,
                (None, None) => anyhow::bail!("--cgroup or --container is required"),
            };
            let path = target.path.clone();
            let id = enforcer.isolate_ref(ORIGIN_CLI, target)?;
            println!("rule {id}: isolate {path}");
        }
        ContainCommand::Freeze { target } => {
            let mut enforcer = installed()?;
            let cgroup = target.resolve(&enforcer)?;
            let id = enforcer.freeze(ORIGIN_CLI, &cgroup)?;
            println!("rule {id}: frozen {}", cgroup.display());
        }
        ContainCommand::Thaw { target } => {
            let mut enforcer = installed()?;
            let cgroup = target.resolve(&enforcer)?;
            enforcer.thaw(&cgroup)?;
            println!("thawed {}", cgroup.display());
        }
        ContainCommand::Kill { pid, tree } => {
            let (id, killed) = installed()?.kill(ORIGIN_CLI, pid, None, tree)?;
            println!("rule {id}: killed {killed} process(es)");
        }
        ContainCommand::Release { id } => {
            let rule = installed()?.release(id)?;
            println!("released rule {id} ({})", rule.kind.name());
        }
    }
    Ok(())
}

pub fn enforcement(command: EnforcementCommand) -> anyhow::Result<()> {
    let layout = Layout::default();
    match command {
        EnforcementCommand::List { json } => {
            let links = install::installed_links(&layout);
            let enforcer = Enforcer::open_existing(layout.clone(), guard())?;
            let rules = match &enforcer {
                Some(e) => e.list()?,
                None => Vec::new(),
            };
            let counters = enforcer
                .as_ref()
                .map(Enforcer::counters)
                .unwrap_or_default();
            if json {
                let value = serde_json::json!({
                    "pinned_programs": links,
                    "rules": rules,
                    "counters": counters.iter().map(|(k, v)| (k.to_string(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(());
            }
            println!(
                "pinned programs ({}): {}",
                layout.links_dir().display(),
                if links.is_empty() {
                    "none".to_owned()
                } else {
                    links.join(", ")
                }
            );
            if rules.is_empty() {
                println!("no rules");
            }
            for view in &rules {
                let rule = &view.rule;
                let detail = serde_json::to_value(&rule.kind)?;
                let hits = view.hits.map(|h| format!(" hits={h}")).unwrap_or_default();
                println!(
                    "{:>4}  {:<12} {}{hits}  (origin {})",
                    rule.id,
                    rule.kind.name(),
                    detail,
                    rule.origin
                );
            }
            for (name, time, count) in install::program_stats(&layout) {
                if count > 0 {
                    println!(
                        "program {name}: {count} runs, {} ns per run",
                        time.as_nanos() / u128::from(count)
                    );
                }
            }
            if !counters.is_empty() {
                let text: Vec<String> = counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("kernel counters: {}", text.join(" "));
            }
        }
        EnforcementCommand::Clear => {
            let report = install::clear(&layout)?;
            println!(
                "cleared: {} rules, programs {:?}, maps {:?}",
                report.rules, report.links, report.maps
            );
        }
        EnforcementCommand::Actions { json } => {
            let Some(mut enforcer) = Enforcer::open_existing(layout, guard())? else {
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
        }
    }
    Ok(())
}
