//! Process lifecycle: exec, fork, exit, from BTF-typed tracepoints (`tp_btf`, Linux 5.5+; no
//! kprobes, no BTF trampolines needed). Their arguments are BTF-typed kernel pointers, so
//! most kernel reads are plain loads the verifier makes fault-safe ([`Direct`]) instead of a
//! `bpf_probe_read_kernel` call each; the path walks that cross mounts (`container_of`) still
//! use the helper. Capture only: these programs never block anything, so an internal error
//! loses a field (counted), never the node.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use vigil_common::{
    event::EventKind,
    offsets::OFFSET_MISSING,
    process::{
        ARGV_MAX, EXEC_ARGV_TRUNCATED, EXEC_ARGV_UNREADABLE, EXEC_CGROUP_TRUNCATED,
        EXEC_CWD_TRUNCATED, EXEC_EXE_PATH_TRUNCATED, EXEC_EXE_UNLINKED, EXEC_FILENAME_TRUNCATED,
        EXEC_NO_LOGINUID, EXIT_GROUP_DEAD, ExecEvent, ExitEvent, FILENAME_MAX, FORK_THREAD,
        ForkEvent,
    },
    stats::KernelCounter,
};

use crate::{
    emit::{KindCounters, output, reserve_submit},
    helpers::{
        kread::{Direct, Kernel, Probe},
        opaque::opaque,
        path,
        task::{self, TaskIds},
    },
    maps::{
        GROUP_EXITS, SCRATCH, SCRATCH_CURSOR, SCRATCH_MASK, SCRATCH_SIZE, config, count, offset,
    },
};

/// `put!(event.field, value)` writes a field of the exec record being assembled in map
/// memory. Volatile, so that the compiler does not keep the value in a register or on the
/// stack until the end: there the verifier would carry each finished section's length and
/// flags along and tell otherwise equal states apart by them (see `helpers::opaque`).
macro_rules! put {
    ($event:ident . $($field:ident).+, $value:expr $(,)?) => {{
        let value = $value;
        // SAFETY: `$event` is the record at the start of this CPU's scratch value (8-byte
        // aligned, far larger than an ExecEvent).
        unsafe { (&raw mut (*$event).$($field).+).write_volatile(value) }
    }};
}

const EXEC: KindCounters = KindCounters {
    submitted: KernelCounter::SubmittedExec,
    full: KernelCounter::RingbufFullExec,
};
const FORK: KindCounters = KindCounters {
    submitted: KernelCounter::SubmittedFork,
    full: KernelCounter::RingbufFullFork,
};
const EXIT: KindCounters = KindCounters {
    submitted: KernelCounter::SubmittedExit,
    full: KernelCounter::RingbufFullExit,
};

/// `tp_btf/sched_process_exec(task, old_pid, bprm)`: emits an [`ExecEvent`] with the filename,
/// argv, executable path and cwd trailing it. Runs after the new image is set up, so argv is
/// read from the new mm. Its sections hand over through map memory (`put!`, `opaque`) so
/// that the verifier of Linux 6.1 accepts it, not only that of newer kernels.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn process_exec(ctx: BtfTracePointContext) -> i32 {
    exec::<Direct>(ctx.arg(0), ctx.arg(2))
}

/// [`process_exec`] as a raw tracepoint, every kernel read a helper call: the fallback where
/// `tp_btf` is refused.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn process_exec_raw(ctx: RawTracePointContext) -> i32 {
    exec::<Probe>(ctx.arg(0), ctx.arg(2))
}

