//! One JSON object per line per event: the output of `vigil run`.
//!
//! Kernel bytes (argv, paths, comm) are rendered with [`escape`](super::escape::escape):
//! lossless, and unchanged for valid UTF-8 without backslashes.
//!
//! The members every event has (its process, parent, workload, and the lifecycle details)
//! are written by hand ([`write`]), and so are the file, network and DNS details, most of a
//! service node's output: writing them straight into the buffer is several times faster
//! than building serde structs of `String`s. Their serde structs stay as the schema the
//! hand-written members are tested against. The rarer details are serde structs,
//! serialized into the same line.

use serde::Serialize;

use crate::{
    clock::{BootClock, Rfc3339Writer},
    event::{Detail, Event, Exec, Exit, Fork, Loss},
    process::{Image, Process},
};

mod cred;
mod dns;
mod enforcement;
mod file;
mod finding;
use self::{enforcement::EnforcementJson, finding::FindingJson};
mod network;
mod syscall;
mod write;
use self::{
    cred::CredJson, dns::DnsJson, file::FileJson, network::NetworkJson, syscall::SyscallJson,
    write::Object,
};

/// Renders events as JSON lines for one node.
#[derive(Clone, Debug)]
pub struct JsonRenderer {
    node: String,
    clock: BootClock,
    times: Rfc3339Writer,
    workloads: workload::Workloads,
}

impl JsonRenderer {
    pub fn new(node: String, clock: BootClock) -> Self {
        Self {
            node,
            clock,
            times: Rfc3339Writer::default(),
            workloads: workload::Workloads::default(),
        }
    }

    pub fn clock_mut(&mut self) -> &mut BootClock {
        &mut self.clock
    }

    /// Appends `event` as one line (with its newline) to `out`.
    pub fn render(&mut self, event: &Event, out: &mut Vec<u8>) {
        // A finding renders the detail of the event that matched, plus `finding`.
        let detail = match &event.detail {
            Detail::Finding(finding) => &finding.trigger,
            detail => detail,
        };
        let mut line = Object::open(out);
        line.str("kind", event.detail.kind());
        self.time(line.key("time"), event.time_ns);
        line.str("node", &self.node);
        if let Some(p) = event.process.as_deref() {
            self.process(line.key("process"), p, event);
        }
        if let Some(p) = event.parent.as_deref() {
            self.parent(line.key("parent"), p);
        }
        // Above the parent, nearest first.
        if !event.ancestors.is_empty() {
            let out = line.key("ancestors");
            out.push(b'[');
            for (i, p) in event.ancestors.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                self.parent(out, p);
            }
            out.push(b']');
        }
        match detail {
            Detail::Exec(exec) => exec_json(line.key("exec"), exec),
            Detail::Fork(fork) => fork_json(line.key("fork"), fork),
            Detail::Syscall(syscall) => serde(line.key("syscall"), &SyscallJson::new(syscall)),
            Detail::Network(network) => NetworkJson::new(network).write(line.key("network")),
            Detail::TcpState(change) => NetworkJson::tcp_state(change).write(line.key("network")),
            Detail::Dns(dns) => {
                NetworkJson::dns(dns).write(line.key("network"));
                DnsJson::new(dns).write(line.key("dns"));
            }
            Detail::File(file) => FileJson::new(file).write(line.key("file")),
            Detail::CredChange(change) => serde(line.key("cred"), &CredJson::new(change)),
            Detail::Loss(loss) => serde(line.key("loss"), &LossJson::new(loss)),
            Detail::Exit(exit) => exit_json(line.key("exit"), exit),
            Detail::Finding(_) | Detail::Enforcement(_) => {}
        }
        match &event.detail {
            // The rule that fired and what was done.
            Detail::Finding(finding) => serde(line.key("finding"), &FindingJson::new(finding)),
            // A containment action and its outcome.
            Detail::Enforcement(e) => serde(line.key("enforcement"), &EnforcementJson::new(e)),
            _ => {}
        }
        if let Some(container) = &event.container {
            self.workloads.container(line.key("container"), container);
        }
        if let Some(pod) = &event.pod {
            self.workloads.pod(line.key("pod"), pod);
        }
        line.close();
        out.push(b'\n');
    }

    /// A boot-time instant as an RFC 3339 string.
    fn time(&mut self, out: &mut Vec<u8>, boot_ns: u64) {
        out.push(b'"');
        self.times.write(&self.clock, boot_ns, out);
        out.push(b'"');
    }

    fn process(&mut self, out: &mut Vec<u8>, p: &Process, event: &Event) {
        let exit: Option<&Exit> = match &event.detail {
            Detail::Exit(exit) => Some(exit),
            _ => None,
        };
        let mut o = Object::open(out);
        o.uint("pid", event.pid);
        o.uint("tgid", p.key.tgid);
        o.uint("ppid", p.ppid);
        o.uint("uid", p.creds.uid);
        o.uint("gid", p.creds.gid);
        o.uint("euid", p.creds.euid);
        o.uint("egid", p.creds.egid);
        if let Some(loginuid) = p.creds.loginuid {
            o.uint("loginuid", loginuid);
        }
        let (image, cgroup_at) = p.image.json.get_or_init(|| image_members(&p.image));
        let (image, cgroup) = image.split_at(*cgroup_at);
        o.splice(image);
        o.str("exec_id", p.exec_id.as_str());
        o.some_str(
            "parent_exec_id",
            p.parent_exec_id.as_ref().map(|id| id.as_str()),
        );
        self.time(o.key("start_time"), p.key.start_time_ns);
        o.uint("start_time_ns", p.key.start_time_ns);
        o.uint("cgroup_id", p.cgroup_id);
        // cgroup v2 path, when known.
        o.splice(cgroup);
        // How Vigil knows this process: "exec", "fork", "snapshot" (read from /proc at
        // start-up) or "unknown" (seen only in later events).
        o.str(
            "origin",
            match p.origin {
                crate::process::Origin::Exec => "exec",
                crate::process::Origin::Fork => "fork",
                crate::process::Origin::Snapshot => "snapshot",
                crate::process::Origin::Unknown => "unknown",
            },
        );
        if let Some(code) = exit.and_then(Exit::status) {
            o.uint("exit_code", code);
        }
        if let Some(signal) = exit.and_then(Exit::signal) {
            o.uint("signal", signal);
        }
        o.flag("core_dumped", exit.is_some_and(Exit::core_dumped));
        o.close();
    }

    /// A parent or ancestor: rendered once per process (a shell's or a server's is in every
    /// event of its children) and copied after, but for its start time, written anew each
    /// time since the clock's offset may be refreshed.
    fn parent(&mut self, out: &mut Vec<u8>, p: &Process) {
        out.extend_from_slice(p.parent_json.get_or_init(|| parent_members(p)));
        self.time(out, p.key.start_time_ns);
        out.push(b'}');
    }
}

