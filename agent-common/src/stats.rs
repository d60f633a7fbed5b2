//! Kernel-side counters: one `u64` per CPU and per counter in the `VIGIL_STATS` array.

/// Index into the stats array. Numbers never change; add at the end.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelCounter {
    /// Records submitted to the ring buffer, by kind.
    SubmittedExec = 0,
    SubmittedFork = 1,
    SubmittedExit = 2,
    /// Records lost because the ring buffer was full, by kind.
    RingbufFullExec = 3,
    RingbufFullFork = 4,
    RingbufFullExit = 5,
    /// An exec was lost because the per-CPU scratch buffer was unavailable.
    ScratchUnavailable = 6,
    /// A kernel memory read failed; the affected field is zero or empty.
    ReadKernelFailed = 7,
    /// Reading argv from the new image's user memory failed; args are empty.
    ReadArgvFailed = 8,
    /// Syscall records submitted to the ring buffer.
    SubmittedSyscall = 9,
    /// Syscall records lost because the ring buffer was full.
    RingbufFullSyscall = 10,
    /// A selected syscall was lost at enter because its record could not be kept: the stash
    /// hash map was full, or the thread's task local storage could not be allocated.
    SyscallStashFull = 11,
    /// TCP state records submitted to the ring buffer.
    SubmittedNetwork = 12,
    /// TCP state records lost because the ring buffer was full.
    RingbufFullNetwork = 13,
    /// DNS query records submitted to the ring buffer.
    SubmittedDns = 14,
    /// DNS query records lost because the ring buffer was full.
    RingbufFullDns = 15,
    /// Credential-change records submitted to the ring buffer.
    SubmittedCred = 16,
    /// Credential-change records lost because the ring buffer was full.
    RingbufFullCred = 17,
    /// A credential syscall was not watched because the per-thread stash map was full (or
    /// its scratch space unavailable): a change it made is lost.
    CredStashFull = 18,
}

impl KernelCounter {
    /// Every counter in index order.
    pub const ALL: [Self; 19] = [
        Self::SubmittedExec,
        Self::SubmittedFork,
        Self::SubmittedExit,
        Self::RingbufFullExec,
        Self::RingbufFullFork,
        Self::RingbufFullExit,
        Self::ScratchUnavailable,
        Self::ReadKernelFailed,
        Self::ReadArgvFailed,
        Self::SubmittedSyscall,
        Self::RingbufFullSyscall,
        Self::SyscallStashFull,
        Self::SubmittedNetwork,
        Self::RingbufFullNetwork,
        Self::SubmittedDns,
        Self::RingbufFullDns,
        Self::SubmittedCred,
        Self::RingbufFullCred,
        Self::CredStashFull,
    ];

    /// Number of slots in the stats array.
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// Stable name, used as the `cause` label of loss metrics and events.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SubmittedExec => "submitted_exec",
            Self::SubmittedFork => "submitted_fork",
            Self::SubmittedExit => "submitted_exit",
            Self::RingbufFullExec => "ringbuf_full_exec",
            Self::RingbufFullFork => "ringbuf_full_fork",
            Self::RingbufFullExit => "ringbuf_full_exit",
            Self::ScratchUnavailable => "scratch_unavailable",
            Self::ReadKernelFailed => "read_kernel_failed",
            Self::ReadArgvFailed => "read_argv_failed",
            Self::SubmittedSyscall => "submitted_syscall",
            Self::RingbufFullSyscall => "ringbuf_full_syscall",
            Self::SyscallStashFull => "syscall_stash_full",
            Self::SubmittedNetwork => "submitted_network",
            Self::RingbufFullNetwork => "ringbuf_full_network",
            Self::SubmittedDns => "submitted_dns",
            Self::RingbufFullDns => "ringbuf_full_dns",
            Self::SubmittedCred => "submitted_cred",
            Self::RingbufFullCred => "ringbuf_full_cred",
            Self::CredStashFull => "cred_stash_full",
        }
    }

    /// Whether an increment of this counter means a whole event was lost.
    pub const fn is_loss(self) -> bool {
        match self {
            Self::RingbufFullExec
            | Self::RingbufFullFork
            | Self::RingbufFullExit
            | Self::ScratchUnavailable
            | Self::RingbufFullSyscall
            | Self::SyscallStashFull
            | Self::RingbufFullNetwork
            | Self::RingbufFullDns
            | Self::RingbufFullCred
            | Self::CredStashFull => true,
            Self::SubmittedExec
            | Self::SubmittedFork
            | Self::SubmittedExit
            | Self::ReadKernelFailed
            | Self::ReadArgvFailed
            | Self::SubmittedSyscall
            | Self::SubmittedNetwork
            | Self::SubmittedDns
            | Self::SubmittedCred => false,
        }
    }
}
