//! Every map and global of the object. Names must match `vigil_common::maps`.

#[cfg(feature = "task-storage")]
use aya_ebpf::macros::btf_map;
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use vigil_common::{
    config::KernelConfig,
    maps::{
        CRED_STASH_ENTRIES, EVENTS_SIZE_DEFAULT, GROUP_EXITS_ENTRIES, IN_CONNECT_SLOTS,
        SYSCALL_CGROUPS_ENTRIES, SYSCALL_STASH_ENTRIES, TCP_OWNERS_ENTRIES,
    },
    offsets::KernelOffsets,
    stats::KernelCounter,
    syscall::{
        FILE_PREFIX_INDEX_ENTRIES, FILE_PREFIXES_MAX, FilePrefix, SYSCALL_BITMAP_WORDS,
        SYSCALL_NR_MAX, SYSCALL_STRINGS_AREA, SyscallEvent,
    },
};

/// Size of the per-CPU scratch buffer where an exec record is assembled. Offsets into it are
/// masked with [`SCRATCH_MASK`], and no single write is longer than `SCRATCH_SIZE / 2`, so the
/// verifier can prove every access in bounds. The largest record (`EXEC_RECORD_MAX`) stays
/// below `SCRATCH_MASK`, so masking never wraps a write onto earlier sections.
pub const SCRATCH_SIZE: usize = 32 * 1024;
pub const SCRATCH_MASK: usize = SCRATCH_SIZE / 2 - 1;

const _: () = assert!(vigil_common::process::EXEC_RECORD_MAX + 256 < SCRATCH_MASK);

#[repr(C)]
pub struct Scratch {
    pub buf: [u8; SCRATCH_SIZE],
}

/// Slots of the scratch buffer past anything a masked write reaches, where the exec program
/// parks a position between steps (`helpers::opaque`): its last 32 bytes. Not fields of their
/// own: a per-CPU value may not exceed 32 KiB.
pub const SCRATCH_CURSOR: usize = SCRATCH_SIZE - 8;
/// The path walk's length so far (see [`SCRATCH_CURSOR`]).
pub const SCRATCH_WALK_LEN: usize = SCRATCH_SIZE - 16;
/// The mount a path walk crosses into (see [`SCRATCH_CURSOR`]).
pub const SCRATCH_WALK_MNT: usize = SCRATCH_SIZE - 24;
/// The path walk's steps so far when it crosses a mount (see [`SCRATCH_CURSOR`]).
pub const SCRATCH_WALK_STEPS: usize = SCRATCH_SIZE - 32;

const _: () = assert!(SCRATCH_MASK + vigil_common::process::ARGV_MAX + 256 < SCRATCH_WALK_STEPS);

/// `vigil_common::maps::EVENTS`: every record, all CPUs. Userspace may resize it before load.
#[map(name = "VIGIL_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_SIZE_DEFAULT, 0);

/// `vigil_common::maps::READER`: whether the reader sleeps until woken (1) or drains on its
/// timer (0), written by the reader.
#[map(name = "VIGIL_READER")]
pub static READER: Array<u32> = Array::with_max_entries(1, 0);

/// `vigil_common::maps::STATS`: per-CPU counters indexed by `KernelCounter`.
#[map(name = "VIGIL_STATS")]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(KernelCounter::COUNT, 0);

/// `vigil_common::maps::SCRATCH`: one assembly buffer per CPU.
#[map(name = "VIGIL_SCRATCH")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// A syscall record under construction: the fixed part and room for its packed strings.
#[repr(C)]
pub struct SyscallRecord {
    pub event: SyscallEvent,
    pub strings: [u8; SYSCALL_STRINGS_AREA],
    /// In [`TASK_STASH`], whose entry outlives the syscall: 1 from a kept enter to its exit.
    pub pending: u64,
}

// A string at an offset that is a multiple of 8 can be read a word at a time.
const _: () = assert!(core::mem::offset_of!(SyscallRecord, strings) % 8 == 0);

