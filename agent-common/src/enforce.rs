//! Enforcement in the kernel: the deny maps that the enforcement programs read, and the
//! record they leave for each action. The maps are pinned under `/sys/fs/bpf/vigil/` so that
//! enforcement outlives the agent; their layout is therefore a contract across agent
//! versions (change it only with a new map name).

/// Scopes (cgroup ids) one exec rule can carry; `nscopes == 0` means node-wide.
pub const EXEC_SCOPES_MAX: usize = 4;
/// Parent directories an exec check walks up from the executable (directory rules).
pub const EXEC_DIR_DEPTH: usize = 16;
/// cgroup levels a check walks down from the root to the current cgroup (scopes match a
/// cgroup and every cgroup below it).
pub const CGROUP_LEVELS_MAX: usize = 16;
/// Ports one CIDR rule can list; `nports == 0` means every port.
pub const NET_PORTS_MAX: usize = 8;

/// Entries of the exec deny map (files and directories).
pub const EXEC_DENY_ENTRIES: u32 = 4096;
/// Entries of the open deny map (BPF-LSM `file_open`).
pub const OPEN_DENY_ENTRIES: u32 = 4096;
/// Entries of the per-cgroup network policy map.
pub const NET_POLICY_ENTRIES: u32 = 1024;
/// Entries of each CIDR trie (IPv4, IPv6).
pub const NET_CIDR_ENTRIES: u32 = 4096;
/// Bytes of the enforcement record ring buffer.
pub const ENFORCE_EVENTS_SIZE: u32 = 256 * 1024;

/// Identity of a file as the kernel sees it: `inode->i_sb->s_dev` (kernel `dev_t` encoding,
/// `major << 20 | minor`, not the `st_dev` of `stat(2)`) and `inode->i_ino`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

const _: () = assert!(size_of::<FileKey>() == 16);

/// The key names an executable (not a directory).
pub const EXEC_RULE_FILE: u32 = 1 << 0;
/// The key names a directory: every executable below it (same filesystem) is denied.
pub const EXEC_RULE_DIR: u32 = 1 << 1;

/// Value of the exec deny map, and of the open deny map (where `EXEC_RULE_*` say whether
/// the key is the file or a directory above it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecRule {
    /// Userspace's id of the rule (shown by `vigil enforcement list`).
    pub rule_id: u32,
    /// `EXEC_RULE_*`.
    pub flags: u32,
    /// Number of valid entries in `scopes`; 0: node-wide.
    pub nscopes: u32,
    pub _pad: u32,
    /// cgroup v2 ids: the rule applies in these cgroups and below.
    pub scopes: [u64; EXEC_SCOPES_MAX],
    /// Processes killed by this rule (updated by the kernel without atomics: approximate
    /// under concurrent hits).
    pub hits: u64,
}

const _: () = assert!(size_of::<ExecRule>() == 56);

/// Deny every connect and sendmsg of the cgroup (network isolation).
pub const NET_ISOLATE: u32 = 1 << 0;
/// Look the destination up in the CIDR tries under this cgroup's id.
pub const NET_CIDRS: u32 = 1 << 1;

/// Value of the network policy map (key: cgroup v2 id, `u64`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetPolicy {
    /// `NET_*`.
    pub flags: u32,
    /// Userspace's id of the isolation rule (0 when only CIDR rules exist).
    pub rule_id: u32,
    /// Connections denied in this cgroup (approximate, as [`ExecRule::hits`]).
    pub hits: u64,
}

const _: () = assert!(size_of::<NetPolicy>() == 16);

/// LPM trie key for IPv4: the prefix covers the cgroup id (64 bits) and then the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetKeyV4 {
    pub cgroup_id: u64,
    /// Network byte order.
    pub addr: [u8; 4],
    /// Beyond every prefix: never compared, kept zero.
    pub _pad: [u8; 4],
}

const _: () = assert!(size_of::<NetKeyV4>() == 16);

/// LPM trie key for IPv6 (IPv4-mapped destinations are looked up in the IPv4 trie).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetKeyV6 {
    pub cgroup_id: u64,
    pub addr: [u8; 16],
}

const _: () = assert!(size_of::<NetKeyV6>() == 24);

/// Value of the CIDR tries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetRule {
    pub rule_id: u32,
    /// Number of valid entries in `ports`; 0: every port.
    pub nports: u32,
    /// Destination ports, host order.
    pub ports: [u16; NET_PORTS_MAX],
}

const _: () = assert!(size_of::<NetRule>() == 24);

