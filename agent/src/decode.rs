//! Ring-buffer bytes -> typed [`KernelEvent`]s, validated. Nothing past this module touches
//! wire structs.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use vigil_common::{
    cred::{CRED_NO_AMBIENT, CredChangeEvent, CredSnapshot},
    event::{EventKind, Header},
    network::{
        DNS_OVER_TCP, DNS_PAYLOAD_TRUNCATED, DnsEvent, TCP_STATE_OWNER_KNOWN, TCP_SYN_SENT,
        TcpStateEvent,
    },
    process::{
        ARGS_MAX, EXEC_ARGV_TRUNCATED, EXEC_ARGV_UNREADABLE, EXEC_CGROUP_TRUNCATED,
        EXEC_CWD_TRUNCATED, EXEC_EXE_PATH_TRUNCATED, EXEC_EXE_UNLINKED, EXEC_FILENAME_TRUNCATED,
        EXEC_NO_LOGINUID, EXIT_GROUP_DEAD, ExecEvent, ExitEvent, FORK_THREAD, ForkEvent,
    },
    syscall::{
        ARG_SOCKADDR, ARG_STR, SYSCALL_ARGS, SYSCALL_SOCKADDR_UNREADABLE, SYSCALL_SOCKET_INFO,
        SYSCALL_STRING_MAX, SYSCALL_STRING_TRUNCATED, SYSCALL_STRING_UNREADABLE,
        SYSCALL_STRINGS_DROPPED, SYSCALL_STRINGS_MAX, SocketInfo, SyscallEvent, arg_type,
    },
};

use crate::{
    event::{
        CredChange, Creds, Dns, Exec, Exit, Fork, KernelEvent, NetworkOp, Syscall, Task, TaskCreds,
        TcpState, WalkedPath,
    },
    files, network,
    process::{Image, ProcessKey},
    syscall::{Arch, decode_args},
};

pub mod encode;

/// `AF_INET` (the tracepoint's family for IPv4).
const AF_INET: u16 = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than {need} bytes needed for {what}")]
    Truncated {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("record has unknown kind {kind}")]
    UnknownKind { kind: u16 },
    #[error("{kind} record says it is {claimed} bytes but {len} bytes arrived")]
    SizeMismatch {
        kind: &'static str,
        claimed: usize,
        len: usize,
    },
    #[error("{kind} record's trailing sections need {need} bytes but only {len} arrived")]
    SectionsOverflow {
        kind: &'static str,
        need: usize,
        len: usize,
    },
}

impl DecodeError {
    /// Stable label for the `cause` of the decode-error counter.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::UnknownKind { .. } => "unknown_kind",
            Self::SizeMismatch { .. } => "size_mismatch",
            Self::SectionsOverflow { .. } => "sections_overflow",
        }
    }
}

/// Reads a plain-data wire struct from the front of `bytes`.
fn read_struct<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Truncated {
            what,
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: `bytes` holds at least `size_of::<T>()` bytes; callers only use the repr(C)
    // integer-only wire structs of vigil_common, valid for any bit pattern.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    let header: Header = read_struct(bytes, "header")?;
    let kind =
        EventKind::from_u16(header.kind).ok_or(DecodeError::UnknownKind { kind: header.kind })?;
    let claimed = header.size as usize;
    if claimed < kind.fixed_size() || claimed > bytes.len() {
        return Err(DecodeError::SizeMismatch {
            kind: kind.name(),
            claimed,
            len: bytes.len(),
        });
    }
    let bytes = &bytes[..claimed];
    match kind {
        EventKind::Exec => decode_exec(bytes).map(KernelEvent::Exec),
        EventKind::Fork => decode_fork(bytes).map(KernelEvent::Fork),
        EventKind::Exit => decode_exit(bytes).map(KernelEvent::Exit),
        EventKind::CredChange => decode_cred_change(bytes).map(KernelEvent::CredChange),
        EventKind::Syscall => decode_syscall(bytes),
        EventKind::TcpState => decode_tcp_state(bytes).map(KernelEvent::TcpState),
        EventKind::Dns => decode_dns(bytes).map(KernelEvent::Dns),
    }
}

fn task(header: &Header) -> Task {
    Task {
        pid: header.pid,
        key: ProcessKey::new(header.tgid, header.start_time_ns),
        cgroup_id: header.cgroup_id,
        time_ns: header.time_ns,
    }
}