/// `vigil_common::maps::SYSCALL_FILTER`: the selected syscalls, filled by userspace.
#[map(name = "VIGIL_SYSCALL_FILTER")]
pub static SYSCALL_FILTER: Array<u64> = Array::with_max_entries(SYSCALL_BITMAP_WORDS, 0);

/// `vigil_common::maps::SYSCALL_ARG_TYPES`: two bits per argument, by syscall number.
#[map(name = "VIGIL_SYSCALL_ARGS")]
pub static SYSCALL_ARG_TYPES: Array<u32> = Array::with_max_entries(SYSCALL_NR_MAX, 0);

/// `vigil_common::maps::FILE_PREFIXES`: the file sensor's watch prefixes, packed from index 0.
#[map(name = "VIGIL_FILE_PREFIXES")]
pub static FILE_PREFIXES: Array<FilePrefix> = Array::with_max_entries(FILE_PREFIXES_MAX, 0);

/// `vigil_common::maps::FILE_PREFIX_INDEX`: by a path's byte after the `/` (the first 256
/// entries) and by its sixth (the next 256), the bits of the watch prefixes it can match.
#[map(name = "VIGIL_FILE_PREFIX_INDEX")]
pub static FILE_PREFIX_INDEX: Array<u32> = Array::with_max_entries(FILE_PREFIX_INDEX_ENTRIES, 0);

/// `vigil_common::maps::SYSCALL_CGROUPS`: cgroup ids whose syscalls are captured, when the
/// cgroup filter is on.
#[map(name = "VIGIL_SYSCALL_CGROUPS")]
pub static SYSCALL_CGROUPS: HashMap<u64, u8> =
    HashMap::with_max_entries(SYSCALL_CGROUPS_ENTRIES, 0);

/// `vigil_common::maps::SYSCALL_STASH`: pid_tgid -> the record of the syscall that thread is
/// in, from enter to exit.
#[map(name = "VIGIL_SYSCALL_STASH")]
pub static SYSCALL_STASH: HashMap<u64, SyscallRecord> =
    HashMap::with_max_entries(SYSCALL_STASH_ENTRIES, 0);

/// A BTF-defined task local storage map (aya-ebpf 0.2 declares the other local storages,
/// not this one): the same member layout as its `btf_map_def!`, which the loader reads from
/// the object's BTF. Its value lives with the task and is freed with it.
#[cfg(feature = "task-storage")]
#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; aya_ebpf::bindings::bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; aya_ebpf::bindings::BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the members are placeholders the loader reads from BTF; nothing dereferences them.
#[cfg(feature = "task-storage")]
unsafe impl<T> Sync for TaskStorage<T> {}

#[cfg(feature = "task-storage")]
impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        Self {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }
}

/// `vigil_common::maps::TASK_STASH`: the record of the syscall a thread is in, kept in the
/// thread's task local storage (see `helpers::stash`).
#[cfg(feature = "task-storage")]
#[btf_map(name = "VIGIL_TASK_STASH")]
pub static TASK_STASH: TaskStorage<SyscallRecord> = TaskStorage::new();

/// The object for kernels without task local storage: a placeholder of the same name, which
/// the `tp_btf` syscall programs (refused there anyway) pass to the task-storage helper.
#[cfg(not(feature = "task-storage"))]
#[map(name = "VIGIL_TASK_STASH")]
pub static TASK_STASH: Array<u8> = Array::with_max_entries(1, 0);

/// `vigil_common::maps::IN_CONNECT`: the threads inside connect or bind, by thread id, for
/// the TCP state program, which may run in another task's context, and the outcome it saw
/// decided inside the syscall. An array, whose lookups the verifier inlines: the hash maps it
/// replaces cost connect's enter 17% of its time in an update, its exit two deletes and the
/// TCP state program an LRU update (connect storm profile, 1 December 2026).
#[map(name = "VIGIL_IN_CONNECT")]
pub static IN_CONNECT: Array<ConnectSlot> = Array::with_max_entries(IN_CONNECT_SLOTS, 0);

