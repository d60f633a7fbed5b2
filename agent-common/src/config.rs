//! What userspace tells the kernel side before load (a read-only global).

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConfig {
    /// Non-zero: report thread creation and every thread's exit, not only processes.
    pub trace_threads: u32,
    /// Submit with a forced wake-up once this many bytes wait in the ring buffer; below it,
    /// records are submitted without a wake-up and the reader polls on a timer.
    pub wakeup_threshold_bytes: u32,
    /// Non-zero: syscalls are captured only in the cgroups listed in `SYSCALL_CGROUPS`.
    pub syscall_cgroup_filter: u32,
    /// Syscalls of this thread group are not captured (the agent's own, e.g. its `bpf`
    /// calls that read the maps); 0: none ignored.
    pub syscall_ignore_tgid: u32,
    /// Non-zero: the kernel's `sched_process_exit` tracepoint passes `group_dead` as its
    /// second argument (newer kernels), which says exactly which thread's exit ended its
    /// group. Set by the loader from the kernel's BTF, never by configuration.
    pub exit_group_dead_arg: u32,
}

impl KernelConfig {
    pub const DEFAULT: Self = Self {
        trace_threads: 0,
        wakeup_threshold_bytes: 256 * 1024,
        syscall_cgroup_filter: 0,
        syscall_ignore_tgid: 0,
        exit_group_dead_arg: 0,
    };
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` struct of `u32`s, no padding, valid for any bit pattern.
unsafe impl aya::Pod for KernelConfig {}