fn decode_exec(bytes: &[u8]) -> Result<Exec, DecodeError> {
    let raw: ExecEvent = read_struct(bytes, "exec")?;
    let mut rest = &bytes[size_of::<ExecEvent>()..];
    let lens = [
        raw.filename_len,
        raw.argv_len,
        raw.exe_path_len,
        raw.cwd_len,
        raw.cgroup_len,
    ]
    .map(usize::from);
    let need: usize = lens.iter().sum();
    if need > rest.len() {
        return Err(DecodeError::SectionsOverflow {
            kind: "exec",
            need,
            len: rest.len(),
        });
    }
    let mut take = |len: usize| {
        let (section, tail) = rest.split_at(len);
        rest = tail;
        section
    };
    let [filename, argv, exe, cwd, cgroup] = lens.map(&mut take);
    let flag = |bit: u32| raw.flags & bit != 0;
    let (args, too_many) = split_args(argv);
    Ok(Exec {
        task: task(&raw.header),
        parent: ProcessKey::new(raw.ppid, raw.parent_start_time_ns),
        creds: Creds {
            uid: raw.uid,
            gid: raw.gid,
            euid: raw.euid,
            egid: raw.egid,
            loginuid: (!flag(EXEC_NO_LOGINUID) && raw.loginuid != u32::MAX).then_some(raw.loginuid),
        },
        filename: until_nul(filename).to_vec(),
        filename_truncated: flag(EXEC_FILENAME_TRUNCATED),
        args_unreadable: flag(EXEC_ARGV_UNREADABLE),
        image: Arc::new(Image {
            binary: WalkedPath {
                path: join_components(exe),
                truncated: flag(EXEC_EXE_PATH_TRUNCATED),
            },
            args,
            args_truncated: flag(EXEC_ARGV_TRUNCATED) || too_many,
            cwd: WalkedPath {
                path: join_components(cwd),
                truncated: flag(EXEC_CWD_TRUNCATED),
            },
            comm: until_nul(&raw.comm).to_vec(),
            cgroup_path: join_components(cgroup),
            json: Default::default(),
        }),
        cgroup_truncated: flag(EXEC_CGROUP_TRUNCATED),
        exe_inode: raw.exe_ino,
        exe_unlinked: flag(EXEC_EXE_UNLINKED),
        exe_dev: raw.exe_dev,
    })
}

fn decode_fork(bytes: &[u8]) -> Result<Fork, DecodeError> {
    let raw: ForkEvent = read_struct(bytes, "fork")?;
    Ok(Fork {
        task: task(&raw.header),
        parent: ProcessKey::new(raw.parent_tgid, raw.parent_start_time_ns),
        caller_pid: raw.parent_pid,
        thread: raw.flags & FORK_THREAD != 0,
    })
}

fn decode_exit(bytes: &[u8]) -> Result<Exit, DecodeError> {
    let raw: ExitEvent = read_struct(bytes, "exit")?;
    Ok(Exit {
        task: task(&raw.header),
        exit_code: raw.exit_code,
        group_dead: raw.flags & EXIT_GROUP_DEAD != 0,
    })
}

fn decode_cred_change(bytes: &[u8]) -> Result<CredChange, DecodeError> {
    let raw: CredChangeEvent = read_struct(bytes, "cred_change")?;
    let ambient = raw.flags & CRED_NO_AMBIENT == 0;
    let creds = |c: &CredSnapshot| TaskCreds {
        uid: c.uid,
        gid: c.gid,
        euid: c.euid,
        egid: c.egid,
        suid: c.suid,
        sgid: c.sgid,
        fsuid: c.fsuid,
        fsgid: c.fsgid,
        securebits: c.securebits,
        cap_inheritable: c.cap_inheritable,
        cap_permitted: c.cap_permitted,
        cap_effective: c.cap_effective,
        cap_bset: c.cap_bset,
        cap_ambient: ambient.then_some(c.cap_ambient),
    };
    Ok(CredChange {
        task: task(&raw.header),
        nr: raw.nr,
        syscall: Arch::NATIVE.name(raw.nr),
        ret: raw.ret,
        exit_time_ns: raw.exit_time_ns,
        before: creds(&raw.before),
        after: creds(&raw.after),
    })
}

/// A syscall record: a [`Syscall`], or a [`crate::event::Network`] or [`crate::event::File`]
/// for the network and file sensors'.
fn decode_syscall(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    let raw: SyscallEvent = read_struct(bytes, "syscall")?;
    let mut rest = &bytes[size_of::<SyscallEvent>()..];
    let info_len = if raw.flags & SYSCALL_SOCKET_INFO != 0 {
        size_of::<SocketInfo>()
    } else {
        0
    };
    let need: usize = raw.str_lens.iter().map(|&l| usize::from(l)).sum::<usize>()
        + usize::from(raw.addr_len)
        + info_len;
    if need > rest.len() {
        return Err(DecodeError::SectionsOverflow {
            kind: "syscall",
            need,
            len: rest.len(),
        });
    }
    // The kernel sets one truncation flag for the record; a string that filled its copy is
    // the one that was cut.
    let cut = raw.flags & SYSCALL_STRING_TRUNCATED != 0;
    let copied = (0..SYSCALL_ARGS)
        .filter(|&i| arg_type(raw.arg_types, i) == ARG_STR)
        .count()
        .min(SYSCALL_STRINGS_MAX);
    let unreadable = raw.flags & SYSCALL_STRING_UNREADABLE != 0;
    let strings: Vec<Option<(&[u8], bool)>> = raw.str_lens[..copied]
        .iter()
        .map(|&len| {
            let (section, tail) = rest.split_at(usize::from(len));
            rest = tail;
            // An empty string of a record with an unreadable one is taken to be that one.
            (!(unreadable && section.is_empty()))
                .then_some((section, cut && section.len() == SYSCALL_STRING_MAX - 1))
        })
        .collect();
    let arch = Arch::NATIVE;
    let name = arch.name(raw.nr);
    if let Some(op) = name.and_then(network::op) {
        let addr = (arg_type(raw.arg_types, 1) == ARG_SOCKADDR
            && raw.flags & SYSCALL_SOCKADDR_UNREADABLE == 0
            && raw.addr_len > 0)
            .then(|| &rest[..usize::from(raw.addr_len)]);
        let info = (info_len > 0)
            .then(|| read_struct::<SocketInfo>(&rest[usize::from(raw.addr_len)..], "socket"))
            .transpose()?;
        return Ok(KernelEvent::Network(network::from_syscall(
            task(&raw.header),
            op,
            &raw.args,
            addr,
            info,
            raw.ret,
            raw.exit_time_ns,
        )));
    }
    if let Some(file) = name.filter(|n| files::op(n).is_some()).and_then(|name| {
        files::from_syscall(
            task(&raw.header),
            name,
            &raw.args,
            &strings,
            raw.ret,
            raw.exit_time_ns,
        )
    }) {
        return Ok(KernelEvent::File(file));
    }
    Ok(KernelEvent::Syscall(Syscall {
        task: task(&raw.header),
        nr: raw.nr,
        name: arch.name(raw.nr),
        args: decode_args(arch, raw.nr, &raw.args, raw.arg_types, &strings),
        ret: raw.ret,
        exit_time_ns: raw.exit_time_ns,
        strings_dropped: raw.flags & SYSCALL_STRINGS_DROPPED != 0,
    }))
}

