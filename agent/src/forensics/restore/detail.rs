//! Each kind's detail back from its message. What a message does not carry is set from the
//! event (exit times: the entry time) or left neutral, as each function says; none of it is
//! read by rules.

use hickory_proto::rr::RecordType;

use super::{RestoreError, invalid, missing, record, text};
use crate::{
    api::proto::{self, event::Detail as Pd},
    event::{
        CredChange, Detail, Dns, Exec, Exit, File, FileOp, Fork, Network, NetworkOp, SocketEnds,
        Syscall, Task, TaskCreds, TcpState,
    },
    network::DnsQuestion,
    process::{Process, ProcessKey},
    syscall::{Arch, ArgValue},
};

pub(super) fn detail(
    message: &proto::Event,
    task: &Task,
    process: Option<&Process>,
    parent: Option<&Process>,
) -> Result<Detail, RestoreError> {
    let Some(detail) = &message.detail else {
        return Err(missing("detail"));
    };
    // The parent's key as the kernel record had it: the parent message's, else its tgid.
    let parent_key = || match (parent, process) {
        (Some(parent), _) => parent.key,
        (None, Some(process)) => ProcessKey::new(process.ppid, 0),
        (None, None) => ProcessKey::new(0, 0),
    };
    let within = |at: &'static str| move |e: RestoreError| e.within(at);
    Ok(match detail {
        Pd::Exec(e) => {
            let process = process.ok_or_else(|| missing("process"))?;
            Detail::Exec(exec(e, task, process, parent_key()).map_err(within("exec"))?)
        }
        Pd::Exit(e) => Detail::Exit(exit(e, task).map_err(within("exit"))?),
        Pd::Fork(f) => Detail::Fork(Fork {
            task: task.clone(),
            parent: parent_key(),
            caller_pid: f.caller_pid,
            thread: f.thread,
        }),
        Pd::Network(n) => network(n, task, process.is_some()).map_err(within("network"))?,
        Pd::Dns(d) => Detail::Dns(dns(d, task).map_err(within("dns"))?),
        Pd::File(f) => Detail::File(file(f, task).map_err(within("file"))?),
        Pd::Syscall(s) => Detail::Syscall(syscall(s, task).map_err(within("syscall"))?),
        Pd::CredChange(c) => {
            Detail::CredChange(cred_change(c, task).map_err(within("cred_change"))?)
        }
        Pd::Finding(f) => Detail::Finding(Box::new(record::finding(f).map_err(within("finding"))?)),
        Pd::Enforcement(e) => Detail::Enforcement(Box::new(
            record::enforcement(e).map_err(within("enforcement"))?,
        )),
        Pd::Loss(l) => Detail::Loss(record::loss(l).map_err(within("loss"))?),
    })
}

/// The image, argv, cwd, creds and cgroup are the process's (the message has them once).
fn exec(
    e: &proto::Exec,
    task: &Task,
    process: &Process,
    parent: ProcessKey,
) -> Result<Exec, RestoreError> {
    // As the rules and `convert` tell it: a memfd is a deleted file under `/memfd:`.
    let memfd = e.deleted && process.binary.path.starts_with(b"/memfd:");
    if e.memfd != memfd {
        return Err(invalid(
            "memfd",
            e.memfd,
            "what `exec.deleted` and `process.binary` say (a deleted `/memfd:` file)",
        ));
    }
    Ok(Exec {
        task: task.clone(),
        parent,
        creds: process.creds,
        filename: text::bytes(&e.filename, "filename")?,
        filename_truncated: e.filename_truncated,
        args_unreadable: e.args_unreadable,
        image: process.image.clone(),
        cgroup_truncated: false,
        exe_inode: e.inode,
        exe_unlinked: e.deleted,
        exe_dev: dev(&e.dev)?,
    })
}

/// `major:minor` -> the kernel's `dev_t` (major << 20 | minor).
fn dev(text: &str) -> Result<u32, RestoreError> {
    let parsed = text.split_once(':').and_then(|(major, minor)| {
        let major: u32 = major.parse().ok().filter(|&m| m < 1 << 12)?;
        let minor: u32 = minor.parse().ok().filter(|&m| m < 1 << 20)?;
        Some(major << 20 | minor)
    });
    parsed.ok_or_else(|| invalid("dev", text, "a device number (`major:minor`)"))
}

