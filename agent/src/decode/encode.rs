//! The inverse of decoding: wire records built in userspace, for pipeline tests, fuzzing and
//! replay benchmarks that feed the real pipeline without a kernel.

use vigil_common::{
    event::{EventKind, Header},
    process::{EXIT_GROUP_DEAD, ExecEvent, ExitEvent, FORK_THREAD, ForkEvent},
    syscall::{SYSCALL_ARGS, SYSCALL_STRINGS_MAX, SyscallEvent},
};

/// Bytes of a plain-data wire struct.
fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    let mut out = vec![0u8; size_of::<T>()];
    // SAFETY: `out` has exactly `size_of::<T>()` bytes; `T` is a repr(C) integer-only wire
    // struct, so every byte of it is initialized.
    unsafe { out.as_mut_ptr().cast::<T>().write_unaligned(*value) };
    out
}

/// Header fields a test chooses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ids {
    pub time_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub start_time_ns: u64,
    pub cgroup_id: u64,
}

impl Ids {
    /// The group leader of `key` (pid = tgid), in cgroup 1, at `time_ns`.
    pub fn leader(key: crate::process::ProcessKey, time_ns: u64) -> Self {
        Self {
            time_ns,
            pid: key.tgid,
            tgid: key.tgid,
            start_time_ns: key.start_time_ns,
            cgroup_id: 1,
        }
    }
}

fn header(kind: EventKind, size: usize, ids: Ids) -> Header {
    Header {
        kind: kind as u16,
        _pad: 0,
        size: size as u32,
        time_ns: ids.time_ns,
        pid: ids.pid,
        tgid: ids.tgid,
        start_time_ns: ids.start_time_ns,
        cgroup_id: ids.cgroup_id,
    }
}

/// Path components leaf first, each NUL-terminated, as the kernel walk writes them.
pub fn path_section(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for component in path.split(|&b| b == b'/').filter(|c| !c.is_empty()).rev() {
        out.extend_from_slice(component);
        out.push(0);
    }
    out
}

/// What goes in an exec record besides the header.
#[derive(Clone, Debug, Default)]
pub struct ExecSpec<'a> {
    pub ids: Ids,
    pub ppid: u32,
    pub parent_start_time_ns: u64,
    pub uid: u32,
    pub flags: u32,
    pub comm: &'a [u8],
    pub filename: &'a [u8],
    pub args: &'a [&'a [u8]],
    pub binary: &'a [u8],
    pub cwd: &'a [u8],
    pub cgroup: &'a [u8],
}

pub fn exec(spec: &ExecSpec<'_>) -> Vec<u8> {
    let argv: Vec<u8> = spec
        .args
        .iter()
        .flat_map(|a| a.iter().copied().chain([0]))
        .collect();
    let exe = path_section(spec.binary);
    let cwd = path_section(spec.cwd);
    let cgroup = path_section(spec.cgroup);
    let mut comm = [0u8; 16];
    let n = spec.comm.len().min(15);
    comm[..n].copy_from_slice(&spec.comm[..n]);
    let size = size_of::<ExecEvent>()
        + spec.filename.len()
        + argv.len()
        + exe.len()
        + cwd.len()
        + cgroup.len();
    let raw = ExecEvent {
        header: header(EventKind::Exec, size, spec.ids),
        ppid: spec.ppid,
        uid: spec.uid,
        gid: spec.uid,
        euid: spec.uid,
        egid: spec.uid,
        loginuid: u32::MAX,
        parent_start_time_ns: spec.parent_start_time_ns,
        exe_ino: 42,
        exe_dev: (8 << 20) | 1,
        flags: spec.flags,
        comm,
        filename_len: spec.filename.len() as u16,
        argv_len: argv.len() as u16,
        exe_path_len: exe.len() as u16,
        cwd_len: cwd.len() as u16,
        cgroup_len: cgroup.len() as u16,
        _pad: [0; 6],
    };
    let mut out = bytes_of(&raw);
    for section in [spec.filename, &argv, &exe, &cwd, &cgroup] {
        out.extend_from_slice(section);
    }
    out
}

pub fn fork(ids: Ids, parent_tgid: u32, parent_start_time_ns: u64, thread: bool) -> Vec<u8> {
    bytes_of(&ForkEvent {
        header: header(EventKind::Fork, size_of::<ForkEvent>(), ids),
        parent_pid: parent_tgid,
        parent_tgid,
        parent_start_time_ns,
        flags: if thread { FORK_THREAD } else { 0 },
        _pad: 0,
    })
}