/// What the enforcement programs are told to look at; index 0 of the control array.
/// Counts let a program return at once when there is nothing to enforce.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnforceControl {
    /// Exec rules of any kind.
    pub exec_rules: u32,
    /// Exec rules naming a directory (the parent walk runs only when non-zero).
    pub exec_dir_rules: u32,
    /// cgroups with a network policy.
    pub net_policies: u32,
    /// Open rules (BPF-LSM `file_open`; this word was padding before, so an older program
    /// reading the same pinned map ignores it).
    pub open_rules: u32,
}

/// The action an [`EnforceRecord`] reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnforceAction {
    /// SIGKILL sent at exec.
    ExecKilled = 1,
    /// A connect was refused with EPERM.
    ConnectDenied = 2,
    /// A sendmsg (UDP, unconnected) was refused with EPERM.
    SendmsgDenied = 3,
    /// BPF-LSM `bprm_check_security`: the exec failed with EPERM before the new program
    /// was loaded.
    ExecDenied = 4,
    /// BPF-LSM `file_open`: the open failed with EPERM.
    OpenDenied = 5,
}

impl EnforceAction {
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::ExecKilled),
            2 => Some(Self::ConnectDenied),
            3 => Some(Self::SendmsgDenied),
            4 => Some(Self::ExecDenied),
            5 => Some(Self::OpenDenied),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::ExecKilled => "exec_killed",
            Self::ConnectDenied => "connect_denied",
            Self::SendmsgDenied => "sendmsg_denied",
            Self::ExecDenied => "exec_denied",
            Self::OpenDenied => "open_denied",
        }
    }
}

/// One enforcement action taken in the kernel, in the enforcement ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnforceRecord {
    /// `bpf_ktime_get_boot_ns()` at the hook.
    pub time_ns: u64,
    /// [`EnforceAction`].
    pub action: u32,
    pub rule_id: u32,
    pub pid: u32,
    pub tgid: u32,
    pub cgroup_id: u64,
    /// Exec and open: the file's identity. Network: `dev` is the port (host order), `ino` 0.
    pub file: FileKey,
    /// Network: the destination (IPv4 in the first four bytes), network byte order.
    pub addr: [u8; 16],
    pub comm: [u8; 16],
}

const _: () = assert!(size_of::<EnforceRecord>() == 80);

/// Per-CPU counters of the enforcement programs (`ENFORCE_STATS`), by index.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnforceCounter {
    /// Execs checked against a non-empty rule set.
    ExecChecked = 0,
    /// Processes killed at exec.
    ExecKilled = 1,
    /// Connects and sendmsgs denied.
    NetDenied = 2,
    /// The check could not complete (an unreadable kernel field): the operation was
    /// allowed (fail open).
    FailedOpen = 3,
    /// `bpf_send_signal` failed: the process was not killed.
    SignalFailed = 4,
    /// Records lost because the enforcement ring buffer was full (the action was taken).
    RecordLost = 5,
    /// Execs refused by BPF-LSM `bprm_check_security`.
    ExecDenied = 6,
    /// Opens refused by BPF-LSM `file_open`.
    OpenDenied = 7,
}

impl EnforceCounter {
    pub const ALL: [Self; 8] = [
        Self::ExecChecked,
        Self::ExecKilled,
        Self::NetDenied,
        Self::FailedOpen,
        Self::SignalFailed,
        Self::RecordLost,
        Self::ExecDenied,
        Self::OpenDenied,
    ];
    pub const COUNT: u32 = Self::ALL.len() as u32;

    pub const fn name(self) -> &'static str {
        match self {
            Self::ExecChecked => "exec_checked",
            Self::ExecKilled => "exec_killed",
            Self::NetDenied => "net_denied",
            Self::FailedOpen => "failed_open",
            Self::SignalFailed => "signal_failed",
            Self::RecordLost => "record_lost",
            Self::ExecDenied => "exec_denied",
            Self::OpenDenied => "open_denied",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain `repr(C)` integer structs with explicit padding, valid for any bit pattern.
    unsafe impl aya::Pod for FileKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ExecRule {}
    // SAFETY: as above.
    unsafe impl aya::Pod for NetPolicy {}
    // SAFETY: as above.
    unsafe impl aya::Pod for NetKeyV4 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for NetKeyV6 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for NetRule {}
    // SAFETY: as above.
    unsafe impl aya::Pod for EnforceControl {}
    // SAFETY: as above.
    unsafe impl aya::Pod for EnforceRecord {}
}
