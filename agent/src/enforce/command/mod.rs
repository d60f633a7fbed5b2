//! `vigil contain ...` and `vigil enforcement ...`: incident response from a shell.
//!
//! By default a command asks the running agent through its API socket (`remote`): the agent
//! acts with its own guard, rate limit and enforcement layout, and reports the action as an
//! enforcement event. When no agent answers, the command fails and says so; `--direct` acts
//! on the pinned maps from this process instead (`direct`), as before the API existed: it
//! works with no agent at all, but the action is in no event stream. `vigil enforcement
//! list` reads: when no agent answers it reads the pinned maps itself (saying so), since both
//! show the same record. `clear` and `actions` always work on the pins directly.

mod direct;
mod print;
mod remote;

pub use print::listing;
pub use remote::{ListError, list};

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{Guard, Layout};
use crate::{api::proto, config::Config};

/// The agent's API socket when neither `--socket` nor `--config` names one.
pub const DEFAULT_SOCKET: &str = "/run/vigil/vigil.sock";

/// How a command reaches enforcement.
#[derive(Args, Clone, Debug)]
pub struct Via {
    /// The agent's API socket (default: `api.socket` of --config, else /run/vigil/vigil.sock).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Act on the pinned enforcement maps from this process, without the agent (root). The
    /// action is then in no event stream.
    #[arg(long, global = true)]
    direct: bool,
    /// The agent's config file: its `api.socket`, and for --direct its `[enforcement]`
    /// layout and allow-lists (default: the built-in ones).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

impl Via {
    fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref())?)
    }

    fn socket(&self, config: &Config) -> PathBuf {
        match (&self.socket, &self.config) {
            (Some(socket), _) => socket.clone(),
            (None, Some(_)) => config.api.socket.clone(),
            (None, None) => PathBuf::from(DEFAULT_SOCKET),
        }
    }
}

/// What `--direct` works with: the layout and the guard of the config.
fn direct_setup(config: &Config) -> (Layout, Guard) {
    let e = &config.enforcement;
    (
        e.layout(),
        Guard::new(&e.allow_executables, &e.allow_cgroups),
    )
}

#[derive(Args)]
pub struct ContainArgs {
    #[command(flatten)]
    via: Via,
    /// Why (an incident number, a name): recorded in the action's event.
    #[arg(long, global = true, default_value = "")]
    reason: String,
    /// Print the outcome as JSON (the API's `ContainReply`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: ContainCommand,
}

/// The target of a deny-exec or deny-open rule.
#[derive(Args, Clone, Debug)]
pub struct FileRuleArgs {
    /// The file (or, with --dir, a directory); the rule names its inode now.
    pub path: PathBuf,
    /// PATH is a directory: every file below it on its filesystem.
    #[arg(long)]
    pub dir: bool,
    /// Only in this cgroup v2 (path below the v2 root) and below; node-wide by default.
    #[arg(long, conflicts_with = "container")]
    pub cgroup: Option<String>,
    /// Only in this container (12+ characters of its id) and below.
    #[arg(long)]
    pub container: Option<String>,
}

impl FileRuleArgs {
    /// The rule's scope: `None` (node-wide) unless a cgroup or container is named.
    fn scope(&self) -> Option<proto::CgroupTarget> {
        (self.cgroup.is_some() || self.container.is_some()).then(|| {
            CgroupTarget {
                cgroup: self.cgroup.clone(),
                container: self.container.clone(),
            }
            .proto()
        })
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum ContainCommand {
    /// Kill-on-exec: a process that executes PATH (or, with --dir, anything below it on its
    /// filesystem) is killed before its first instruction.
    DenyExec(FileRuleArgs),
    /// Deny opens of PATH (or, with --dir, of anything below it on its filesystem) with
    /// EPERM. Needs BPF-LSM (`vigil probe` says whether this kernel runs it).
    DenyOpen(FileRuleArgs),
    /// Deny connects and sends of a cgroup to a CIDR (EPERM), optionally on some ports.
    DenyConnect {
        #[command(flatten)]
        target: CgroupTarget,
        /// `10.0.0.0/8`, `fd00::/8`, or one address.
        #[arg(long)]
        cidr: String,
        /// Only these ports (repeatable; at most 8); every port by default.
        #[arg(long = "port")]
        ports: Vec<u16>,
    },
    /// Isolate the network of a cgroup (every connect and send gets EPERM).
    Isolate {
        #[command(flatten)]
        target: CgroupTarget,
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
        pid: u32,
        /// The process and every process below it (stopped first, then killed).
        #[arg(long)]
        tree: bool,
        /// The process's start time (ns since boot, `process.start_time_ns` of its events):
        /// refused if the pid names another process by now.
        #[arg(long)]
        start_time_ns: Option<u64>,
    },
    /// Remove a rule by id (a frozen cgroup is thawed).
    Release { id: u32 },
}

/// A cgroup named by its path or by the container running in it.
#[derive(Args, Clone, Debug)]
pub struct CgroupTarget {
    /// A cgroup path below the v2 root (as in /proc/PID/cgroup), or (freeze, thaw) a
    /// directory under a cgroup mount.
    #[arg(
        long,
        required_unless_present = "container",
        conflicts_with = "container"
    )]
    cgroup: Option<String>,
    /// A container id (12+ characters), resolved to its cgroup from cgroup v2 paths.
    #[arg(long)]
    container: Option<String>,
}

