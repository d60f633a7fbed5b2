//! Syscalls: raw tracepoints `sys_enter` and `sys_exit` (Linux 4.17+), which run on every
//! syscall of the node, so the first thing both do is test the syscall number against the
//! filter bitmap; a syscall nobody asked for costs one array lookup (and at exit one read of
//! the saved number). A selected syscall's arguments (and its user strings, copied before the
//! kernel can act on them) are stashed per thread at enter and emitted with the return value
//! at exit as one [`SyscallEvent`]. Capture only: an internal error loses the event (counted),
//! never the syscall.
//!
//! The network syscalls (connect, bind, accept, accept4, listen) ride on the same hooks: their
//! socket address argument ([`ARG_SOCKADDR`]) is copied after the strings, at enter when the
//! caller supplies it (connect, bind), at exit when the kernel writes it (accept's peer).
//!
//! So do the file syscalls (open, rename, unlink, chmod...): their word has
//! [`ARG_TYPES_PATH_FILTER`], and right after their paths are copied at enter they are
//! compared with the watch prefixes; a syscall none of whose paths is watched is not stashed.
//!
//! And the credential sensor ([`super::cred`]): a word with [`ARG_TYPES_CRED`] has the
//! thread's credentials stashed at enter and compared at exit. With [`ARG_TYPES_NO_RECORD`]
//! (the syscall sensor did not select the syscall) that is all the hooks do for it.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns,
        bpf_probe_read_user,
        generated::{bpf_probe_read_user as probe_read_user_raw, bpf_probe_read_user_str},
    },
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use vigil_common::{
    event::EventKind,
    stats::KernelCounter,
    syscall::{
        ARG_INT, ARG_PTR, ARG_SOCKADDR, ARG_STR, ARG_TYPES_CRED, ARG_TYPES_KEEP_RELATIVE,
        ARG_TYPES_NO_RECORD, ARG_TYPES_OPEN_HOW, ARG_TYPES_PATH_FILTER, ARG_TYPES_SOCKET,
        FILE_PREFIX_INDEX_AT, FILE_PREFIX_WORDS, FILE_PREFIXES_MAX, FilePrefix, SOCKADDR_MAX,
        SYSCALL_NR_MAX, SYSCALL_SOCKADDR_UNREADABLE, SYSCALL_SOCKET_INFO, SYSCALL_STRING_MAX,
        SYSCALL_STRING_TRUNCATED, SYSCALL_STRING_UNREADABLE, SYSCALL_STRINGS_DROPPED,
        SYSCALL_STRINGS_MASK, SYSCALL_STRINGS_MAX, SocketInfo, SyscallEvent, arg_type,
    },
};

use super::{cred, network};
use crate::{
    emit::{KindCounters, output},
    helpers::{
        kread::{Direct, Kernel, Probe},
        socket::socket_info,
        stash::{HashStash, Stash, TaskStash},
        task,
    },
    maps::{
        FILE_PREFIX_INDEX, FILE_PREFIXES, SYSCALL_ARG_TYPES, SYSCALL_CGROUPS, SYSCALL_FILTER,
        config, offset,
    },
};

/// A non-blocking connect still under way (`-EINPROGRESS`): its socket has its ports.
const EINPROGRESS: i64 = 115;

const SYSCALL: KindCounters = KindCounters {
    submitted: KernelCounter::SubmittedSyscall,
    full: KernelCounter::RingbufFullSyscall,
};

/// Whether syscall `nr` is selected. Numbers outside the table (including -1 for a syscall
/// a tracer cancelled, and the ia32 compat numbers' overlap is accepted) are not.
#[inline(always)]
fn selected(nr: u64) -> bool {
    if nr >= SYSCALL_NR_MAX as u64 {
        return false;
    }
    match SYSCALL_FILTER.get((nr / 64) as u32) {
        Some(word) => word & (1u64 << (nr % 64)) != 0,
        None => false,
    }
}

/// `tp_btf/sys_enter(regs, id)`: stashes the arguments of a selected syscall. `regs` is a
/// BTF-typed pointer, so the argument registers are plain loads, as are the task's ids
/// (through `bpf_get_current_task_btf`, Linux 5.11+).
#[btf_tracepoint(function = "sys_enter")]
pub fn syscall_enter(ctx: BtfTracePointContext) -> i32 {
    enter_hook::<Direct, TaskStash>(ctx.arg(0), ctx.arg(1))
}