/// An address of a network record: IPv4 in the first four bytes for `AF_INET`, else IPv6.
fn ip_of(family: u16, addr: [u8; 16]) -> IpAddr {
    if family == AF_INET {
        Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).into()
    } else {
        Ipv6Addr::from(addr).into()
    }
}

fn decode_tcp_state(bytes: &[u8]) -> Result<TcpState, DecodeError> {
    let raw: TcpStateEvent = read_struct(bytes, "tcp_state")?;
    let ip = |addr| ip_of(raw.family, addr);
    Ok(TcpState {
        task: task(&raw.header),
        owner_known: raw.flags & TCP_STATE_OWNER_KNOWN != 0,
        op: if raw.old_state == TCP_SYN_SENT {
            NetworkOp::Connect
        } else {
            NetworkOp::Close
        },
        src: SocketAddr::new(ip(raw.saddr), raw.sport),
        dst: SocketAddr::new(ip(raw.daddr), raw.dport),
        old_state: raw.old_state,
        new_state: raw.new_state,
    })
}

/// A DNS packet: the addresses, and the question decoded from the payload (a payload that is
/// no DNS message is still an event, with the reason).
fn decode_dns(bytes: &[u8]) -> Result<Dns, DecodeError> {
    let raw: DnsEvent = read_struct(bytes, "dns")?;
    let payload = &bytes[size_of::<DnsEvent>()..];
    let len = usize::from(raw.payload_len);
    if len > payload.len() {
        return Err(DecodeError::SectionsOverflow {
            kind: "dns",
            need: len,
            len: payload.len(),
        });
    }
    let tcp = raw.flags & DNS_OVER_TCP != 0;
    let ip = |addr| ip_of(raw.family, addr);
    Ok(Dns {
        task: task(&raw.header),
        tcp,
        src: SocketAddr::new(ip(raw.saddr), raw.sport),
        dst: SocketAddr::new(ip(raw.daddr), raw.dport),
        wire_len: raw.wire_len,
        payload_truncated: raw.flags & DNS_PAYLOAD_TRUNCATED != 0,
        question: network::parse_dns(&payload[..len], tcp),
    })
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

/// Splits the argv area (NUL-terminated strings; the last one may be cut by truncation) into
/// at most [`ARGS_MAX`] arguments. Empty arguments are kept: `""` is a real argument.
/// Returns the arguments and whether some were dropped for exceeding the count.
pub fn split_args(area: &[u8]) -> (Vec<Vec<u8>>, bool) {
    if area.is_empty() {
        return (Vec::new(), false);
    }
    let area = area.strip_suffix(&[0]).unwrap_or(area);
    let mut args = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(0, area).chain(std::iter::once(area.len())) {
        if args.len() == ARGS_MAX {
            return (args, true);
        }
        args.push(area[start..end].to_vec());
        start = end + 1;
    }
    (args, false)
}

/// Turns walked components (leaf first, each NUL-terminated) into an absolute path.
pub fn join_components(section: &[u8]) -> Vec<u8> {
    let section = section.strip_suffix(&[0]).unwrap_or(section);
    if section.is_empty() {
        return b"/".to_vec();
    }
    let mut path = Vec::with_capacity(section.len() + 1);
    let mut end = section.len();
    for nul in memchr::memrchr_iter(0, section) {
        path.push(b'/');
        path.extend_from_slice(&section[nul + 1..end]);
        end = nul;
    }
    path.push(b'/');
    path.extend_from_slice(&section[..end]);
    path
}

#[cfg(test)]
mod tests;
