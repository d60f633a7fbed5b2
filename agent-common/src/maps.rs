//! Names of the maps, globals and programs in the eBPF object, so userspace never repeats a
//! string that must match the kernel side.

/// Ring buffer shared by all CPUs that carries every event.
pub const EVENTS: &str = "VIGIL_EVENTS";
/// Per-CPU array of `u64` counters indexed by [`crate::stats::KernelCounter`].
pub const STATS: &str = "VIGIL_STATS";
/// Array of one `u32`: 1 while the ring-buffer reader sleeps until it is woken (it found the
/// ring empty), 0 while it drains on its timer. The kernel forces a wake-up for a record into
/// an empty ring only when it is 1.
pub const READER: &str = "VIGIL_READER";
/// Per-CPU scratch space where variable-length records are assembled before output.
pub const SCRATCH: &str = "VIGIL_SCRATCH";

/// Array of `u64` words: the syscall filter bitmap (see `crate::syscall`). All zero: no
/// syscall is captured.
pub const SYSCALL_FILTER: &str = "VIGIL_SYSCALL_FILTER";
/// Array of `u32` indexed by syscall number: the two-bit type of each argument.
pub const SYSCALL_ARG_TYPES: &str = "VIGIL_SYSCALL_ARGS";
/// Hash map of allowed cgroup ids (`u64` -> `u8`), read when `syscall_cgroup_filter` is set.
pub const SYSCALL_CGROUPS: &str = "VIGIL_SYSCALL_CGROUPS";
/// Hash map pid_tgid -> record under construction, from a syscall's enter to its exit (the
/// raw-tracepoint twins' stash).
pub const SYSCALL_STASH: &str = "VIGIL_SYSCALL_STASH";
/// Task local storage: the same record, kept with the thread (the `tp_btf` programs' stash).
/// In the object for kernels without task storage, a placeholder array.
pub const TASK_STASH: &str = "VIGIL_TASK_STASH";
/// Array of [`IN_CONNECT_SLOTS`] connect slots: a thread inside connect or bind holds one of
/// its two (`pid % IN_CONNECT_SLOTS`, and the one half the array away), with the outcome of its
/// connect when the TCP state program saw it decided inside the syscall.
pub const IN_CONNECT: &str = "VIGIL_IN_CONNECT";
/// Slots of [`IN_CONNECT`], a power of two (112 bytes each). Threads whose ids share both of
/// a thread's slots, inside connect at the same time, share them as a full hash map would:
/// the latest has the first, and an earlier one's outcome is reported at once.
pub const IN_CONNECT_SLOTS: u32 = 8192;
/// Array of [`crate::syscall::FilePrefix`]: the file sensor's watch prefixes.
pub const FILE_PREFIXES: &str = "VIGIL_FILE_PREFIXES";
/// Array of `u32`, two tables by byte value: which of [`FILE_PREFIXES`] a path can match, by
/// its byte after the `/` and by its sixth ([`crate::syscall::file_prefix_index`]).
pub const FILE_PREFIX_INDEX: &str = "VIGIL_FILE_PREFIX_INDEX";
/// Entries of [`SYSCALL_STASH`]: threads inside a selected syscall at the same time.
pub const SYSCALL_STASH_ENTRIES: u32 = 4096;
/// Hash map pid_tgid -> credential-change record under construction (the credentials at
/// entry), from a credential syscall's enter to its exit.
pub const CRED_STASH: &str = "VIGIL_CRED_STASH";
/// Entries of [`CRED_STASH`]: threads inside a credential syscall at the same time (a
/// multi-threaded setuid runs it in every thread).
pub const CRED_STASH_ENTRIES: u32 = 1024;
/// Entries of [`SYSCALL_CGROUPS`].
pub const SYSCALL_CGROUPS_ENTRIES: u32 = 1024;

/// LRU hash map (tgid, leader start time) -> nothing: thread groups whose exit one of their
/// threads has reported, on kernels whose exit tracepoint does not say which thread ended
/// the group. An entry matters only for the moments two exiting threads overlap.
pub const GROUP_EXITS: &str = "VIGIL_GROUP_EXITS";
/// Entries of [`GROUP_EXITS`]: multi-threaded groups ending at the same moment.
pub const GROUP_EXITS_ENTRIES: u32 = 1024;

/// LRU hash map `struct sock` address -> the task that connected it (`TaskIds`).
pub const TCP_OWNERS: &str = "VIGIL_TCP_OWNERS";
/// Entries of [`TCP_OWNERS`]: connections Vigil can name the owner of at once.
pub const TCP_OWNERS_ENTRIES: u32 = 16384;

