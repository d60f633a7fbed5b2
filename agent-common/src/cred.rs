//! Credential changes: a task's ids, securebits and capability sets before and after a syscall
//! that changed them (the setuid family, capset, and the prctl options that touch credentials).

use crate::event::Header;

/// `prctl` options that can change the calling task's credentials; any other option is not
/// watched (prctl is common: `PR_SET_NAME` and friends must cost nothing more).
pub const PR_SET_KEEPCAPS: u64 = 8;
pub const PR_CAPBSET_DROP: u64 = 24;
pub const PR_SET_SECUREBITS: u64 = 28;
pub const PR_CAP_AMBIENT: u64 = 47;

/// The credential fields Vigil reports, as `struct cred` holds them. A capability set is read
/// as 8 bytes at its member: `kernel_cap_t` is `{ u64 val; }` since Linux 6.3 and
/// `{ u32 cap[2]; }` before, the same bytes on a little-endian machine.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CredSnapshot {
    pub uid: u32,
    pub gid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub euid: u32,
    pub egid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    /// `SECBIT_*` bits.
    pub securebits: u32,
    pub _pad: u32,
    pub cap_inheritable: u64,
    pub cap_permitted: u64,
    pub cap_effective: u64,
    pub cap_bset: u64,
    /// Zero with [`CRED_NO_AMBIENT`].
    pub cap_ambient: u64,
}

const _: () = assert!(size_of::<CredSnapshot>() == 80);
const _: () = assert!(core::mem::offset_of!(CredSnapshot, cap_inheritable) == 40);

/// This kernel has no ambient capability set (before Linux 4.3): `cap_ambient` is 0.
pub const CRED_NO_AMBIENT: u32 = 1 << 0;

/// A syscall changed the calling thread's credentials. Emitted at syscall exit only when a
/// field of [`CredSnapshot`] differs between entry and exit; `header.time_ns` is the time of
/// entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CredChangeEvent {
    pub header: Header,
    /// Syscall number in the native table of the kernel's architecture.
    pub nr: u32,
    /// `CRED_*` flags.
    pub flags: u32,
    /// The return value: negative is `-errno`.
    pub ret: i64,
    pub exit_time_ns: u64,
    pub before: CredSnapshot,
    pub after: CredSnapshot,
}

const _: () = assert!(size_of::<CredChangeEvent>() == 224);
const _: () = assert!(core::mem::offset_of!(CredChangeEvent, before) == 64);
const _: () = assert!(core::mem::offset_of!(CredChangeEvent, after) == 144);
