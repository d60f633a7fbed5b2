//! Syscalls: raw tracepoints `sys_enter` and `sys_exit` (Linux 4.17+), which run on every
//! syscall of the node, so the first thing both do is test the syscall number against the
//! filter bitmap; a syscall nobody asked for costs one array lookup (and at exit one read of
//! the saved number). A selected syscall's arguments (and its user strings, copied before the
//! kernel can act on them) are stashed per thread at enter and emitted with the return value
//! at exit as one [`SyscallEvent`]. Capture only: an internal error loses the event (counted),
//! never the syscall.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_ktime_get_boot_ns, generated::bpf_probe_read_user_str,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use vigil_common::{
    event::EventKind,
    stats::KernelCounter,
    syscall::{
        ARG_STR, SYSCALL_NR_MAX, SYSCALL_STRING_MAX, SYSCALL_STRING_TRUNCATED,
        SYSCALL_STRING_UNREADABLE, SYSCALL_STRINGS_DROPPED, SYSCALL_STRINGS_MASK,
        SYSCALL_STRINGS_MAX, SyscallEvent, arg_type,
    },
};

use crate::{
    emit::{KindCounters, output},
    helpers::{kread::read_at, task},
    maps::{
        SYSCALL_ARG_TYPES, SYSCALL_CGROUPS, SYSCALL_FILTER, SYSCALL_SCRATCH, SYSCALL_STASH, config,
        count, offset,
    },
};

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

/// `raw_tp/sys_enter(regs, id)`: stashes the arguments of a selected syscall.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn syscall_enter(ctx: RawTracePointContext) -> i32 {
    let nr: u64 = ctx.arg(1);
    if !selected(nr) {
        return 0;
    }
    enter(&ctx, nr as u32);
    0
}

#[inline(always)]
fn enter(ctx: &RawTracePointContext, nr: u32) {
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
    let Some(record) = SYSCALL_SCRATCH.get_ptr_mut(0) else {
        count(KernelCounter::ScratchUnavailable);
        return;
    };
    let regs: *const u8 = ctx.arg(0);
    let types = SYSCALL_ARG_TYPES.get(nr).copied().unwrap_or(0);
    // SAFETY: helper without arguments; the task is only read through probe reads.
    let current = unsafe { bpf_get_current_task() } as *const u8;
    let args = [
        read_at::<u64>(regs, offset!(regs_arg0)),
        read_at::<u64>(regs, offset!(regs_arg1)),
        read_at::<u64>(regs, offset!(regs_arg2)),
        read_at::<u64>(regs, offset!(regs_arg3)),
        read_at::<u64>(regs, offset!(regs_arg4)),
        read_at::<u64>(regs, offset!(regs_arg5)),
    ];
    // SAFETY: `record` points at this CPU's scratch entry, which only this program uses and
    // which stays valid for the program's run.
    let strings = unsafe { (&raw mut (*record).strings).cast::<u8>() };
    let mut flags = 0;
    let mut lens = [0u16; SYSCALL_STRINGS_MAX];
    let mut pos = 0usize;
    let mut k = 0usize;
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
        pos += len;
        k += 1;
    }
    let mut header = task::header(EventKind::Syscall, 0, task::ids(current));
    header.size = (size_of::<SyscallEvent>() + pos) as u32;
    let event = SyscallEvent {
        header,
        nr,
        flags,
        args,
        ret: 0,
        exit_time_ns: 0,
        arg_types: types,
        str_lens: lens,
        _pad: [0; 3],
    };
    // SAFETY: as above; the fixed part is written in place, the strings were copied before.
    unsafe { (&raw mut (*record).event).write(event) };
    // SAFETY: `record` is a valid map value for the duration of the call; the helper copies it.
    if SYSCALL_STASH.insert(key, unsafe { &*record }, 0).is_err() {
        count(KernelCounter::SyscallStashFull);
    }
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

/// `raw_tp/sys_exit(regs, ret)`: emits the stashed syscall with its return value.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn syscall_exit(ctx: RawTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    // The number saved at entry (orig_ax / syscallno); 32 bits is syscallno's width.
    let nr = read_at::<i32>(regs, offset!(regs_syscall_nr));
    if !selected(nr as i64 as u64) {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    exit(ret);
    0
}

#[inline(always)]
fn exit(ret: i64) {
    let key = bpf_get_current_pid_tgid();
    let Some(record) = SYSCALL_STASH.get_ptr_mut(key) else {
        // Filtered out at enter (cgroup), lost at enter (counted), or attached mid-syscall.
        return;
    };
    // SAFETY: `record` is this thread's stash entry; only this thread writes it, and it is
    // deleted only below.
    let event = unsafe { &mut (*record).event };
    event.ret = ret;
    // SAFETY: helper without arguments.
    event.exit_time_ns = unsafe { bpf_ktime_get_boot_ns() };
    let strings = (event.header.size as usize).wrapping_sub(size_of::<SyscallEvent>());
    let size = size_of::<SyscallEvent>() + (strings & SYSCALL_STRINGS_MASK);
    // SAFETY: `size <= size_of::<SyscallEvent>() + SYSCALL_STRINGS_MASK`, within the entry.
    let bytes = unsafe { core::slice::from_raw_parts(record.cast::<u8>(), size) };
    output(SYSCALL, bytes);
    let _ = SYSCALL_STASH.remove(key);
}
