//! Domain events: what the pipeline works with after `decode`, and what exporters receive.
//! Strings from the kernel stay bytes here; exporters decide how to render them.

use std::sync::Arc;

use crate::{
    enrich::{Container, Pod},
    process::{Image, Process, ProcessKey},
};

/// A task as a kernel record names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Thread id.
    pub pid: u32,
    /// Identity of the process the thread belongs to.
    pub key: ProcessKey,
    pub cgroup_id: u64,
    /// CLOCK_BOOTTIME nanoseconds when the kernel made the record.
    pub time_ns: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// Audit login uid; `None` when unset or not available on this kernel.
    pub loginuid: Option<u32>,
}

/// Everything Vigil reports of a task's credentials (`struct cred`) at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCreds {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    /// `SECBIT_*` bits.
    pub securebits: u32,
    /// Capability sets: bit `n` is capability `n` (`CAP_CHOWN` = 0 ...).
    pub cap_inheritable: u64,
    pub cap_permitted: u64,
    pub cap_effective: u64,
    pub cap_bset: u64,
    /// `None` on a kernel without ambient capabilities (before 4.3).
    pub cap_ambient: Option<u64>,
}

/// A syscall that changed the calling thread's credentials (setuid family, capset, prctl).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredChange {
    /// The thread at entry (`time_ns` is the time of entry).
    pub task: Task,
    /// Number in the native table of the kernel's architecture.
    pub nr: u32,
    /// The syscall's name, when Vigil knows the number.
    pub syscall: Option<&'static str>,
    /// Return value: negative is `-errno`.
    pub ret: i64,
    /// CLOCK_BOOTTIME nanoseconds at return.
    pub exit_time_ns: u64,
    pub before: TaskCreds,
    pub after: TaskCreds,
}

/// A path read by a bounded walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalkedPath {
    pub path: Vec<u8>,
    /// The walk stopped before the root: `path` is only the deepest part.
    pub truncated: bool,
}

/// `sched_process_exec`, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    pub task: Task,
    pub parent: ProcessKey,
    pub creds: Creds,
    /// The filename as passed to execve (may be relative).
    pub filename: Vec<u8>,
    pub filename_truncated: bool,
    /// Reading argv failed in the kernel: `image.args` is empty, not the real argv.
    pub args_unreadable: bool,
    /// What the exec set up: the executed file's path (resolved in the kernel), argv, cwd,
    /// comm and cgroup v2 path (`/` for the root cgroup). The process cache's entry for the
    /// new image shares it.
    pub image: Arc<Image>,
    /// The walk of the cgroup path stopped before the root.
    pub cgroup_truncated: bool,
    pub exe_inode: u64,
    /// The executed file had no link left at exec (a memfd, or a file deleted before it ran).
    pub exe_unlinked: bool,
    /// Kernel `dev_t` of the executed file's filesystem (major << 20 | minor).
    pub exe_dev: u32,
}

/// `sched_process_fork`, decoded: `task` is the child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fork {
    pub task: Task,
    pub parent: ProcessKey,
    /// Thread id of the task that called fork/clone.
    pub caller_pid: u32,
    /// A thread of an existing process rather than a new process.
    pub thread: bool,
}

/// `sched_process_exit`, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub task: Task,
    /// Raw `task->exit_code`.
    pub exit_code: u32,
    /// The whole thread group is gone.
    pub group_dead: bool,
}

impl Exit {
    /// Exit status for a normal exit, `None` when killed by a signal.
    pub fn status(&self) -> Option<u8> {
        (self.exit_code & 0x7f == 0).then_some(((self.exit_code >> 8) & 0xff) as u8)
    }

    /// The signal that killed the task, if any.
    pub fn signal(&self) -> Option<u8> {
        let sig = (self.exit_code & 0x7f) as u8;
        (sig != 0).then_some(sig)
    }

    pub fn core_dumped(&self) -> bool {
        self.exit_code & 0x80 != 0
    }
}

/// A syscall selected by the filter, with its arguments and return value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syscall {
    /// The task at entry (`time_ns` is the time of entry).
    pub task: Task,
    /// Number in the native table of the kernel's architecture.
    pub nr: u32,
    /// The syscall's name, when Vigil knows the number.
    pub name: Option<&'static str>,
    /// Arguments by name, decoded by type.
    pub args: Vec<(&'static str, crate::syscall::ArgValue)>,
    /// Return value: negative is `-errno`.
    pub ret: i64,
    /// CLOCK_BOOTTIME nanoseconds at return.
    pub exit_time_ns: u64,
    /// More string arguments than the kernel copies: some are reported as addresses.
    pub strings_dropped: bool,
}