impl CgroupTarget {
    fn proto(&self) -> proto::CgroupTarget {
        use proto::cgroup_target::Target;
        proto::CgroupTarget {
            target: match (&self.cgroup, &self.container) {
                (Some(path), _) => Some(Target::Cgroup(path.clone())),
                (None, Some(id)) => Some(Target::ContainerId(id.clone())),
                (None, None) => None,
            },
        }
    }
}

impl ContainCommand {
    /// The API request for this command (`None`: release, its own RPC).
    fn request(&self, reason: &str) -> Option<proto::ContainRequest> {
        use proto::contain_request::Action;
        let action = match self {
            Self::DenyExec(rule) => Action::DenyExec(proto::DenyExec {
                path: rule.path.display().to_string(),
                dir: rule.dir,
                scope: rule.scope(),
            }),
            Self::DenyOpen(rule) => Action::DenyOpen(proto::DenyOpen {
                path: rule.path.display().to_string(),
                dir: rule.dir,
                scope: rule.scope(),
            }),
            Self::DenyConnect {
                target,
                cidr,
                ports,
            } => Action::DenyConnect(proto::DenyConnect {
                scope: Some(target.proto()),
                cidr: cidr.clone(),
                ports: ports.iter().map(|&p| u32::from(p)).collect(),
            }),
            Self::Isolate { target } => Action::Isolate(target.proto()),
            Self::Freeze { target } => Action::Freeze(target.proto()),
            Self::Thaw { target } => Action::Thaw(target.proto()),
            Self::Kill {
                pid,
                tree,
                start_time_ns,
            } => Action::Kill(proto::Kill {
                pid: *pid,
                tree: *tree,
                start_time_ns: start_time_ns.unwrap_or(0),
            }),
            Self::Release { .. } => return None,
        };
        Some(proto::ContainRequest {
            action: Some(action),
            reason: reason.to_owned(),
        })
    }
}

#[derive(Args)]
pub struct EnforcementArgs {
    #[command(flatten)]
    via: Via,
    #[command(subcommand)]
    action: EnforcementCommand,
}

#[derive(Subcommand)]
pub enum EnforcementCommand {
    /// The rules in force, the programs pinned, the kernel's counters (from the agent; from
    /// the pinned maps with --direct or when no agent answers).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove every rule and pin: the enforcement programs detach (on the pins, always).
    Clear,
    /// Print (and consume) the records of the actions the kernel took (on the pins, always:
    /// a running agent reports them as enforcement events instead).
    Actions {
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn contain(args: ContainArgs) -> anyhow::Result<()> {
    let config = args.via.config()?;
    let reply = if args.via.direct {
        let socket = args.via.socket(&config);
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            eprintln!(
                "note: an agent serves {}: this action, taken with --direct, is not in its event stream",
                socket.display()
            );
        }
        let (layout, guard) = direct_setup(&config);
        direct::contain(layout, guard, &args.action)?
    } else {
        let socket = args.via.socket(&config);
        runtime()?.block_on(remote::contain(&socket, &args.action, &args.reason))?
    };
    if args.json {
        println!("{}", serde_json::to_string(&reply)?);
    } else {
        println!("{}", print::outcome(&reply));
    }
    Ok(())
}

pub fn enforcement(args: EnforcementArgs) -> anyhow::Result<()> {
    let config = args.via.config()?;
    let (layout, guard) = direct_setup(&config);
    match args.action {
        EnforcementCommand::List { json } => {
            let listing = if args.via.direct {
                crate::api::rules::listing(&layout)?
            } else {
                let socket = args.via.socket(&config);
                match runtime()?.block_on(list(&socket)) {
                    Ok(listing) => listing,
                    Err(ListError::Unreachable(why)) => {
                        eprintln!(
                            "note: {why}: listing the pinned maps under {}",
                            layout.bpffs_dir.display()
                        );
                        crate::api::rules::listing(&layout)?
                    }
                    Err(ListError::Failed(error)) => return Err(error),
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&listing)?);
            } else {
                print!("{}", print::listing(&listing));
            }
        }
        EnforcementCommand::Clear => direct::clear(&layout)?,
        EnforcementCommand::Actions { json } => direct::actions(layout, guard, json)?,
    }
    Ok(())
}