/// [`syscall_enter`] as a raw tracepoint, every kernel read a helper call: the fallback where
/// `tp_btf` or `bpf_get_current_task_btf` is refused.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn syscall_enter_raw(ctx: RawTracePointContext) -> i32 {
    enter_hook::<Probe, HashStash>(ctx.arg(0), ctx.arg(1))
}

#[inline(always)]
fn enter_hook<K: Kernel, S: Stash>(regs: *const u8, nr: u64) -> i32 {
    if !selected(nr) {
        return 0;
    }
    enter::<K, S>(regs, nr as u32);
    0
}

#[inline(always)]
fn enter<K: Kernel, S: Stash>(regs: *const u8, nr: u32) {
    let key = bpf_get_current_pid_tgid();
    if (key >> 32) as u32 == config!(syscall_ignore_tgid) {
        return;
    }
    if config!(syscall_cgroup_filter) != 0 {
        // SAFETY: helper without arguments.
        let cgroup = unsafe { bpf_get_current_cgroup_id() };
        if SYSCALL_CGROUPS.get_ptr(cgroup).is_none() {
            return;
        }
    }
    let types = SYSCALL_ARG_TYPES.get(nr).copied().unwrap_or(0);
    if types & ARG_TYPES_CRED != 0 {
        cred::enter(key, nr, types, regs);
    }
    if types & ARG_TYPES_NO_RECORD != 0 {
        return;
    }
    let Some(record) = S::slot(key) else {
        return;
    };
    let mut args = syscall_args::<K>(regs);
    if types & ARG_TYPES_OPEN_HOW != 0 {
        // openat2's `how->flags` and `how->mode`, which are behind a pointer (0 if unreadable).
        let how = args[2] as *const [u64; 2];
        // SAFETY: a user address; the helper fails rather than faulting.
        let [flags, mode] = unsafe { bpf_probe_read_user(how) }.unwrap_or([0; 2]);
        (args[4], args[5]) = (flags, mode);
    }
    // SAFETY: `record` is this CPU's scratch entry or this thread's stash entry, which only
    // this program run writes and which stays valid for it.
    let strings = unsafe { (&raw mut (*record).strings).cast::<u8>() };
    let mut flags = 0;
    let mut lens = [0u16; SYSCALL_STRINGS_MAX];
    let mut pos = 0usize;
    let mut k = 0usize;
    let mut starts = [0usize; SYSCALL_STRINGS_MAX];
    for (i, &arg) in args.iter().enumerate() {
        if arg_type(types, i) != ARG_STR {
            continue;
        }
        if k >= SYSCALL_STRINGS_MAX {
            flags |= SYSCALL_STRINGS_DROPPED;
            break;
        }
        let (len, string_flags) = read_string(strings, pos, arg);
        flags |= string_flags;
        lens[k] = len as u16;
        starts[k] = pos;
        pos += len;
        k += 1;
    }
    if types & ARG_TYPES_PATH_FILTER != 0 {
        let mut watched = false;
        for j in 0..SYSCALL_STRINGS_MAX {
            if j < k && lens[j] > 0 && path_watched::<K>(strings, starts[j], types) {
                watched = true;
                break;
            }
        }
        if !watched {
            // Not an event (no path of this file syscall is watched), so not counted either.
            return;
        }
    }
    let mut addr_len = 0;
    // connect/bind: the address the caller passes, copied before the kernel acts on it.
    if arg_type(types, 1) == ARG_SOCKADDR && arg_type(types, 2) == ARG_INT {
        let (len, addr_flags) = read_sockaddr(strings, pos, args[1], args[2]);
        flags |= addr_flags;
        addr_len = len;
    }
    let current = K::current_task();
    let ids = task::ids::<K>(current);
    let size = size_of::<SyscallEvent>() + pos + addr_len;
    let event = SyscallEvent {
        header: task::stamp(
            EventKind::Syscall,
            size,
            ids,
            task::current_cgroup_id::<K>(current),
        ),
        nr,
        flags,
        args,
        ret: 0,
        exit_time_ns: 0,
        arg_types: types,
        str_lens: lens,
        addr_len: addr_len as u16,
        _pad: [0; 2],
    };
    // SAFETY: as above; the fixed part is written in place, the strings were copied before.
    unsafe { (&raw mut (*record).event).write(event) };
    let kept = S::keep(key, record);
    if kept
        && types & ARG_TYPES_SOCKET != 0
        && arg_type(types, 1) == ARG_SOCKADDR
        && arg_type(types, 2) == ARG_INT
    {
        // connect (or bind): the TCP state program asks whether its owner is inside it.
        network::connect_enter(key);
    }
}

