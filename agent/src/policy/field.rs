//! Event fields as rules name them (the JSON names of `vigil run`'s output), and how each is
//! read from an [`Event`] without allocating.

use std::net::{IpAddr, SocketAddr};

use super::kind::KindSet;
use crate::{
    event::{Detail, Event, NetworkOp},
    network::{Sockaddr, UnixAddr},
    process::Process,
    syscall::ArgValue,
};

/// A field of a process (`process.*`, `parent.*`, `ancestors.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessField {
    Binary,
    Args,
    Cwd,
    Comm,
    Uid,
    Gid,
    Euid,
    Egid,
    Loginuid,
    Pid,
    Tgid,
    Ppid,
    Cgroup,
    ExecId,
}

const PROCESS_FIELDS: &[(&str, ProcessField)] = &[
    ("binary", ProcessField::Binary),
    ("args", ProcessField::Args),
    ("cwd", ProcessField::Cwd),
    ("comm", ProcessField::Comm),
    ("uid", ProcessField::Uid),
    ("gid", ProcessField::Gid),
    ("euid", ProcessField::Euid),
    ("egid", ProcessField::Egid),
    ("loginuid", ProcessField::Loginuid),
    ("pid", ProcessField::Pid),
    ("tgid", ProcessField::Tgid),
    ("ppid", ProcessField::Ppid),
    ("cgroup", ProcessField::Cgroup),
    ("exec_id", ProcessField::ExecId),
];

/// A field a condition reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Kind,
    Node,
    Process(ProcessField),
    Parent(ProcessField),
    /// Any ancestor: the parent, then the processes above it that the event carries.
    Ancestors(ProcessField),
    ContainerId,
    ContainerName,
    ContainerImage,
    ContainerImageDigest,
    ContainerRuntime,
    PodName,
    PodNamespace,
    PodUid,
    PodLabel(Box<str>),
    ExecFilename,
    ExecInode,
    ExecDeleted,
    ExecMemfd,
    NetworkFamily,
    NetworkProtocol,
    NetworkSrcIp,
    NetworkSrcPort,
    NetworkDstIp,
    NetworkDstPort,
    NetworkPath,
    FilePath,
    FileNewPath,
    FileOp,
    FileFlags,
    FileMode,
    FileSyscall,
    FileRet,
    SyscallName,
    SyscallArg(Box<str>),
    SyscallRet,
    DnsName,
    DnsType,
}

/// How a field's values compare (which operators apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Str,
    Int,
    Ip,
    Bool,
    /// Open flags, compared by flag name.
    Flags,
    /// A syscall argument: its type is known per event (number, string or named value).
    Arg,
}

impl Type {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Str => "a string",
            Self::Int => "a number",
            Self::Ip => "an IP address",
            Self::Bool => "a boolean",
            Self::Flags => "a set of open flags",
            Self::Arg => "a syscall argument",
        }
    }
}

