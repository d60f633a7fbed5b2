//! Containment: the kernel-side enforcement (kill-on-exec, connect deny) driven through its
//! pinned maps, and the userspace actions for what the kernel cannot decide (kill a process
//! or a tree through pidfds, freeze a cgroup, isolate a cgroup's network).
//!
//! - `install`: loads and attaches the enforcement programs once, pins their links and maps
//!   under `/sys/fs/bpf/vigil/` so enforcement holds while the agent is down or restarting;
//!   [`clear`] unpins (detaches) everything.
//! - [`Enforcer`]: the rules. The record of rules (`/run/vigil/enforcement.json`, on tmpfs
//!   like bpffs, so both vanish at reboot) is the source of truth; every change rewrites the
//!   kernel entries it touches from it.
//! - `process`, `freeze`: one-shot actions; `guard`: never the agent itself, never an
//!   allow-listed process or cgroup, and a rate limit for automated actions.

mod devno;
mod enforcer;
mod error;
mod freeze;
mod guard;
mod install;
mod layout;
mod process;
mod rules;

pub mod command;
pub mod probe;

pub use devno::{file_key_of, kernel_dev};
pub use enforcer::{Enforcer, KernelAction, RuleView, parse_cidr};
pub use error::EnforceError;
pub use freeze::{FreezeMode, freeze, thaw};
pub use guard::{Guard, RateLimit};
pub use install::{ENFORCE_PROGRAMS, InstallReport, clear, installed_links, program_stats};
pub use layout::Layout;
pub use process::{ProcessFacts, facts as process_facts, kill_process, kill_tree};
pub use rules::{CgroupRef, Rule, RuleKind};