impl Syscall {
    /// The errno of a failed syscall.
    pub fn errno(&self) -> Option<i64> {
        (-4095..0).contains(&self.ret).then_some(-self.ret)
    }

    /// The argument named `name`.
    pub fn arg(&self, name: &str) -> Option<&crate::syscall::ArgValue> {
        self.args.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// What a network event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkOp {
    Connect,
    /// accept or accept4: the return value is the new connection's fd.
    Accept,
    Bind,
    Listen,
    /// A TCP connection's close (from a state change, not a syscall).
    Close,
}

impl NetworkOp {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Accept => "accept",
            Self::Bind => "bind",
            Self::Listen => "listen",
            Self::Close => "close",
        }
    }
}

/// A network syscall: connect, accept/accept4, bind or listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// The task at entry (`time_ns` is the time of entry).
    pub task: Task,
    pub op: NetworkOp,
    /// The socket's fd (accept: the listening socket's).
    pub fd: i32,
    /// The socket address argument: the remote for connect and accept (the peer), the local
    /// address for bind. `None`: none (listen, a NULL pointer, a failed accept).
    pub addr: Option<Result<crate::network::Sockaddr, crate::network::SockaddrError>>,
    /// listen's backlog.
    pub backlog: Option<i32>,
    /// The socket's own ends, read from the kernel at return (IPv4/IPv6 sockets that the
    /// call left open; accept: the new connection's).
    pub socket: Option<SocketEnds>,
    /// Return value: negative is `-errno`; accept's new fd.
    pub ret: i64,
    /// CLOCK_BOOTTIME nanoseconds at return.
    pub exit_time_ns: u64,
}

/// An IP socket's ends as the kernel held them when a network syscall returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketEnds {
    /// `IPPROTO_TCP` (6), `IPPROTO_UDP` (17)...
    pub protocol: u16,
    /// The bound address and port (a port bind or connect picked; a listener's).
    pub local: std::net::SocketAddr,
    /// The peer; `None` until connected.
    pub remote: Option<std::net::SocketAddr>,
}

impl Network {
    /// The errno of a failed call.
    pub fn errno(&self) -> Option<i64> {
        (-4095..0).contains(&self.ret).then_some(-self.ret)
    }
}

/// What a file event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOp {
    Open,
    /// creat(2), or an open with `O_CREAT|O_EXCL` that succeeded (so created the file); an
    /// open with `O_CREAT` alone is [`FileOp::Open`]: whether it created the file is unknown.
    Create,
    Rename,
    Unlink,
    Chmod,
    Chown,
    Truncate,
}

impl FileOp {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Create => "create",
            Self::Rename => "rename",
            Self::Unlink => "unlink",
            Self::Chmod => "chmod",
            Self::Chown => "chown",
            Self::Truncate => "truncate",
        }
    }
}

/// A file syscall on a watched path (see `crate::files`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// The task at entry (`time_ns` is the time of entry).
    pub task: Task,
    pub op: FileOp,
    /// The syscall (`openat`, `renameat2`...).
    pub syscall: &'static str,
    /// The path as the process passed it, made absolute when it was relative.
    pub path: Vec<u8>,
    /// A path was longer than the kernel's copy.
    pub path_truncated: bool,
    /// rename's target.
    pub new_path: Option<Vec<u8>>,
    /// False when a relative path could not be made absolute (or a path was unreadable).
    pub path_resolved: bool,
    /// open's flags (`O_*`; not known for openat2, whose flags are behind a pointer).
    pub flags: Option<u64>,
    /// chmod's mode, or the mode of a creating open.
    pub mode: Option<u32>,
    /// chown's owner and group (`-1`: unchanged).
    pub uid: Option<i32>,
    pub gid: Option<i32>,
    /// Return value: negative is `-errno`; an open's fd.
    pub ret: i64,
    /// CLOCK_BOOTTIME nanoseconds at return.
    pub exit_time_ns: u64,
}