#[inline(always)]
fn exec<K: Kernel>(task: *const u8, bprm: *const u8) -> i32 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        count(KernelCounter::ScratchUnavailable);
        return 0;
    };
    let buf = scratch.cast::<u8>();
    let cursor = buf.wrapping_add(SCRATCH_CURSOR).cast::<u64>();
    // The record is assembled in place: its fixed part at the start of the buffer, each
    // trailing section after it.
    let event = buf.cast::<ExecEvent>();
    // SAFETY: the scratch buffer holds SCRATCH_SIZE bytes, far more than an ExecEvent, and
    // a map value is 8-byte aligned.
    unsafe { event.write(exec_identity::<K>(task)) };
    let mut pos = size_of::<ExecEvent>();

    let mut filename_len = read_filename(buf, pos, K::ptr(bprm, offset!(bprm_filename)));
    if filename_len >= FILENAME_MAX {
        // One byte more than we keep came back: the name was longer.
        add_flags(event, EXEC_FILENAME_TRUNCATED);
        filename_len = FILENAME_MAX - 1;
    }
    put!(event.filename_len, filename_len as u16);
    pos += filename_len;

    let (argv_len, argv_flags) = read_argv::<K>(buf, pos, K::ptr(task, offset!(task_mm)));
    add_flags(event, argv_flags);
    put!(event.argv_len, argv_len as u16);
    pos = opaque(cursor, pos + argv_len);

    let file = K::ptr(bprm, offset!(bprm_file));
    let exe = path::walk::<K>(buf, pos, file, offset!(file_path));
    if exe.truncated {
        add_flags(event, EXEC_EXE_PATH_TRUNCATED);
    }
    put!(event.exe_path_len, exe.len as u16);
    pos = opaque(cursor, pos + exe.len);

    let fs = K::ptr(task, offset!(task_fs));
    let cwd = path::walk::<K>(buf, pos, fs, offset!(fs_pwd));
    if cwd.truncated {
        add_flags(event, EXEC_CWD_TRUNCATED);
    }
    put!(event.cwd_len, cwd.len as u16);
    pos = opaque(cursor, pos + cwd.len);

    let cgroup = path::walk_cgroup::<K>(buf, pos, task);
    if cgroup.truncated {
        add_flags(event, EXEC_CGROUP_TRUNCATED);
    }
    put!(event.cgroup_len, cgroup.len as u16);
    pos = opaque(cursor, pos + cgroup.len);

    let inode = K::ptr(file, offset!(file_inode));
    put!(event.exe_ino, K::at::<u64>(inode, offset!(inode_ino)));
    put!(
        event.exe_dev,
        K::at::<u32>(K::ptr(inode, offset!(inode_sb)), offset!(sb_dev)),
    );
    if !inode.is_null() && K::at::<u32>(inode, offset!(inode_nlink)) == 0 {
        add_flags(event, EXEC_EXE_UNLINKED);
    }

    let size = pos & (SCRATCH_SIZE - 1);
    put!(event.header.size, size as u32);
    // SAFETY: `size < SCRATCH_SIZE`, the bytes up to `size` were written above.
    let record = unsafe { core::slice::from_raw_parts(buf, size) };
    output(EXEC, record);
    0
}

/// Sets `flags` in the record being assembled (as [`put!`]).
#[inline(always)]
fn add_flags(event: *mut ExecEvent, flags: u32) {
    // SAFETY: `event` is the record at the start of this CPU's scratch value (8-byte aligned,
    // far larger than an ExecEvent).
    unsafe {
        let field = &raw mut (*event).flags;
        field.write_volatile(field.read_volatile() | flags);
    }
}

/// Everything of an exec record that does not trail it: ids, parent, credentials, comm.
#[inline(always)]
fn exec_identity<K: Kernel>(task: *const u8) -> ExecEvent {
    let ids = task::ids::<K>(task);
    let parent = task::parent_ids::<K>(task);
    let cred = K::ptr(task, offset!(task_real_cred));
    let mut event = ExecEvent {
        header: task::header_of::<K>(EventKind::Exec, 0, ids, task),
        ppid: parent.tgid,
        uid: K::at::<u32>(cred, offset!(cred_uid)),
        gid: K::at::<u32>(cred, offset!(cred_gid)),
        euid: K::at::<u32>(cred, offset!(cred_euid)),
        egid: K::at::<u32>(cred, offset!(cred_egid)),
        loginuid: u32::MAX,
        parent_start_time_ns: parent.start_time_ns,
        comm: bpf_get_current_comm().unwrap_or_default(),
        ..ExecEvent::default()
    };
    if offset!(task_loginuid) == OFFSET_MISSING {
        event.flags |= EXEC_NO_LOGINUID;
    } else {
        event.loginuid = K::at::<u32>(task, offset!(task_loginuid));
    }
    event
}