/// The six argument registers of `regs`, read the `K` way.
#[inline(always)]
fn syscall_args<K: Kernel>(regs: *const u8) -> [u64; 6] {
    K::words(
        regs,
        [
            offset!(regs_arg0),
            offset!(regs_arg1),
            offset!(regs_arg2),
            offset!(regs_arg3),
            offset!(regs_arg4),
            offset!(regs_arg5),
        ],
    )
}

/// Whether the path copied at `strings[pos..]` starts with a watch prefix (or is relative,
/// when `types` asks to keep those).
///
/// The `tp_btf` program compares only the prefixes the path's second and sixth bytes select
/// ([`watched_indexed`]); its raw twin, the fallback, compares every prefix branch-free
/// ([`watched_every`]), which older verifiers need: with branches, Linux 6.1 gave up on
/// `syscall_enter_raw` after 1,000,000 instructions (kernel matrix, 1 December 2026).
#[inline(always)]
fn path_watched<K: Kernel>(strings: *const u8, pos: usize, types: u32) -> bool {
    let at = pos & SYSCALL_STRINGS_MASK;
    // SAFETY: `at + FILE_PREFIX_LEN <= SYSCALL_STRINGS_AREA`, the size of `strings`.
    let path = unsafe { strings.add(at) };
    // SAFETY: as above; a path of at least one byte was copied.
    if unsafe { *path } != b'/' {
        return types & ARG_TYPES_KEEP_RELATIVE != 0;
    }
    // Bytes past the path's NUL are stale but never decide a match: the NUL differs from every
    // prefix byte, so a shorter path fails on the word holding its NUL.
    if K::PLAIN_LOADS {
        watched_indexed(path, at.is_multiple_of(8))
    } else {
        watched_every(path)
    }
}

/// [`path_watched`] for the `tp_btf` program: the index gives the candidate prefixes (those
/// that share the path's second and sixth bytes: for most paths none or one of the list), and
/// each is compared word by word until a word differs.
/// `aligned`: `path` is at a multiple of 8 in the record (the first string always is), so
/// its words are single loads rather than eight byte loads each.
#[inline(always)]
fn watched_indexed(path: *const u8, aligned: bool) -> bool {
    // SAFETY: within the first word of the area at `path` (see `path_watched`). A byte past
    // the path's NUL is stale, and can only drop prefixes longer than the path.
    let [first, second] = FILE_PREFIX_INDEX_AT.map(|at| unsafe { *path.add(at) });
    // The second byte's table follows the first's 256 entries.
    let (Some(&by_first), Some(&by_second)) = (
        FILE_PREFIX_INDEX.get(u32::from(first)),
        FILE_PREFIX_INDEX.get(256 + u32::from(second)),
    ) else {
        return false;
    };
    let mut candidates = by_first & by_second;
    for _ in 0..FILE_PREFIXES_MAX {
        if candidates == 0 {
            return false;
        }
        let lowest = candidates & candidates.wrapping_neg();
        candidates ^= lowest;
        // The lowest set bit's index, branch-free (BPF has no count-trailing-zeros).
        let Some(prefix) = FILE_PREFIXES.get((lowest - 1).count_ones()) else {
            return false;
        };
        if prefix_matches(path, aligned, prefix) {
            return true;
        }
    }
    false
}

/// Whether the path at `path` starts with `prefix`: its words up to the first zero mask.
#[inline(always)]
fn prefix_matches(path: *const u8, aligned: bool, prefix: &FilePrefix) -> bool {
    if prefix.masks[0] == 0 {
        // An empty entry, which the index never names.
        return false;
    }
    for w in 0..FILE_PREFIX_WORDS {
        let mask = prefix.masks[w];
        if mask == 0 {
            return true;
        }
        // SAFETY: `8 * w + 8 <= FILE_PREFIX_LEN`, within the area (see `path_watched`); an
        // aligned `path` is at a multiple of 8 from the 8-aligned string area.
        let word = unsafe {
            let at = path.add(8 * w).cast::<u64>();
            if aligned {
                at.read()
            } else {
                at.read_unaligned()
            }
        };
        if (word ^ prefix.words[w]) & mask != 0 {
            return false;
        }
    }
    true
}