/// Enforcement maps (`crate::enforce`), pinned under `/sys/fs/bpf/vigil/maps/` so that
/// enforcement outlives the agent. Hash map [`crate::enforce::FileKey`] ->
/// [`crate::enforce::ExecRule`]: denied executables and directories.
pub const EXEC_DENY: &str = "VIGIL_EXEC_DENY";
/// Hash map [`crate::enforce::FileKey`] -> [`crate::enforce::ExecRule`]: files (and
/// directories) whose open BPF-LSM `file_open` refuses.
pub const OPEN_DENY: &str = "VIGIL_OPEN_DENY";
/// Hash map cgroup id (`u64`) -> [`crate::enforce::NetPolicy`].
pub const NET_POLICY: &str = "VIGIL_NET_POLICY";
/// LPM trie of [`crate::enforce::NetKeyV4`] -> [`crate::enforce::NetRule`].
pub const NET_DENY_V4: &str = "VIGIL_NET_DENY_V4";
/// LPM trie of [`crate::enforce::NetKeyV6`] -> [`crate::enforce::NetRule`].
pub const NET_DENY_V6: &str = "VIGIL_NET_DENY_V6";
/// Array of one [`crate::enforce::EnforceControl`].
pub const ENFORCE_CONTROL: &str = "VIGIL_ENFORCE_CTL";
/// Ring buffer of [`crate::enforce::EnforceRecord`].
pub const ENFORCE_EVENTS: &str = "VIGIL_ENFORCE_EVENTS";
/// Per-CPU array of `u64` indexed by [`crate::enforce::EnforceCounter`].
pub const ENFORCE_STATS: &str = "VIGIL_ENFORCE_STATS";

/// Global holding [`crate::offsets::KernelOffsets`].
pub const GLOBAL_OFFSETS: &str = "VIGIL_OFFSETS";
/// Global holding [`crate::config::KernelConfig`].
pub const GLOBAL_CONFIG: &str = "VIGIL_CONFIG";

/// Default size of [`EVENTS`] in bytes (a power of two, a multiple of the page size).
pub const EVENTS_SIZE_DEFAULT: u32 = 8 * 1024 * 1024;

/// Program names (the function names in `agent-ebpf`) and the hooks they attach to.
pub mod programs {
    /// BTF tracepoint (`tp_btf`) `sched_process_exec`.
    pub const PROCESS_EXEC: &str = "process_exec";
    /// BTF tracepoint `sched_process_fork`.
    pub const PROCESS_FORK: &str = "process_fork";
    /// BTF tracepoint `sched_process_exit`.
    pub const PROCESS_EXIT: &str = "process_exit";
    /// [`PROCESS_EXEC`] as a raw tracepoint, every kernel read a helper call: loaded instead
    /// where `tp_btf` is refused, or with `process.hooks = "raw_tracepoint"`.
    pub const PROCESS_EXEC_RAW: &str = "process_exec_raw";
    /// [`PROCESS_FORK`] as a raw tracepoint (see [`PROCESS_EXEC_RAW`]).
    pub const PROCESS_FORK_RAW: &str = "process_fork_raw";
    /// [`PROCESS_EXIT`] as a raw tracepoint (see [`PROCESS_EXEC_RAW`]).
    pub const PROCESS_EXIT_RAW: &str = "process_exit_raw";
    /// BTF tracepoint `sys_enter`.
    pub const SYSCALL_ENTER: &str = "syscall_enter";
    /// BTF tracepoint `sys_exit`.
    pub const SYSCALL_EXIT: &str = "syscall_exit";
    /// [`SYSCALL_ENTER`] as a raw tracepoint, every kernel read a helper call: loaded instead
    /// where `tp_btf` or `bpf_get_current_task_btf` (5.11+) is refused, or with
    /// `syscalls.hooks = "raw_tracepoint"`.
    pub const SYSCALL_ENTER_RAW: &str = "syscall_enter_raw";
    /// [`SYSCALL_EXIT`] as a raw tracepoint (see [`SYSCALL_ENTER_RAW`]).
    pub const SYSCALL_EXIT_RAW: &str = "syscall_exit_raw";
    /// classic tracepoint `sock/inet_sock_set_state`.
    pub const NETWORK_TCP_STATE: &str = "network_tcp_state";
    /// `cgroup_skb/egress` at the cgroup v2 root: DNS queries.
    pub const NETWORK_DNS: &str = "network_dns";
    /// raw tracepoint `sched_process_exec`: kill-on-exec (enforcement, pinned).
    pub const ENFORCE_EXEC: &str = "enforce_exec";
    /// `cgroup/connect4` at the cgroup v2 root (enforcement, pinned).
    pub const ENFORCE_CONNECT4: &str = "enforce_connect4";
    /// `cgroup/connect6` at the cgroup v2 root (enforcement, pinned).
    pub const ENFORCE_CONNECT6: &str = "enforce_connect6";
    /// `cgroup/sendmsg4` at the cgroup v2 root (enforcement, pinned).
    pub const ENFORCE_SENDMSG4: &str = "enforce_sendmsg4";
    /// `cgroup/sendmsg6` at the cgroup v2 root (enforcement, pinned).
    pub const ENFORCE_SENDMSG6: &str = "enforce_sendmsg6";
    /// BPF-LSM `bprm_check_security`: deny-exec (enforcement, pinned; replaces
    /// [`ENFORCE_EXEC`] where BPF-LSM works).
    pub const ENFORCE_LSM_EXEC: &str = "enforce_lsm_exec";
    /// BPF-LSM `file_open`: deny-open (enforcement, pinned; BPF-LSM only).
    pub const ENFORCE_LSM_OPEN: &str = "enforce_lsm_open";
    /// BPF-LSM `socket_connect`: connect deny (enforcement, pinned; replaces
    /// [`ENFORCE_CONNECT4`] and [`ENFORCE_CONNECT6`] where BPF-LSM works).
    pub const ENFORCE_LSM_CONNECT: &str = "enforce_lsm_connect";
}