/// One slot of [`IN_CONNECT`].
#[repr(C)]
pub struct ConnectSlot {
    /// pid_tgid of the thread inside connect or bind; 0 when none is.
    pub thread: u64,
    /// 1 when `outcome` holds a connect outcome not reported yet.
    pub has_outcome: u64,
    pub outcome: vigil_common::network::TcpStateEvent,
}

/// Per-CPU assembly space for a syscall record at enter (too big for the stack).
#[map(name = "VIGIL_SYSCALL_SCRATCH")]
pub static SYSCALL_SCRATCH: PerCpuArray<SyscallRecord> = PerCpuArray::with_max_entries(1, 0);

/// A credential-change record under construction (header, syscall and the credentials at
/// entry), and the `struct cred` pointer of that moment.
#[repr(C)]
pub struct CredRecord {
    pub event: vigil_common::cred::CredChangeEvent,
    /// `task->cred` at entry: the kernel replaces the pointer on every change (credentials
    /// are copy-on-write), so the same pointer at exit means nothing changed.
    pub cred: u64,
}

/// `vigil_common::maps::CRED_STASH`: pid_tgid -> the credential syscall that thread is in.
#[map(name = "VIGIL_CRED_STASH")]
pub static CRED_STASH: HashMap<u64, CredRecord> = HashMap::with_max_entries(CRED_STASH_ENTRIES, 0);

/// Per-CPU assembly space for a credential record at enter (kept off the 512-byte stack,
/// which the syscall path already uses).
#[map(name = "VIGIL_CRED_SCRATCH")]
pub static CRED_SCRATCH: PerCpuArray<CredRecord> = PerCpuArray::with_max_entries(1, 0);

/// `vigil_common::maps::GROUP_EXITS`: groups whose exit a thread has claimed, keyed by the
/// group's ids with `pid` set to the tgid. LRU: nothing deletes an entry, since how many
/// threads will still come to claim it is unknown; the (tgid, start time) key is never reused.
#[map(name = "VIGIL_GROUP_EXITS")]
pub static GROUP_EXITS: LruHashMap<crate::helpers::task::TaskIds, u8> =
    LruHashMap::with_max_entries(GROUP_EXITS_ENTRIES, 0);

/// `vigil_common::maps::TCP_OWNERS`: `struct sock` address -> the task that connected it.
/// LRU: a socket whose close Vigil never saw ages out instead of filling the map.
#[map(name = "VIGIL_TCP_OWNERS")]
pub static TCP_OWNERS: LruHashMap<u64, crate::programs::network::Owner> =
    LruHashMap::with_max_entries(TCP_OWNERS_ENTRIES, 0);

/// A DNS record under construction: the fixed part and room for the payload.
#[repr(C)]
pub struct DnsRecord {
    pub event: vigil_common::network::DnsEvent,
    pub payload: [u8; vigil_common::network::DNS_PAYLOAD_MAX],
}

/// Per-CPU assembly space for a DNS record (its own: the DNS program may interrupt a
/// tracing program that is using `SCRATCH`).
#[map(name = "VIGIL_DNS_SCRATCH")]
pub static DNS_SCRATCH: PerCpuArray<DnsRecord> = PerCpuArray::with_max_entries(1, 0);

/// `vigil_common::maps::EXEC_DENY`: denied executables and directories (kill-on-exec).
/// Pinned by userspace; written only by userspace, except the rule's hit counter.
#[map(name = "VIGIL_EXEC_DENY")]
pub static EXEC_DENY: HashMap<vigil_common::enforce::FileKey, vigil_common::enforce::ExecRule> =
    HashMap::with_max_entries(vigil_common::enforce::EXEC_DENY_ENTRIES, 0);