pub fn exit(ids: Ids, exit_code: u32, group_dead: bool) -> Vec<u8> {
    bytes_of(&ExitEvent {
        header: header(EventKind::Exit, size_of::<ExitEvent>(), ids),
        exit_code,
        flags: if group_dead { EXIT_GROUP_DEAD } else { 0 },
    })
}

/// A credential-change record of syscall `nr` returning `ret` (`flags`: `CRED_*`).
pub fn cred_change(
    ids: Ids,
    nr: u32,
    ret: i64,
    before: vigil_common::cred::CredSnapshot,
    after: vigil_common::cred::CredSnapshot,
    flags: u32,
) -> Vec<u8> {
    use vigil_common::cred::CredChangeEvent;
    bytes_of(&CredChangeEvent {
        header: header(EventKind::CredChange, size_of::<CredChangeEvent>(), ids),
        nr,
        flags,
        ret,
        exit_time_ns: ids.time_ns + 1_500,
        before,
        after,
    })
}

/// What goes in a syscall record besides the header.
#[derive(Clone, Debug, Default)]
pub struct SyscallSpec<'a> {
    pub ids: Ids,
    pub nr: u32,
    pub args: [u64; SYSCALL_ARGS],
    pub ret: i64,
    pub exit_time_ns: u64,
    /// The kernel's arg-type word (which arguments are strings).
    pub arg_types: u32,
    pub flags: u32,
    /// The copied strings, in argument order (at most `SYSCALL_STRINGS_MAX`).
    pub strings: &'a [&'a [u8]],
    /// The copied socket address (empty: none).
    pub addr: &'a [u8],
}

pub fn syscall(spec: &SyscallSpec<'_>) -> Vec<u8> {
    let mut str_lens = [0u16; SYSCALL_STRINGS_MAX];
    for (len, s) in str_lens.iter_mut().zip(spec.strings) {
        *len = s.len() as u16;
    }
    let tail: Vec<u8> = spec
        .strings
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    let raw = SyscallEvent {
        header: header(
            EventKind::Syscall,
            size_of::<SyscallEvent>() + tail.len() + spec.addr.len(),
            spec.ids,
        ),
        nr: spec.nr,
        flags: spec.flags,
        args: spec.args,
        ret: spec.ret,
        exit_time_ns: spec.exit_time_ns,
        arg_types: spec.arg_types,
        str_lens,
        addr_len: spec.addr.len() as u16,
        _pad: [0; 2],
    };
    let mut out = bytes_of(&raw);
    out.extend_from_slice(&tail);
    out.extend_from_slice(spec.addr);
    out
}

/// A TCP state record (`saddr`/`daddr` as the kernel fills them: IPv4 in the first 4 bytes).
pub fn tcp_state(ids: Ids, old_state: u32, new_state: u32, family: u16, flags: u32) -> Vec<u8> {
    let mut saddr = [0u8; 16];
    let mut daddr = [0u8; 16];
    saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    daddr[..4].copy_from_slice(&[127, 0, 0, 2]);
    bytes_of(&vigil_common::network::TcpStateEvent {
        header: header(
            EventKind::TcpState,
            size_of::<vigil_common::network::TcpStateEvent>(),
            ids,
        ),
        old_state,
        new_state,
        family,
        sport: 40000,
        dport: 8080,
        protocol: 6,
        flags,
        _pad: 0,
        saddr,
        daddr,
    })
}

/// A DNS record: an IPv4 packet from 127.0.0.1:`sport` to `server`:53 carrying `payload`
/// (`flags`: `DNS_*`).
pub fn dns(ids: Ids, server: [u8; 4], sport: u16, payload: &[u8], flags: u16) -> Vec<u8> {
    use vigil_common::network::DnsEvent;
    let mut saddr = [0u8; 16];
    let mut daddr = [0u8; 16];
    saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    daddr[..4].copy_from_slice(&server);
    let mut out = bytes_of(&DnsEvent {
        header: header(EventKind::Dns, size_of::<DnsEvent>() + payload.len(), ids),
        family: 2,
        protocol: if flags & vigil_common::network::DNS_OVER_TCP != 0 {
            6
        } else {
            17
        },
        sport,
        dport: vigil_common::network::DNS_PORT,
        payload_len: payload.len() as u16,
        flags,
        wire_len: payload.len() as u32,
        saddr,
        daddr,
    });
    out.extend_from_slice(payload);
    out
}