/// [`path_watched`] for the raw twin: the path's first words read once, then every prefix
/// compared branch-free (a zero mask compares nothing), which keeps the verifier's work
/// linear in the number of prefixes.
#[inline(always)]
fn watched_every(path: *const u8) -> bool {
    let mut words = [0u64; FILE_PREFIX_WORDS];
    for (w, word) in words.iter_mut().enumerate() {
        // SAFETY: `8 * w + 8 <= FILE_PREFIX_LEN`, within the area (see `path_watched`).
        *word = unsafe { core::ptr::read_unaligned(path.add(8 * w).cast::<u64>()) };
    }
    for p in 0..FILE_PREFIXES_MAX {
        let Some(prefix) = FILE_PREFIXES.get(p) else {
            return false;
        };
        if prefix.masks[0] == 0 {
            return false;
        }
        let mut diff = 0u64;
        for ((word, want), mask) in words.iter().zip(&prefix.words).zip(&prefix.masks) {
            diff |= (word ^ want) & mask;
        }
        if diff == 0 {
            return true;
        }
    }
    false
}

/// Copies the user string at `src` to `strings[pos..]`; returns its length without the NUL
/// and `SYSCALL_STRING_*` flags. A result of `SYSCALL_STRING_MAX - 1` bytes may have been cut.
#[inline(always)]
fn read_string(strings: *mut u8, pos: usize, src: u64) -> (usize, u32) {
    let at = pos & SYSCALL_STRINGS_MASK;
    // SAFETY: `at + SYSCALL_STRING_MAX <= SYSCALL_STRINGS_AREA`, the size of `strings`; the
    // helper checks the user address and fails rather than faulting.
    let n = unsafe {
        bpf_probe_read_user_str(
            strings.wrapping_add(at).cast(),
            SYSCALL_STRING_MAX as u32,
            src as *const _,
        )
    };
    if n <= 0 {
        return (0, SYSCALL_STRING_UNREADABLE);
    }
    let len = (n as usize - 1) & (SYSCALL_STRING_MAX - 1);
    let flags = if n as usize >= SYSCALL_STRING_MAX {
        SYSCALL_STRING_TRUNCATED
    } else {
        0
    };
    (len, flags)
}

/// Copies at most [`SOCKADDR_MAX`] bytes of the user socket address at `src` (`len` bytes
/// long) to `area[pos..]`; returns the bytes copied and `SYSCALL_SOCKADDR_*` flags.
#[inline(always)]
fn read_sockaddr(area: *mut u8, pos: usize, src: u64, len: u64) -> (usize, u32) {
    if src == 0 || len == 0 {
        return (0, 0);
    }
    let len = if len > SOCKADDR_MAX as u64 {
        SOCKADDR_MAX as u64
    } else {
        len
    };
    // The mask changes nothing after the clamp; it is there for the verifier.
    let len = (len as usize) & (2 * SOCKADDR_MAX - 1);
    let at = pos & SYSCALL_STRINGS_MASK;
    // SAFETY: `at + 2 * SOCKADDR_MAX <= SYSCALL_STRINGS_AREA`, the size of `area`; the helper
    // checks the user address and fails rather than faulting.
    let ret =
        unsafe { probe_read_user_raw(area.wrapping_add(at).cast(), len as u32, src as *const _) };
    if ret != 0 {
        return (0, SYSCALL_SOCKADDR_UNREADABLE);
    }
    (len, 0)
}

/// `tp_btf/sys_exit(regs, ret)`: emits the stashed syscall with its return value. The
/// syscall's number, which every exit reads, is a plain load.
#[btf_tracepoint(function = "sys_exit")]
pub fn syscall_exit(ctx: BtfTracePointContext) -> i32 {
    exit_hook::<Direct, TaskStash>(ctx.arg(0), ctx.arg(1))
}

/// [`syscall_exit`] as a raw tracepoint (see [`syscall_enter_raw`]).
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn syscall_exit_raw(ctx: RawTracePointContext) -> i32 {
    exit_hook::<Probe, HashStash>(ctx.arg(0), ctx.arg(1))
}

