//! Names of the maps, globals and programs in the eBPF object, so userspace never repeats a
//! string that must match the kernel side.

/// Ring buffer shared by all CPUs that carries every event.
pub const EVENTS: &str = "VIGIL_EVENTS";
/// Per-CPU array of `u64` counters indexed by [`crate::stats::KernelCounter`].
pub const STATS: &str = "VIGIL_STATS";
/// Per-CPU scratch space where variable-length records are assembled before output.
pub const SCRATCH: &str = "VIGIL_SCRATCH";

/// Global holding [`crate::offsets::KernelOffsets`].
pub const GLOBAL_OFFSETS: &str = "VIGIL_OFFSETS";
/// Global holding [`crate::config::KernelConfig`].
pub const GLOBAL_CONFIG: &str = "VIGIL_CONFIG";

/// Default size of [`EVENTS`] in bytes (a power of two, a multiple of the page size).
pub const EVENTS_SIZE_DEFAULT: u32 = 8 * 1024 * 1024;

/// Program names (the function names in `agent-ebpf`) and the hooks they attach to.
pub mod programs {
    /// raw tracepoint `sched_process_exec`.
    pub const PROCESS_EXEC: &str = "process_exec";
    /// raw tracepoint `sched_process_fork`.
    pub const PROCESS_FORK: &str = "process_fork";
    /// raw tracepoint `sched_process_exit`.
    pub const PROCESS_EXIT: &str = "process_exit";
}