/// The `process` members of an image: `binary` to `comm`, then `cgroup` (when known) from
/// the offset returned.
fn image_members(image: &Image) -> (Box<[u8]>, usize) {
    let mut out = Vec::with_capacity(256);
    let mut o = Object::members(&mut out);
    o.bytes("binary", &image.binary.path);
    o.flag("binary_truncated", image.binary.truncated);
    write::byte_list(o.key("args"), &image.args);
    o.flag("args_truncated", image.args_truncated);
    o.bytes("cwd", &image.cwd.path);
    o.flag("cwd_truncated", image.cwd.truncated);
    o.bytes("comm", &image.comm);
    let cgroup_at = out.len();
    if !image.cgroup_path.is_empty() {
        Object::members(&mut out).bytes("cgroup", &image.cgroup_path);
    }
    (out.into_boxed_slice(), cgroup_at)
}

/// A `parent` (or ancestor) object of `p` up to its start time (after `"start_time":`).
fn parent_members(p: &Process) -> Box<[u8]> {
    let mut out = Vec::with_capacity(256);
    let mut o = Object::open(&mut out);
    o.uint("pid", p.key.tgid);
    o.str("exec_id", p.exec_id.as_str());
    o.bytes("binary", &p.binary.path);
    write::byte_list(o.key("args"), &p.args);
    o.key("start_time");
    out.into_boxed_slice()
}

fn is_false(b: &bool) -> bool {
    !b
}

/// A serde struct into the line (compact, as the hand-written members).
fn serde(out: &mut Vec<u8>, value: &impl Serialize) {
    // Structs of strings, numbers and string-keyed maps into a Vec: this cannot fail.
    let _ = serde_json::to_writer(out, value);
}

fn exec_json(out: &mut Vec<u8>, exec: &Exec) {
    let mut o = Object::open(out);
    // The filename as passed to execve.
    o.bytes("filename", &exec.filename);
    o.flag("filename_truncated", exec.filename_truncated);
    o.flag("args_unreadable", exec.args_unreadable);
    o.uint("inode", exec.exe_inode);
    // "major:minor" of the executable's filesystem.
    let dev = o.key("dev");
    dev.push(b'"');
    write::uint(dev, exec.exe_dev >> 20);
    dev.push(b':');
    write::uint(dev, exec.exe_dev & 0xf_ffff);
    dev.push(b'"');
    // The executed file had no link left: deleted before it ran, or a memfd.
    o.flag("deleted", exec.exe_unlinked);
    // A memfd (an anonymous in-memory file): fileless execution. memfd files live on the
    // kernel's internal shm mount as `memfd:<name>`.
    o.flag(
        "memfd",
        exec.exe_unlinked && exec.image.binary.path.starts_with(b"/memfd:"),
    );
    o.close();
}

/// Whether this exit ended the process (always, unless threads are traced: then a thread's
/// own exit has `false`). The status is under `process`.
fn exit_json(out: &mut Vec<u8>, exit: &Exit) {
    let mut o = Object::open(out);
    write::bool(o.key("group_dead"), exit.group_dead);
    o.close();
}

fn fork_json(out: &mut Vec<u8>, fork: &Fork) {
    let mut o = Object::open(out);
    o.uint("caller_pid", fork.caller_pid);
    o.flag("thread", fork.thread);
    o.close();
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