/// `vigil_common::maps::OPEN_DENY`: files and directories whose open is refused (BPF-LSM).
/// Pinned by userspace; written only by userspace, except the rule's hit counter.
#[map(name = "VIGIL_OPEN_DENY")]
pub static OPEN_DENY: HashMap<vigil_common::enforce::FileKey, vigil_common::enforce::ExecRule> =
    HashMap::with_max_entries(vigil_common::enforce::OPEN_DENY_ENTRIES, 0);

/// `vigil_common::maps::NET_POLICY`: cgroup id -> network policy (connect deny).
#[map(name = "VIGIL_NET_POLICY")]
pub static NET_POLICY: HashMap<u64, vigil_common::enforce::NetPolicy> =
    HashMap::with_max_entries(vigil_common::enforce::NET_POLICY_ENTRIES, 0);

/// `vigil_common::maps::NET_DENY_V4`: (cgroup id, IPv4 prefix) -> denied ports.
#[map(name = "VIGIL_NET_DENY_V4")]
pub static NET_DENY_V4: LpmTrie<vigil_common::enforce::NetKeyV4, vigil_common::enforce::NetRule> =
    LpmTrie::with_max_entries(vigil_common::enforce::NET_CIDR_ENTRIES, 0);

/// `vigil_common::maps::NET_DENY_V6`: (cgroup id, IPv6 prefix) -> denied ports.
#[map(name = "VIGIL_NET_DENY_V6")]
pub static NET_DENY_V6: LpmTrie<vigil_common::enforce::NetKeyV6, vigil_common::enforce::NetRule> =
    LpmTrie::with_max_entries(vigil_common::enforce::NET_CIDR_ENTRIES, 0);

/// `vigil_common::maps::ENFORCE_CONTROL`: rule counts, so that the enforcement programs
/// return at once when there is nothing to enforce.
#[map(name = "VIGIL_ENFORCE_CTL")]
pub static ENFORCE_CONTROL: Array<vigil_common::enforce::EnforceControl> =
    Array::with_max_entries(1, 0);

/// `vigil_common::maps::ENFORCE_EVENTS`: one record per action taken in the kernel.
#[map(name = "VIGIL_ENFORCE_EVENTS")]
pub static ENFORCE_EVENTS: RingBuf =
    RingBuf::with_byte_size(vigil_common::enforce::ENFORCE_EVENTS_SIZE, 0);

/// `vigil_common::maps::ENFORCE_STATS`: per-CPU counters indexed by `EnforceCounter`.
#[map(name = "VIGIL_ENFORCE_STATS")]
pub static ENFORCE_STATS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(vigil_common::enforce::EnforceCounter::COUNT, 0);

/// `vigil_common::maps::GLOBAL_OFFSETS`, filled from BTF by userspace before load.
#[unsafe(no_mangle)]
pub static VIGIL_OFFSETS: KernelOffsets = KernelOffsets::MISSING;

/// `vigil_common::maps::GLOBAL_CONFIG`, set by userspace before load.
#[unsafe(no_mangle)]
pub static VIGIL_CONFIG: KernelConfig = KernelConfig::DEFAULT;

/// Reads one kernel offset. The volatile read keeps the compiler from folding the
/// placeholder value in; the verifier sees the value userspace wrote into .rodata.
macro_rules! offset {
    ($field:ident) => {
        // SAFETY: reading a field of an immutable global.
        unsafe { core::ptr::read_volatile(&raw const $crate::maps::VIGIL_OFFSETS.$field) }
    };
}
pub(crate) use offset;

/// Reads one field of the kernel config (see [`offset`]).
macro_rules! config {
    ($field:ident) => {
        // SAFETY: reading a field of an immutable global.
        unsafe { core::ptr::read_volatile(&raw const $crate::maps::VIGIL_CONFIG.$field) }
    };
}
pub(crate) use config;

/// Adds one to a per-CPU counter.
#[inline(always)]
pub fn count(counter: KernelCounter) {
    if let Some(slot) = STATS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it and programs do not preempt each other
        // on the same CPU for these hooks.
        unsafe { *slot += 1 };
    }
}