/// Copies the execve filename to `buf[pos..]`; returns its length without the NUL. Reads up
/// to `FILENAME_MAX` characters, one more than the record keeps, so that a result of
/// `FILENAME_MAX` means "longer than we keep" and `FILENAME_MAX - 1` is exact.
#[inline(always)]
fn read_filename(buf: *mut u8, pos: usize, filename: *const u8) -> usize {
    let at = pos & SCRATCH_MASK;
    // SAFETY: `at + FILENAME_MAX + 1` is within the scratch buffer; the helper checks the
    // source.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            buf.wrapping_add(at).cast(),
            FILENAME_MAX as u32 + 1,
            filename.cast(),
        )
    };
    if n <= 0 {
        count(KernelCounter::ReadKernelFailed);
        return 0;
    }
    (n as usize - 1) & (FILENAME_MAX * 2 - 1)
}

/// Copies the new image's argv area (NUL-separated strings) to `buf[pos..]`, at most
/// [`ARGV_MAX`] bytes; returns the bytes copied and `EXEC_ARGV_*` flags.
#[inline(always)]
fn read_argv<K: Kernel>(buf: *mut u8, pos: usize, mm: *const u8) -> (usize, u32) {
    let start = K::at::<u64>(mm, offset!(mm_arg_start));
    let end = K::at::<u64>(mm, offset!(mm_arg_end));
    let total = end.saturating_sub(start) as usize;
    let (len, mut flags) = if total > ARGV_MAX {
        (ARGV_MAX, EXEC_ARGV_TRUNCATED)
    } else {
        (total, 0)
    };
    let at = pos & SCRATCH_MASK;
    // SAFETY: `at + len <= SCRATCH_MASK + ARGV_MAX < SCRATCH_SIZE`; the helper checks the
    // user address and fails rather than faulting.
    let ret =
        unsafe { bpf_probe_read_user(buf.wrapping_add(at).cast(), len as u32, start as *const _) };
    if ret < 0 {
        count(KernelCounter::ReadArgvFailed);
        flags |= EXEC_ARGV_UNREADABLE;
        return (0, flags);
    }
    (len, flags)
}

/// `tp_btf/sched_process_fork(parent, child)`: emits a [`ForkEvent`] for a new process, or for
/// a new thread when `trace_threads` is set (otherwise threads are filtered here).
#[btf_tracepoint(function = "sched_process_fork")]
pub fn process_fork(ctx: BtfTracePointContext) -> i32 {
    // arg 0 is the calling task, which is `current`: its pid comes from a helper.
    fork::<Direct>(ctx.arg(1))
}

/// [`process_fork`] as a raw tracepoint (see [`process_exec_raw`]).
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn process_fork_raw(ctx: RawTracePointContext) -> i32 {
    fork::<Probe>(ctx.arg(1))
}

#[inline(always)]
fn fork<K: Kernel>(child: *const u8) -> i32 {
    let ids = task::ids::<K>(child);
    let thread = ids.pid != ids.tgid;
    if thread && config!(trace_threads) == 0 {
        return 0;
    }
    // The child's real parent, not the caller: they differ under CLONE_PARENT and for threads.
    let parent = task::parent_ids::<K>(child);
    let event = ForkEvent {
        header: task::header_of::<K>(EventKind::Fork, size_of::<ForkEvent>(), ids, child),
        parent_pid: bpf_get_current_pid_tgid() as u32,
        parent_tgid: if thread { ids.tgid } else { parent.tgid },
        parent_start_time_ns: if thread {
            ids.start_time_ns
        } else {
            parent.start_time_ns
        },
        flags: if thread { FORK_THREAD } else { 0 },
        _pad: 0,
    };
    reserve_submit(FORK, event);
    0
}