#[inline(always)]
fn exit_hook<K: Kernel, S: Stash>(regs: *const u8, ret: i64) -> i32 {
    // The number saved at entry (orig_ax / syscallno); 32 bits is syscallno's width.
    let nr = K::at::<i32>(regs, offset!(regs_syscall_nr));
    if !selected(nr as i64 as u64) {
        return 0;
    }
    exit::<K, S>(nr as u32, ret);
    0
}

#[inline(always)]
fn exit<K: Kernel, S: Stash>(nr: u32, ret: i64) {
    let key = bpf_get_current_pid_tgid();
    // One more array lookup (inlined by the verifier) for selected syscalls only.
    let types = SYSCALL_ARG_TYPES.get(nr).copied().unwrap_or(0);
    if types & ARG_TYPES_CRED != 0 {
        cred::exit(key, ret);
    }
    if types & ARG_TYPES_NO_RECORD != 0 {
        return;
    }
    let Some(record) = S::pending(key) else {
        // Filtered out at enter (cgroup, path), lost at enter (counted), or attached
        // mid-syscall.
        return;
    };
    // SAFETY: `record` is this thread's stash entry; only this thread writes it, and it is
    // released only below.
    let event = unsafe { &mut (*record).event };
    event.ret = ret;
    // SAFETY: helper without arguments.
    event.exit_time_ns = unsafe { bpf_ktime_get_boot_ns() };
    let mut strings = (event.header.size as usize).wrapping_sub(size_of::<SyscallEvent>());
    // accept/accept4: the peer address the kernel wrote, `*addrlen` bytes of it.
    if ret >= 0
        && arg_type(event.arg_types, 1) == ARG_SOCKADDR
        && arg_type(event.arg_types, 2) == ARG_PTR
        && event.args[2] != 0
    {
        // SAFETY: a user address; the helper fails rather than faulting.
        let len = unsafe { bpf_probe_read_user(event.args[2] as *const u32) };
        // SAFETY: the entry's string area; `read_sockaddr` keeps within it.
        let area = unsafe { (&raw mut (*record).strings).cast::<u8>() };
        let (len, flags) = match len {
            Ok(len) => read_sockaddr(area, strings, event.args[1], u64::from(len)),
            Err(_) => (0, SYSCALL_SOCKADDR_UNREADABLE),
        };
        event.flags |= flags;
        event.addr_len = len as u16;
        strings += len;
        event.header.size = (size_of::<SyscallEvent>() + strings) as u32;
    }
    // The network syscalls: the socket's own addresses (a bound or picked port, the local
    // address of a connect) once the syscall has acted; a connect in progress has them too.
    if types & ARG_TYPES_SOCKET != 0 && (ret >= 0 || ret == -EINPROGRESS) {
        let accept = arg_type(types, 1) == ARG_SOCKADDR && arg_type(types, 2) == ARG_PTR;
        let fd = if accept {
            ret
        } else {
            i64::from(event.args[0] as i32)
        };
        if let Some(info) = socket_info::<K>(fd) {
            // SAFETY: the entry's string area, at a masked offset with room for the info
            // (`SYSCALL_STRINGS_MASK + size_of::<SocketInfo>() <= SYSCALL_STRINGS_AREA`).
            unsafe {
                let area = (&raw mut (*record).strings).cast::<u8>();
                area.add(strings & SYSCALL_STRINGS_MASK)
                    .cast::<SocketInfo>()
                    .write_unaligned(info);
            }
            event.flags |= SYSCALL_SOCKET_INFO;
            strings += size_of::<SocketInfo>();
            event.header.size = (size_of::<SyscallEvent>() + strings) as u32;
        }
    }
    let size = size_of::<SyscallEvent>() + (strings & SYSCALL_STRINGS_MASK);
    // SAFETY: `size <= size_of::<SyscallEvent>() + SYSCALL_STRINGS_MASK`, within the entry.
    let bytes = unsafe { core::slice::from_raw_parts(record.cast::<u8>(), size) };
    output(SYSCALL, bytes);
    S::release(key, record);
    if types & ARG_TYPES_SOCKET != 0
        && arg_type(types, 1) == ARG_SOCKADDR
        && arg_type(types, 2) == ARG_INT
    {
        // connect (bind has no outcome waiting): an outcome decided inside it follows the
        // `in_progress` record, or is dropped when the syscall's result already says it.
        network::connect_exit(key, ret == -EINPROGRESS);
    }
}