/// One value of a field in one event.
#[derive(Clone, Copy, Debug)]
pub enum Value<'e> {
    Str(&'e [u8]),
    Int(i128),
    Ip(IpAddr),
    Bool(bool),
    Flags(u64),
    Arg(&'e ArgValue),
}

/// Every field name (with `<key>` / `<name>` for the open-ended ones), for messages and docs.
pub const FIELD_NAMES: &[&str] = &[
    "kind",
    "node",
    "process.{binary,args,cwd,comm,uid,gid,euid,egid,loginuid,pid,tgid,ppid,cgroup,exec_id}",
    "parent.<same as process>",
    "ancestors.<same as process>",
    "container.{id,name,image,image_digest,runtime}",
    "pod.{name,namespace,uid}",
    "pod.labels.<key>",
    "exec.{filename,inode,deleted,memfd}",
    "network.{family,protocol,src_ip,src_port,dst_ip,dst_port,path}",
    "file.{path,new_path,op,flags,mode,syscall,ret}",
    "syscall.{name,ret}",
    "syscall.args.<name>",
    "dns.{name,type}",
];

const NETWORK_KINDS: &[&str] = &["connect", "accept", "bind", "listen", "close", "dns"];

impl Field {
    /// The field named `path`; `None` when there is no such field.
    pub fn parse(path: &str) -> Option<Self> {
        if let Some(rest) = path.strip_prefix("pod.labels.") {
            return (!rest.is_empty()).then(|| Self::PodLabel(rest.into()));
        }
        if let Some(rest) = path.strip_prefix("syscall.args.") {
            return (!rest.is_empty()).then(|| Self::SyscallArg(rest.into()));
        }
        let (head, tail) = path.split_once('.').unwrap_or((path, ""));
        let process = |tail: &str| {
            PROCESS_FIELDS
                .iter()
                .find(|(n, _)| *n == tail)
                .map(|(_, f)| *f)
        };
        Some(match (head, tail) {
            ("kind", "") => Self::Kind,
            ("node", "") => Self::Node,
            ("process", t) => Self::Process(process(t)?),
            ("parent", t) => Self::Parent(process(t)?),
            ("ancestors", t) => Self::Ancestors(process(t)?),
            ("container", "id") => Self::ContainerId,
            ("container", "name") => Self::ContainerName,
            ("container", "image") => Self::ContainerImage,
            ("container", "image_digest") => Self::ContainerImageDigest,
            ("container", "runtime") => Self::ContainerRuntime,
            ("pod", "name") => Self::PodName,
            ("pod", "namespace") => Self::PodNamespace,
            ("pod", "uid") => Self::PodUid,
            ("exec", "filename") => Self::ExecFilename,
            ("exec", "inode") => Self::ExecInode,
            ("exec", "deleted") => Self::ExecDeleted,
            ("exec", "memfd") => Self::ExecMemfd,
            ("network", "family") => Self::NetworkFamily,
            ("network", "protocol") => Self::NetworkProtocol,
            ("network", "src_ip") => Self::NetworkSrcIp,
            ("network", "src_port") => Self::NetworkSrcPort,
            ("network", "dst_ip") => Self::NetworkDstIp,
            ("network", "dst_port") => Self::NetworkDstPort,
            ("network", "path") => Self::NetworkPath,
            ("file", "path") => Self::FilePath,
            ("file", "new_path") => Self::FileNewPath,
            ("file", "op") => Self::FileOp,
            ("file", "flags") => Self::FileFlags,
            ("file", "mode") => Self::FileMode,
            ("file", "syscall") => Self::FileSyscall,
            ("file", "ret") => Self::FileRet,
            ("syscall", "name") => Self::SyscallName,
            ("syscall", "ret") => Self::SyscallRet,
            ("dns", "name") => Self::DnsName,
            ("dns", "type") => Self::DnsType,
            _ => return None,
        })
    }

    pub fn value_type(&self) -> Type {
        use ProcessField as P;
        match self {
            Self::Process(p) | Self::Parent(p) | Self::Ancestors(p) => match p {
                P::Binary | P::Args | P::Cwd | P::Comm | P::Cgroup | P::ExecId => Type::Str,
                P::Uid | P::Gid | P::Euid | P::Egid | P::Loginuid | P::Pid | P::Tgid | P::Ppid => {
                    Type::Int
                }
            },
            Self::ExecInode
            | Self::NetworkSrcPort
            | Self::NetworkDstPort
            | Self::FileMode
            | Self::FileRet
            | Self::SyscallRet => Type::Int,
            Self::ExecDeleted | Self::ExecMemfd => Type::Bool,
            Self::NetworkSrcIp | Self::NetworkDstIp => Type::Ip,
            Self::FileFlags => Type::Flags,
            Self::SyscallArg(_) => Type::Arg,
            _ => Type::Str,
        }
    }

    /// The kinds of event that can carry this field.
    pub fn kinds(&self) -> KindSet {
        let not_loss = KindSet(KindSet::ALL.0 & !KindSet::of(&["loss"]).0);
        match self {
            Self::Kind | Self::Node => KindSet::ALL,
            Self::ExecFilename | Self::ExecInode | Self::ExecDeleted | Self::ExecMemfd => {
                KindSet::of(&["exec"])
            }
            Self::NetworkFamily
            | Self::NetworkProtocol
            | Self::NetworkSrcIp
            | Self::NetworkSrcPort
            | Self::NetworkDstIp
            | Self::NetworkDstPort
            | Self::NetworkPath => KindSet::of(NETWORK_KINDS),
            Self::FilePath
            | Self::FileNewPath
            | Self::FileOp
            | Self::FileFlags
            | Self::FileMode
            | Self::FileSyscall
            | Self::FileRet => KindSet::of(&["file"]),
            Self::SyscallName | Self::SyscallArg(_) | Self::SyscallRet => KindSet::of(&["syscall"]),
            Self::DnsName | Self::DnsType => KindSet::of(&["dns"]),
            _ => not_loss,
        }
    }

    /// Whether `test` holds for at least one value of this field in `event` (false when the
    /// field is absent). `node` is the name of this node.
    pub fn any(&self, event: &Event, node: &str, mut test: impl FnMut(Value<'_>) -> bool) -> bool {
        match self {
            Self::Kind => test(Value::Str(event.detail.kind().as_bytes())),
            Self::Node => test(Value::Str(node.as_bytes())),
            Self::Process(f) => event
                .process
                .as_deref()
                .is_some_and(|p| process_any(p, *f, Some(event.pid), &mut test)),
            Self::Parent(f) => event
                .parent
                .as_deref()
                .is_some_and(|p| process_any(p, *f, None, &mut test)),
            Self::Ancestors(f) => event
                .parent
                .iter()
                .chain(event.ancestors.iter())
                .any(|p| process_any(p, *f, None, &mut test)),
            Self::ContainerId => event
                .container
                .as_deref()
                .is_some_and(|c| test(Value::Str(c.id.0.as_bytes()))),
            Self::ContainerName => opt(
                event.container.as_deref().and_then(|c| c.name.as_deref()),
                test,
            ),
            Self::ContainerImage => opt(
                event.container.as_deref().and_then(|c| c.image.as_deref()),
                test,
            ),
            Self::ContainerImageDigest => opt(
                event
                    .container
                    .as_deref()
                    .and_then(|c| c.image_digest.as_deref()),
                test,
            ),
            Self::ContainerRuntime => event
                .container
                .as_deref()
                .is_some_and(|c| test(Value::Str(c.runtime.as_str().as_bytes()))),
            Self::PodName => opt(event.pod.as_deref().and_then(|p| p.name.as_deref()), test),
            Self::PodNamespace => opt(
                event.pod.as_deref().and_then(|p| p.namespace.as_deref()),
                test,
            ),
            Self::PodUid => opt(event.pod.as_deref().and_then(|p| p.uid.as_deref()), test),
            Self::PodLabel(key) => opt(
                event
                    .pod
                    .as_deref()
                    .and_then(|p| p.labels.get(&**key))
                    .map(String::as_str),
                test,
            ),
            Self::ExecFilename | Self::ExecInode | Self::ExecDeleted | Self::ExecMemfd => {
                let Detail::Exec(exec) = &event.detail else {
                    return false;
                };
                test(match self {
                    Self::ExecFilename => Value::Str(&exec.filename),
                    Self::ExecInode => Value::Int(exec.exe_inode.into()),
                    Self::ExecDeleted => Value::Bool(exec.exe_unlinked),
                    // As the JSON output tells it: memfd files live on the kernel's internal
                    // shm mount as `memfd:<name>`.
                    _ => Value::Bool(
                        exec.exe_unlinked && exec.image.binary.path.starts_with(b"/memfd:"),
                    ),
                })
            }
            Self::NetworkFamily
            | Self::NetworkProtocol
            | Self::NetworkSrcIp
            | Self::NetworkSrcPort
            | Self::NetworkDstIp
            | Self::NetworkDstPort
            | Self::NetworkPath => network_any(self, &event.detail, test),
            Self::FilePath
            | Self::FileNewPath
            | Self::FileOp
            | Self::FileFlags
            | Self::FileMode
            | Self::FileSyscall
            | Self::FileRet => {
                let Detail::File(file) = &event.detail else {
                    return false;
                };
                match self {
                    Self::FilePath => test(Value::Str(&file.path)),
                    Self::FileNewPath => file
                        .new_path
                        .as_deref()
                        .is_some_and(|p| test(Value::Str(p))),
                    Self::FileOp => test(Value::Str(file.op.name().as_bytes())),
                    Self::FileFlags => file.flags.is_some_and(|f| test(Value::Flags(f))),
                    Self::FileMode => file.mode.is_some_and(|m| test(Value::Int(m.into()))),
                    Self::FileSyscall => test(Value::Str(file.syscall.as_bytes())),
                    _ => test(Value::Int(file.ret.into())),
                }
            }
            Self::SyscallName | Self::SyscallArg(_) | Self::SyscallRet => {
                let Detail::Syscall(call) = &event.detail else {
                    return false;
                };
                match self {
                    Self::SyscallName => {
                        test(Value::Str(call.name.unwrap_or("unknown").as_bytes()))
                    }
                    Self::SyscallArg(name) => call.arg(name).is_some_and(|v| test(Value::Arg(v))),
                    _ => test(Value::Int(call.ret.into())),
                }
            }
            Self::DnsName | Self::DnsType => dns_any(self, &event.detail, test),
        }
    }
}

fn opt(value: Option<&str>, mut test: impl FnMut(Value<'_>) -> bool) -> bool {
    value.is_some_and(|v| test(Value::Str(v.as_bytes())))
}

fn process_any(
    p: &Process,
    field: ProcessField,
    thread: Option<u32>,
    test: &mut impl FnMut(Value<'_>) -> bool,
) -> bool {
    use ProcessField as P;
    let int = |n: u32| Value::Int(n.into());
    match field {
        P::Binary => test(Value::Str(&p.binary.path)),
        P::Args => p.args.iter().any(|a| test(Value::Str(a))),
        P::Cwd => test(Value::Str(&p.cwd.path)),
        P::Comm => test(Value::Str(&p.comm)),
        P::Uid => test(int(p.creds.uid)),
        P::Gid => test(int(p.creds.gid)),
        P::Euid => test(int(p.creds.euid)),
        P::Egid => test(int(p.creds.egid)),
        P::Loginuid => p.creds.loginuid.is_some_and(|id| test(int(id))),
        // As in the JSON: the thread for the event's process, the process for the others.
        P::Pid => test(int(thread.unwrap_or(p.key.tgid))),
        P::Tgid => test(int(p.key.tgid)),
        P::Ppid => test(int(p.ppid)),
        P::Cgroup => !p.cgroup_path.is_empty() && test(Value::Str(&p.cgroup_path)),
        P::ExecId => test(Value::Str(p.exec_id.as_str().as_bytes())),
    }
}

/// Network fields as the JSON names them: the remote end is `dst_*` (connect's target,
/// accept's peer, a DNS server), a bound address `src_*`.
fn network_any(field: &Field, detail: &Detail, test: impl FnMut(Value<'_>) -> bool) -> bool {
    let endpoints = |src: SocketAddr, dst: SocketAddr| match field {
        Field::NetworkSrcIp => Some(Value::Ip(src.ip())),
        Field::NetworkSrcPort => Some(Value::Int(src.port().into())),
        Field::NetworkDstIp => Some(Value::Ip(dst.ip())),
        Field::NetworkDstPort => Some(Value::Int(dst.port().into())),
        Field::NetworkFamily => Some(Value::Str(if dst.is_ipv4() { b"inet" } else { b"inet6" })),
        _ => None,
    };
    let value = match detail {
        Detail::Network(n) => {
            let Some(Ok(addr)) = &n.addr else {
                return false;
            };
            let local = n.op == NetworkOp::Bind;
            let (ip, port) = match addr {
                Sockaddr::Inet { ip, port } => (Some(IpAddr::V4(*ip)), Some(*port)),
                Sockaddr::Inet6 { ip, port } => (Some(IpAddr::V6(*ip)), Some(*port)),
                _ => (None, None),
            };
            match field {
                Field::NetworkFamily => Some(Value::Str(match addr {
                    Sockaddr::Inet { .. } => b"inet".as_slice(),
                    Sockaddr::Inet6 { .. } => b"inet6",
                    Sockaddr::Unix(_) => b"unix",
                    Sockaddr::Other { .. } => b"other",
                })),
                Field::NetworkPath => match addr {
                    Sockaddr::Unix(UnixAddr::Path(path)) => Some(Value::Str(path)),
                    // Abstract names are `@name` in the JSON; rules match them with `@`.
                    Sockaddr::Unix(UnixAddr::Abstract(_)) => return unix_abstract(addr, test),
                    _ => None,
                },
                Field::NetworkSrcIp if local => ip.map(Value::Ip),
                Field::NetworkSrcPort if local => port.map(|p| Value::Int(p.into())),
                Field::NetworkDstIp if !local => ip.map(Value::Ip),
                Field::NetworkDstPort if !local => port.map(|p| Value::Int(p.into())),
                _ => None,
            }
        }
        Detail::TcpState(t) => match field {
            Field::NetworkProtocol => Some(Value::Str(b"tcp")),
            _ => endpoints(t.src, t.dst),
        },
        Detail::Dns(d) => match field {
            Field::NetworkProtocol => Some(Value::Str(if d.tcp { b"tcp" } else { b"udp" })),
            _ => endpoints(d.src, d.dst),
        },
        _ => None,
    };
    value.is_some_and(test)
}

/// An abstract unix name, matched as the JSON writes it: `@name` (built on the stack).
fn unix_abstract(addr: &Sockaddr, mut test: impl FnMut(Value<'_>) -> bool) -> bool {
    let Sockaddr::Unix(UnixAddr::Abstract(name)) = addr else {
        return false;
    };
    let mut buf = [0u8; 128];
    let Some(slot) = buf.get_mut(1..=name.len()) else {
        return false;
    };
    slot.copy_from_slice(name);
    buf[0] = b'@';
    test(Value::Str(&buf[..=name.len()]))
}

fn dns_any(field: &Field, detail: &Detail, mut test: impl FnMut(Value<'_>) -> bool) -> bool {
    let Detail::Dns(dns) = detail else {
        return false;
    };
    let Ok(question) = &dns.question else {
        return false;
    };
    match field {
        // Without the trailing dot of presentation format: `example.com`.
        Field::DnsName => {
            let name = question.name.strip_suffix('.').unwrap_or(&question.name);
            test(Value::Str(name.as_bytes()))
        }
        _ => test(Value::Str(question.qtype.as_bytes())),
    }
}