/// `tp_btf/sched_process_exit(task[, group_dead])`: emits an [`ExitEvent`] when the last
/// thread of a group exits (every thread's exit when `trace_threads` is set).
#[btf_tracepoint(function = "sched_process_exit")]
pub fn process_exit(ctx: BtfTracePointContext) -> i32 {
    exit::<Direct>(ctx.arg(0), || ctx.arg::<u64>(1) != 0)
}

/// [`process_exit`] as a raw tracepoint (see [`process_exec_raw`]).
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn process_exit_raw(ctx: RawTracePointContext) -> i32 {
    exit::<Probe>(ctx.arg(0), || ctx.arg::<u64>(1) != 0)
}

/// `group_dead_arg` reads the tracepoint's second argument; it is called only on kernels
/// that pass one (else the verifier, which knows the config, never sees the read).
#[inline(always)]
fn exit<K: Kernel>(task: *const u8, group_dead_arg: impl FnOnce() -> bool) -> i32 {
    let signal = K::ptr(task, offset!(task_signal));
    let group_dead = if config!(exit_group_dead_arg) != 0 {
        group_dead_arg()
    } else {
        K::at::<i32>(signal, offset!(signal_live)) == 0 && claims_group_exit::<K>(task, signal)
    };
    let trace_threads = config!(trace_threads) != 0;
    if !group_dead && !trace_threads {
        return 0;
    }
    let mut ids = task::ids::<K>(task);
    if !trace_threads {
        // Threads are not reported, so the exit that ends the group is the process's, named
        // by its pid whichever thread left last.
        ids.pid = ids.tgid;
    }
    let event = ExitEvent {
        header: task::header_of::<K>(EventKind::Exit, size_of::<ExitEvent>(), ids, task),
        exit_code: exit_code::<K>(task, signal, group_dead),
        flags: if group_dead { EXIT_GROUP_DEAD } else { 0 },
    };
    reserve_submit(EXIT, event);
    0
}

/// `EEXIST`: an insert with `BPF_NOEXIST` fails with its negative when the key is there.
const EEXIST: i32 = 17;

/// Whether this thread reports its group's end, on a kernel whose tracepoint does not say.
/// `do_exit` decrements `signal->live` before the tracepoint, so zero there means the group
/// is dead, but not that this thread ended it: a thread that decremented earlier can reach
/// its tracepoint after the last one decremented, and see zero too. The first of them to get
/// here claims the group's exit; the others report none (or, with `trace_threads`, their
/// own exit without the group's). A thread alone in its group cannot race, and skips the map.
#[inline(always)]
fn claims_group_exit<K: Kernel>(task: *const u8, signal: *const u8) -> bool {
    if offset!(signal_nr_threads) != OFFSET_MISSING
        && K::at::<i32>(signal, offset!(signal_nr_threads)) <= 1
    {
        return true;
    }
    let ids = task::ids::<K>(task);
    let group = TaskIds {
        pid: ids.tgid,
        ..ids
    };
    // Only "already claimed" stops the report: any other failure risks a duplicate, not a loss.
    !matches!(
        GROUP_EXITS.insert(group, 0, u64::from(BPF_NOEXIST)),
        Err(e) if e == -EEXIST
    )
}

/// `signal_struct.flags`: the group is exiting (`exit_group`, or a fatal signal), with
/// `group_exit_code` its status.
const SIGNAL_GROUP_EXIT: u32 = 0x4;

/// The exit code to report for `task`: its own, or for the exit that ends a group that is
/// exiting as a whole, the group's (what `wait` gives the parent). The last thread out may be
/// another than the one that called `exit_group`, and its own code be that of its `exit`.
#[inline(always)]
fn exit_code<K: Kernel>(task: *const u8, signal: *const u8, group_dead: bool) -> u32 {
    if group_dead
        && offset!(signal_group_exit_code) != OFFSET_MISSING
        && K::at::<u32>(signal, offset!(signal_flags)) & SIGNAL_GROUP_EXIT != 0
    {
        return K::at::<i32>(signal, offset!(signal_group_exit_code)) as u32;
    }
    K::at::<i32>(task, offset!(task_exit_code)) as u32
}
