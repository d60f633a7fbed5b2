//! Process lifecycle records: exec, fork, exit.

use crate::event::Header;

/// At most this many bytes of the argv area are copied (NUL-separated strings).
pub const ARGV_MAX: usize = 4096;
/// At most this many argv entries are reported; the rest set [`EXEC_ARGV_TRUNCATED`].
pub const ARGS_MAX: usize = 128;
/// The filename passed to execve is kept up to `FILENAME_MAX - 1` bytes.
pub const FILENAME_MAX: usize = 512;
/// At most this many path components are walked for the executable and the cwd.
pub const PATH_DEPTH_MAX: usize = 32;
/// A single path component is read with at most this many bytes (NAME_MAX + NUL).
pub const PATH_COMPONENT_MAX: usize = 256;
/// Budget of one walked path (components, leaf first, each NUL-terminated).
pub const PATH_MAX: usize = 2048;

/// The argv area was longer than [`ARGV_MAX`] (or had more than [`ARGS_MAX`] entries).
pub const EXEC_ARGV_TRUNCATED: u32 = 1 << 0;
/// The filename was longer than `FILENAME_MAX - 1` bytes.
pub const EXEC_FILENAME_TRUNCATED: u32 = 1 << 1;
/// The executable's path had more components than the walk allows, or overflowed [`PATH_MAX`].
pub const EXEC_EXE_PATH_TRUNCATED: u32 = 1 << 2;
/// The cwd had more components than the walk allows, or overflowed [`PATH_MAX`].
pub const EXEC_CWD_TRUNCATED: u32 = 1 << 3;
/// Reading the argv area from user memory failed; `argv_len` is 0.
pub const EXEC_ARGV_UNREADABLE: u32 = 1 << 4;
/// `loginuid` could not be read on this kernel (no CONFIG_AUDIT); the field is `u32::MAX`.
pub const EXEC_NO_LOGINUID: u32 = 1 << 5;
/// The cgroup path was deeper than [`CGROUP_DEPTH_MAX`] levels (only the deepest are kept).
pub const EXEC_CGROUP_TRUNCATED: u32 = 1 << 6;
/// The executed file had no link left in any directory at exec: a memfd, or a file deleted
/// before it was run (both favourite ways to run a payload that leaves no file behind).
pub const EXEC_EXE_UNLINKED: u32 = 1 << 7;

/// At most this many cgroup levels are walked (enough for every runtime's layout).
pub const CGROUP_DEPTH_MAX: usize = 8;

/// `sched_process_exec`: a task replaced its image.
///
/// Trailing data, in this order: `filename_len` bytes of the filename as passed to execve,
/// `argv_len` bytes of the argv area (NUL-separated), `exe_path_len` bytes of the executable's
/// path, `cwd_len` bytes of the cwd and `cgroup_len` bytes of the task's cgroup v2 path.
/// Paths are encoded as components, leaf first, each followed by a NUL; none means `/`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecEvent {
    pub header: Header,
    /// Thread-group id of the real parent.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// Audit login uid, `u32::MAX` when unset or unavailable.
    pub loginuid: u32,
    /// Start time of the real parent's thread group (ns since boot).
    pub parent_start_time_ns: u64,
    /// Inode number of the executed file.
    pub exe_ino: u64,
    /// Device of the executed file's superblock (kernel `dev_t`: major << 20 | minor).
    pub exe_dev: u32,
    /// `EXEC_*` flags.
    pub flags: u32,
    /// `task->comm` after exec.
    pub comm: [u8; 16],
    pub filename_len: u16,
    pub argv_len: u16,
    pub exe_path_len: u16,
    pub cwd_len: u16,
    pub cgroup_len: u16,
    pub _pad: [u8; 6],
}

const _: () = assert!(size_of::<ExecEvent>() == 120);
const _: () = assert!(core::mem::offset_of!(ExecEvent, parent_start_time_ns) == 64);

/// Largest exec record: fixed part plus every trailing section at its maximum.
pub const EXEC_RECORD_MAX: usize = size_of::<ExecEvent>() + FILENAME_MAX + ARGV_MAX + 3 * PATH_MAX;

/// The new task is a thread of an existing process, not a new process.
pub const FORK_THREAD: u32 = 1 << 0;

/// `sched_process_fork`: a task created a new process (or, when threads are traced, a thread).
/// The header describes the child.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkEvent {
    pub header: Header,
    /// Thread id of the task that called fork/clone.
    pub parent_pid: u32,
    /// Thread-group id of the parent process.
    pub parent_tgid: u32,
    /// Start time of the parent's thread group (ns since boot).
    pub parent_start_time_ns: u64,
    /// `FORK_*` flags.
    pub flags: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<ForkEvent>() == 64);

/// The last live thread of the group exited: the process is gone.
pub const EXIT_GROUP_DEAD: u32 = 1 << 0;

/// `sched_process_exit`: a task exited. By default only the exit that ends the thread group
/// is reported.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitEvent {
    pub header: Header,
    /// `task->exit_code`: `status << 8` for a normal exit, the signal number (| 0x80 when a
    /// core was dumped) when killed. For the exit that ends a group that `exit_group` (or a
    /// fatal signal) ended, the group's code (`signal->group_exit_code`): the last thread out
    /// need not be the one that called it.
    pub exit_code: u32,
    /// `EXIT_*` flags.
    pub flags: u32,
}

const _: () = assert!(size_of::<ExitEvent>() == 48);