/// A TCP state change Vigil reports: a connection's close ([`NetworkOp::Close`]), or the
/// outcome of a connect ([`NetworkOp::Connect`]: from SYN_SENT to ESTABLISHED or CLOSE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpState {
    /// The socket's owner (the task that connected it) when `owner_known`; otherwise pid and
    /// tgid 0 (the change ran on behalf of no task Vigil can name).
    pub task: Task,
    pub owner_known: bool,
    pub op: NetworkOp,
    pub src: std::net::SocketAddr,
    pub dst: std::net::SocketAddr,
    /// Kernel TCP state numbers (`TCP_ESTABLISHED` = 1 ...).
    pub old_state: u32,
    pub new_state: u32,
}

/// A DNS query a task sent to port 53, with its question decoded from the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dns {
    pub task: Task,
    /// Over TCP (else UDP).
    pub tcp: bool,
    pub src: std::net::SocketAddr,
    /// The server.
    pub dst: std::net::SocketAddr,
    /// Length of the DNS payload in the packet.
    pub wire_len: u32,
    /// The payload was longer than the kernel's copy (only its start was decoded).
    pub payload_truncated: bool,
    /// The question, or why the payload is not a DNS message Vigil can read.
    pub question: Result<crate::network::DnsQuestion, crate::network::DnsMalformed>,
}

/// A kernel record after decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEvent {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
    Syscall(Syscall),
    Network(Network),
    TcpState(TcpState),
    File(File),
    Dns(Dns),
    CredChange(CredChange),
}

impl KernelEvent {
    pub fn task(&self) -> &Task {
        match self {
            Self::Exec(e) => &e.task,
            Self::Fork(e) => &e.task,
            Self::Exit(e) => &e.task,
            Self::Syscall(e) => &e.task,
            Self::Network(e) => &e.task,
            Self::TcpState(e) => &e.task,
            Self::File(e) => &e.task,
            Self::Dns(e) => &e.task,
            Self::CredChange(e) => &e.task,
        }
    }
}

/// Events lost before reaching the pipeline, by cause, since the previous report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    pub counts: Vec<(&'static str, u64)>,
}

impl Loss {
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

/// What an event is about, beyond its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
    Syscall(Syscall),
    Network(Network),
    TcpState(TcpState),
    File(File),
    Dns(Dns),
    CredChange(CredChange),
    Loss(Loss),
    /// A rule fired on the event before it (see `crate::policy::Finding`).
    Finding(Box<crate::policy::Finding>),
    /// A containment action was taken, by the kernel or the responder (see
    /// `crate::response::Enforcement`).
    Enforcement(Box<crate::response::Enforcement>),
}

impl Detail {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exec(_) => "exec",
            Self::Fork(_) => "fork",
            Self::Exit(_) => "exit",
            Self::Syscall(_) => "syscall",
            Self::Network(n) => n.op.name(),
            Self::TcpState(t) => t.op.name(),
            Self::File(_) => "file",
            Self::Dns(_) => "dns",
            Self::CredChange(_) => "cred_change",
            Self::Loss(_) => "loss",
            Self::Finding(_) => "finding",
            Self::Enforcement(_) => "enforcement",
        }
    }
}

/// An event as exporters see it: the detail plus its process and parent, resolved by the
/// process cache.
#[derive(Clone, Debug)]
pub struct Event {
    /// CLOCK_BOOTTIME nanoseconds when it happened.
    pub time_ns: u64,
    /// Thread id of the task (the process's tgid for loss events: 0).
    pub pid: u32,
    pub process: Option<Arc<Process>>,
    pub parent: Option<Arc<Process>>,
    /// Processes above the parent, nearest first (as many as `process.ancestors` asks).
    pub ancestors: Vec<Arc<Process>>,
    /// The container the task ran in, set by `enrich` (`None` outside containers).
    pub container: Option<Arc<Container>>,
    /// The Kubernetes pod of that container, when known.
    pub pod: Option<Arc<Pod>>,
    pub detail: Detail,
}

impl Event {
    pub fn new(
        time_ns: u64,
        pid: u32,
        process: Option<Arc<Process>>,
        parent: Option<Arc<Process>>,
        detail: Detail,
    ) -> Self {
        Self {
            time_ns,
            pid,
            process,
            parent,
            ancestors: Vec::new(),
            container: None,
            pod: None,
            detail,
        }
    }
}