/// The raw `exit_code` the status, signal and core flag were read from.
fn exit(e: &proto::Exit, task: &Task) -> Result<Exit, RestoreError> {
    let core = if e.core_dumped { 0x80 } else { 0 };
    let exit_code = match (e.exit_code, e.signal) {
        (Some(status), None) if status <= 0xff => status << 8 | core,
        (Some(status), None) => return Err(invalid("exit_code", status, "an exit status (0-255)")),
        (None, Some(signal)) if (1..0x80).contains(&signal) => signal | core,
        (None, Some(signal)) => return Err(invalid("signal", signal, "a signal number (1-127)")),
        (Some(_), Some(signal)) => {
            return Err(invalid("signal", signal, "absent (the exit has a status)"));
        }
        (None, None) => return Err(missing("exit_code")),
    };
    Ok(Exit {
        task: task.clone(),
        exit_code,
        group_dead: e.group_dead,
    })
}

const NETWORK_OPS: [NetworkOp; 5] = [
    NetworkOp::Connect,
    NetworkOp::Accept,
    NetworkOp::Bind,
    NetworkOp::Listen,
    NetworkOp::Close,
];

/// A network syscall, or a TCP state change (`tcp_state`). Not carried: the syscall's exit
/// time (the entry's), a state change's state numbers (0).
fn network(n: &proto::Network, task: &Task, owned: bool) -> Result<Detail, RestoreError> {
    let op = NETWORK_OPS
        .into_iter()
        .find(|op| op.name() == n.op)
        .ok_or_else(|| invalid("op", &n.op, "connect, accept, bind, listen or close"))?;
    if n.tcp_state {
        if !matches!(op, NetworkOp::Connect | NetworkOp::Close) {
            return Err(invalid(
                "op",
                &n.op,
                "connect or close (a TCP state change)",
            ));
        }
        return Ok(Detail::TcpState(TcpState {
            task: task.clone(),
            owner_known: owned,
            op,
            src: text::socket_addr(&n.local, "local")?,
            dst: text::socket_addr(&n.remote, "remote")?,
            old_state: 0,
            new_state: 0,
        }));
    }
    let socket = match n.local.as_str() {
        "" => None,
        local => Some(SocketEnds {
            protocol: u16::try_from(n.protocol)
                .map_err(|_| invalid("protocol", n.protocol, "an IP protocol number"))?,
            local: text::socket_addr(local, "local")?,
            remote: match n.remote.as_str() {
                "" => None,
                remote => Some(text::socket_addr(remote, "remote")?),
            },
        }),
    };
    Ok(Detail::Network(Network {
        task: task.clone(),
        op,
        fd: n.fd,
        addr: text::sockaddr(&n.address_type, &n.address)?,
        backlog: n.backlog,
        socket,
        ret: n.ret,
        exit_time_ns: task.time_ns,
    }))
}

/// Not carried: the payload's length and truncation, and of the question its opcode
/// (empty), QR bit (false) and count of questions (1); the type's number is read from its
/// name.
fn dns(d: &proto::Dns, task: &Task) -> Result<Dns, RestoreError> {
    let question = if d.malformed.is_empty() {
        if d.name.is_empty() {
            return Err(missing("name"));
        }
        Ok(DnsQuestion {
            id: u16::try_from(d.id).map_err(|_| invalid("id", d.id, "a DNS message id"))?,
            response: false,
            opcode: String::new(),
            name: d.name.clone(),
            qtype: d.qtype.clone(),
            qtype_code: qtype_code(&d.qtype),
            qclass: d.qclass.clone(),
            questions: 1,
        })
    } else {
        Err(text::dns_malformed(&d.malformed)?)
    };
    Ok(Dns {
        task: task.clone(),
        tcp: d.tcp,
        src: text::socket_addr(&d.src, "src")?,
        dst: text::socket_addr(&d.dst, "dst")?,
        wire_len: 0,
        payload_truncated: false,
        question,
    })
}

/// The number of a type as `crate::network::parse_dns` names it (`A`, `TYPE65534`).
fn qtype_code(name: &str) -> u16 {
    match name.strip_prefix("TYPE").and_then(|n| n.parse().ok()) {
        Some(code) => code,
        None => name.parse::<RecordType>().map_or(0, u16::from),
    }
}

