//! One JSON object per line per event: the output of `vigil run`.
//!
//! Kernel bytes (argv, paths, comm) are rendered with [`escape`]: lossless, and unchanged for
//! valid UTF-8 without backslashes.

use std::borrow::Cow;

use serde::Serialize;

use self::workload::{ContainerJson, PodJson};
use super::escape::escape;
use crate::{
    clock::BootClock,
    event::{Detail, Event, Exec, Exit, Fork, Loss},
    process::Process,
};

mod cred;
mod dns;
mod enforcement;
mod file;
mod finding;
use self::{enforcement::EnforcementJson, finding::FindingJson};
mod network;
mod syscall;
use self::{
    cred::CredJson, dns::DnsJson, file::FileJson, network::NetworkJson, syscall::SyscallJson,
};

/// Renders events as JSON lines for one node.
#[derive(Clone, Debug)]
pub struct JsonRenderer {
    node: String,
    clock: BootClock,
}

impl JsonRenderer {
    pub fn new(node: String, clock: BootClock) -> Self {
        Self { node, clock }
    }

    pub fn clock_mut(&mut self) -> &mut BootClock {
        &mut self.clock
    }

    /// Appends `event` as one line (with its newline) to `out`.
    pub fn render(&self, event: &Event, out: &mut Vec<u8>) {
        // A finding renders the detail of the event that matched, plus `finding`.
        let detail = match &event.detail {
            Detail::Finding(finding) => &finding.trigger,
            detail => detail,
        };
        let line = Line {
            kind: event.detail.kind(),
            time: self.clock.rfc3339(event.time_ns),
            node: &self.node,
            process: event
                .process
                .as_deref()
                .map(|p| ProcessJson::new(p, event, &self.clock)),
            parent: event
                .parent
                .as_deref()
                .map(|p| ParentJson::new(p, &self.clock)),
            ancestors: event
                .ancestors
                .iter()
                .map(|p| ParentJson::new(p, &self.clock))
                .collect(),
            exec: match detail {
                Detail::Exec(exec) => Some(ExecJson::new(exec)),
                _ => None,
            },
            fork: match detail {
                Detail::Fork(fork) => Some(ForkJson::new(fork)),
                _ => None,
            },
            syscall: match detail {
                Detail::Syscall(syscall) => Some(SyscallJson::new(syscall)),
                _ => None,
            },
            network: match detail {
                Detail::Network(network) => Some(NetworkJson::new(network)),
                Detail::TcpState(change) => Some(NetworkJson::tcp_state(change)),
                Detail::Dns(dns) => Some(NetworkJson::dns(dns)),
                _ => None,
            },
            dns: match detail {
                Detail::Dns(dns) => Some(DnsJson::new(dns)),
                _ => None,
            },
            file: match detail {
                Detail::File(file) => Some(FileJson::new(file)),
                _ => None,
            },
            cred: match detail {
                Detail::CredChange(change) => Some(CredJson::new(change)),
                _ => None,
            },
            loss: match detail {
                Detail::Loss(loss) => Some(LossJson::new(loss)),
                _ => None,
            },
            finding: match &event.detail {
                Detail::Finding(finding) => Some(FindingJson::new(finding)),
                _ => None,
            },
            enforcement: match &event.detail {
                Detail::Enforcement(e) => Some(EnforcementJson::new(e)),
                _ => None,
            },
            container: event.container.as_deref().map(ContainerJson::new),
            pod: event.pod.as_deref().map(PodJson::new),
        };
        // Serializing plain structs of strings and integers into a Vec cannot fail.
        if serde_json::to_writer(&mut *out, &line).is_ok() {
            out.push(b'\n');
        }
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Serialize)]
struct Line<'a> {
    kind: &'static str,
    time: String,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<ProcessJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<ParentJson<'a>>,
    /// Above the parent, nearest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ancestors: Vec<ParentJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<ExecJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fork: Option<ForkJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    syscall: Option<SyscallJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<NetworkJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<DnsJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cred: Option<CredJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loss: Option<LossJson<'a>>,
    /// The rule that fired and what was done (kind `finding` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    finding: Option<FindingJson<'a>>,
    /// A containment action and its outcome (kind `enforcement` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    enforcement: Option<EnforcementJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<ContainerJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod: Option<PodJson<'a>>,
}

#[derive(Serialize)]
struct ProcessJson<'a> {
    pid: u32,
    tgid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    euid: u32,
    egid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    loginuid: Option<u32>,
    binary: Cow<'a, str>,
    #[serde(skip_serializing_if = "is_false")]
    binary_truncated: bool,
    args: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "is_false")]
    args_truncated: bool,
    cwd: Cow<'a, str>,
    #[serde(skip_serializing_if = "is_false")]
    cwd_truncated: bool,
    comm: Cow<'a, str>,
    exec_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_exec_id: Option<&'a str>,
    start_time: String,
    start_time_ns: u64,
    cgroup_id: u64,
    /// cgroup v2 path, when known.
    #[serde(skip_serializing_if = "str::is_empty")]
    cgroup: Cow<'a, str>,
    /// How Vigil knows this process: "exec", "fork", "snapshot" (read from /proc at start-up)
    /// or "unknown" (seen only in later events).
    origin: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<u8>,
    #[serde(skip_serializing_if = "is_false")]
    core_dumped: bool,
}

