//! The record header every event starts with, and the kinds of event.

/// What a ring-buffer record carries. Numbers never change and are never reused; a new
/// kind is added at the end of its family's range (process: 1-15, syscalls: 16-31, network: 32-47).
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    CredChange = 4,
    Syscall = 16,
    TcpState = 32,
    Dns = 33,
}

impl EventKind {
    pub const fn from_u16(value: u16) -> Option<Self> {
        match value {
            1 => Some(Self::Exec),
            2 => Some(Self::Fork),
            3 => Some(Self::Exit),
            4 => Some(Self::CredChange),
            16 => Some(Self::Syscall),
            32 => Some(Self::TcpState),
            33 => Some(Self::Dns),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Fork => "fork",
            Self::Exit => "exit",
            Self::CredChange => "cred_change",
            Self::Syscall => "syscall",
            Self::TcpState => "tcp_state",
            Self::Dns => "dns",
        }
    }

    /// Size of the fixed part of this kind's record; trailing data may follow.
    pub const fn fixed_size(self) -> usize {
        match self {
            Self::Exec => size_of::<crate::process::ExecEvent>(),
            Self::Fork => size_of::<crate::process::ForkEvent>(),
            Self::Exit => size_of::<crate::process::ExitEvent>(),
            Self::CredChange => size_of::<crate::cred::CredChangeEvent>(),
            Self::Syscall => size_of::<crate::syscall::SyscallEvent>(),
            Self::TcpState => size_of::<crate::network::TcpStateEvent>(),
            Self::Dns => size_of::<crate::network::DnsEvent>(),
        }
    }
}

/// First bytes of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// An [`EventKind`] number.
    pub kind: u16,
    pub _pad: u16,
    /// Size of the whole record (fixed part and trailing data) in bytes.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()` when the hook ran (CLOCK_BOOTTIME, includes suspend).
    pub time_ns: u64,
    /// Thread id of the task the event is about.
    pub pid: u32,
    /// Thread-group (process) id of that task.
    pub tgid: u32,
    /// Start time of the thread group (`group_leader->start_boottime`, ns since boot).
    /// With `tgid` it identifies the process across pid reuse.
    pub start_time_ns: u64,
    /// cgroup v2 id of the task (the inode number of its cgroup2 directory).
    pub cgroup_id: u64,
}

const _: () = assert!(size_of::<Header>() == 40);
const _: () = assert!(core::mem::offset_of!(Header, time_ns) == 8);
const _: () = assert!(core::mem::offset_of!(Header, cgroup_id) == 32);