const FILE_OPS: [FileOp; 7] = [
    FileOp::Open,
    FileOp::Create,
    FileOp::Rename,
    FileOp::Unlink,
    FileOp::Chmod,
    FileOp::Chown,
    FileOp::Truncate,
];

/// Not carried: chown's owner and group (`None`), whether a path was cut or left relative
/// (no, and resolved), the exit time (the entry's).
fn file(f: &proto::File, task: &Task) -> Result<File, RestoreError> {
    let op = FILE_OPS
        .into_iter()
        .find(|op| op.name() == f.op)
        .ok_or_else(|| {
            invalid(
                "op",
                &f.op,
                "open, create, rename, unlink, chmod, chown or truncate",
            )
        })?;
    Ok(File {
        task: task.clone(),
        op,
        syscall: text::syscall_name(&f.syscall, "syscall")?,
        path: text::bytes(&f.path, "path")?,
        path_truncated: false,
        new_path: match f.new_path.as_str() {
            "" => None,
            path => Some(text::bytes(path, "new_path")?),
        },
        path_resolved: true,
        flags: f.flags,
        mode: f.mode,
        uid: None,
        gid: None,
        ret: f.ret,
        exit_time_ns: task.time_ns,
    })
}

/// Arguments from `typed_args` (the text map is for people). Not carried: whether string
/// arguments were dropped (no), the exit time (the entry's).
fn syscall(s: &proto::Syscall, task: &Task) -> Result<Syscall, RestoreError> {
    let name = match s.name.as_str() {
        "" => None,
        name => Some(text::syscall_name(name, "name")?),
    };
    if s.typed_args.is_empty() && !s.args.is_empty() {
        return Err(missing("typed_args"));
    }
    // Arguments are named as the decoder named them: by the spec of the call, or `arg0`...
    let spec = crate::syscall::args::spec(name.unwrap_or_default());
    let mut args = Vec::with_capacity(s.typed_args.len());
    for (i, a) in s.typed_args.iter().enumerate() {
        args.push(arg(a, spec).map_err(|e| e.within(&format!("typed_args[{i}]")))?);
    }
    Ok(Syscall {
        task: task.clone(),
        nr: s.nr,
        name,
        args,
        ret: s.ret,
        exit_time_ns: task.time_ns,
        strings_dropped: false,
    })
}

fn arg(
    a: &proto::SyscallArg,
    spec: crate::syscall::args::Spec,
) -> Result<(&'static str, ArgValue), RestoreError> {
    let name = text::one_of(
        &a.name,
        spec.iter().map(|(n, _)| *n),
        "name",
        "an argument of the syscall",
    )?;
    let value = match a.kind.as_str() {
        "int" => ArgValue::Int(a.int),
        "uint" => ArgValue::Uint(a.raw),
        "hex" => ArgValue::Hex(a.raw),
        "unread" => ArgValue::Unread(a.raw),
        "str" => ArgValue::Str {
            bytes: text::bytes(&a.text, "text")?,
            truncated: a.truncated,
        },
        "named" => ArgValue::Named {
            raw: a.raw,
            names: a.text.clone(),
        },
        other => {
            return Err(invalid(
                "kind",
                other,
                "int, uint, hex, str, unread or named",
            ));
        }
    };
    Ok((name, value))
}

/// Not carried: the syscall's number (this machine's for its name, else 0), saved and fs
/// ids, securebits, inheritable, bounding and ambient capabilities (0, ambient `None`).
fn cred_change(c: &proto::CredChange, task: &Task) -> Result<CredChange, RestoreError> {
    let syscall = match c.syscall.as_str() {
        "" => None,
        name => Some(text::syscall_name(name, "syscall")?),
    };
    let creds = |creds: Option<&proto::Creds>, field| {
        let c = creds.ok_or_else(|| missing(field))?;
        Ok::<_, RestoreError>(TaskCreds {
            uid: c.uid,
            gid: c.gid,
            euid: c.euid,
            egid: c.egid,
            cap_effective: c.cap_effective,
            cap_permitted: c.cap_permitted,
            ..TaskCreds::default()
        })
    };
    Ok(CredChange {
        task: task.clone(),
        nr: syscall
            .and_then(|name| Arch::NATIVE.number(name))
            .unwrap_or(0),
        syscall,
        ret: c.ret,
        exit_time_ns: task.time_ns,
        before: creds(c.before.as_ref(), "before")?,
        after: creds(c.after.as_ref(), "after")?,
    })
}