impl<'a> ProcessJson<'a> {
    fn new(p: &'a Process, event: &Event, clock: &BootClock) -> Self {
        let exit: Option<&Exit> = match &event.detail {
            Detail::Exit(exit) => Some(exit),
            _ => None,
        };
        Self {
            pid: event.pid,
            tgid: p.key.tgid,
            ppid: p.ppid,
            uid: p.creds.uid,
            gid: p.creds.gid,
            euid: p.creds.euid,
            egid: p.creds.egid,
            loginuid: p.creds.loginuid,
            binary: escape(&p.binary.path),
            binary_truncated: p.binary.truncated,
            args: p.args.iter().map(|a| escape(a)).collect(),
            args_truncated: p.args_truncated,
            cwd: escape(&p.cwd.path),
            cwd_truncated: p.cwd.truncated,
            comm: escape(&p.comm),
            exec_id: p.exec_id.as_str(),
            parent_exec_id: p.parent_exec_id.as_ref().map(|id| id.as_str()),
            start_time: clock.rfc3339(p.key.start_time_ns),
            start_time_ns: p.key.start_time_ns,
            cgroup_id: p.cgroup_id,
            cgroup: escape(&p.cgroup_path),
            origin: match p.origin {
                crate::process::Origin::Exec => "exec",
                crate::process::Origin::Fork => "fork",
                crate::process::Origin::Snapshot => "snapshot",
                crate::process::Origin::Unknown => "unknown",
            },
            exit_code: exit.and_then(Exit::status),
            signal: exit.and_then(Exit::signal),
            core_dumped: exit.is_some_and(Exit::core_dumped),
        }
    }
}

#[derive(Serialize)]
struct ParentJson<'a> {
    pid: u32,
    exec_id: &'a str,
    binary: Cow<'a, str>,
    args: Vec<Cow<'a, str>>,
    start_time: String,
}

impl<'a> ParentJson<'a> {
    fn new(p: &'a Process, clock: &BootClock) -> Self {
        Self {
            pid: p.key.tgid,
            exec_id: p.exec_id.as_str(),
            binary: escape(&p.binary.path),
            args: p.args.iter().map(|a| escape(a)).collect(),
            start_time: clock.rfc3339(p.key.start_time_ns),
        }
    }
}

#[derive(Serialize)]
struct ExecJson<'a> {
    /// The filename as passed to execve.
    filename: Cow<'a, str>,
    #[serde(skip_serializing_if = "is_false")]
    filename_truncated: bool,
    #[serde(skip_serializing_if = "is_false")]
    args_unreadable: bool,
    inode: u64,
    /// "major:minor" of the executable's filesystem.
    dev: String,
    /// The executed file had no link left: deleted before it ran, or a memfd.
    #[serde(skip_serializing_if = "is_false")]
    deleted: bool,
    /// The executed file was a memfd (an anonymous in-memory file): fileless execution.
    #[serde(skip_serializing_if = "is_false")]
    memfd: bool,
}

impl<'a> ExecJson<'a> {
    fn new(exec: &'a Exec) -> Self {
        Self {
            filename: escape(&exec.filename),
            filename_truncated: exec.filename_truncated,
            deleted: exec.exe_unlinked,
            // memfd files live on the kernel's internal shm mount as `memfd:<name>`.
            memfd: exec.exe_unlinked && exec.binary.path.starts_with(b"/memfd:"),
            args_unreadable: exec.args_unreadable,
            inode: exec.exe_inode,
            dev: format!("{}:{}", exec.exe_dev >> 20, exec.exe_dev & 0xf_ffff),
        }
    }
}

#[derive(Serialize)]
struct ForkJson {
    caller_pid: u32,
    #[serde(skip_serializing_if = "is_false")]
    thread: bool,
}

impl ForkJson {
    fn new(fork: &Fork) -> Self {
        Self {
            caller_pid: fork.caller_pid,
            thread: fork.thread,
        }
    }
}

#[derive(Serialize)]
struct LossJson<'a> {
    total: u64,
    /// Lost events by cause since the previous loss event.
    causes: std::collections::BTreeMap<&'a str, u64>,
}

impl<'a> LossJson<'a> {
    fn new(loss: &'a Loss) -> Self {
        Self {
            total: loss.total(),
            causes: loss.counts.iter().map(|(cause, n)| (*cause, *n)).collect(),
        }
    }
}

mod workload;

#[cfg(test)]
mod tests;
