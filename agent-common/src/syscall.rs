//! Syscall records: one per enter/exit pair of a syscall selected by the filter bitmap.

use crate::event::Header;

/// Syscall numbers at or above this are never captured (the bitmap's size). Both x86_64
/// (highest about 470) and the generic table of aarch64 (about 470) fit.
pub const SYSCALL_NR_MAX: u32 = 512;
/// Words of the filter bitmap: bit `nr % 64` of word `nr / 64` selects syscall `nr`.
pub const SYSCALL_BITMAP_WORDS: u32 = SYSCALL_NR_MAX / 64;
/// Raw arguments of a syscall.
pub const SYSCALL_ARGS: usize = 6;
/// A user string argument is copied with at most this many bytes (including its NUL).
pub const SYSCALL_STRING_MAX: usize = 256;
/// At most this many string arguments of one syscall are copied (mount has three).
pub const SYSCALL_STRINGS_MAX: usize = 3;
/// Room for the packed strings. A string starts at a masked offset (`& SYSCALL_STRINGS_MASK`)
/// and is at most [`SYSCALL_STRING_MAX`] long, so the area is the mask plus one string, which
/// lets the verifier prove every copy in bounds.
pub const SYSCALL_STRINGS_MASK: usize = 1023;
pub const SYSCALL_STRINGS_AREA: usize = SYSCALL_STRINGS_MASK + 1 + SYSCALL_STRING_MAX;

const _: () = assert!(SYSCALL_STRINGS_MAX * SYSCALL_STRING_MAX <= SYSCALL_STRINGS_MASK);

/// Argument type codes, two bits per argument in a `u32` of the arg-type map (argument `i`
/// at bits `2i..2i+2`).
pub const ARG_INT: u32 = 0;
/// A user pointer reported as a number.
pub const ARG_PTR: u32 = 1;
/// A pointer to a NUL-terminated user string, copied at enter.
pub const ARG_STR: u32 = 2;
/// A `struct sockaddr` user pointer; only as argument 1 (connect, bind, accept, accept4).
/// When argument 2 is [`ARG_INT`] it is the address's length and the address is copied at
/// enter (the caller's input); when argument 2 is [`ARG_PTR`] it points at the length and the
/// address is copied at exit, after the kernel wrote it (accept's peer).
pub const ARG_SOCKADDR: u32 = 3;
/// A socket address is copied with at most this many bytes (`sockaddr_un` is 110,
/// `sockaddr_in6` 28).
pub const SOCKADDR_MAX: usize = 128;

/// The type code of argument `i` in `types`.
#[inline(always)]
pub const fn arg_type(types: u32, i: usize) -> u32 {
    (types >> (2 * i)) & 3
}

/// A string argument was longer than the copy (`SYSCALL_STRING_MAX - 1` bytes kept).
pub const SYSCALL_STRING_TRUNCATED: u32 = 1 << 0;
/// A string argument could not be read (bad pointer, or paged out): it is empty.
pub const SYSCALL_STRING_UNREADABLE: u32 = 1 << 1;
/// More string arguments than [`SYSCALL_STRINGS_MAX`]: the rest are reported as pointers.
pub const SYSCALL_STRINGS_DROPPED: u32 = 1 << 2;
/// The socket address argument could not be read: `addr_len` is 0.
pub const SYSCALL_SOCKADDR_UNREADABLE: u32 = 1 << 3;

// `read_sockaddr` masks its length with `2 * SOCKADDR_MAX - 1` at a masked offset.
const _: () = assert!(SYSCALL_STRINGS_MASK + 2 * SOCKADDR_MAX <= SYSCALL_STRINGS_AREA);

/// A [`SocketInfo`] trails the record (after the socket address argument).
pub const SYSCALL_SOCKET_INFO: u32 = 1 << 4;

/// A socket's own view of its ends, read from `struct sock` at a network syscall's exit: the
/// local address and port (the port a bind to 0 or a connect picked, a listener's port) and
/// the remote ones (zero until connected). Addresses as the kernel holds them (network
/// order); ports in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketInfo {
    /// `skc_family`: `AF_INET`, `AF_INET6`, `AF_UNIX`...
    pub family: u16,
    /// `sk_protocol`: `IPPROTO_TCP`, `IPPROTO_UDP`... (0 for unix sockets).
    pub protocol: u16,
    pub local_port: u16,
    pub remote_port: u16,
    /// IPv4 in the first four bytes for `AF_INET`, else IPv6.
    pub local: [u8; 16],
    pub remote: [u8; 16],
}

const _: () = assert!(size_of::<SocketInfo>() == 40);
// The info goes at a masked offset after the strings and the address.
const _: () = assert!(SYSCALL_STRINGS_MASK + size_of::<SocketInfo>() <= SYSCALL_STRINGS_AREA);

/// A syscall with its raw arguments and return value.
///
/// `header.time_ns` is the time of entry; `exit_time_ns` the time of return. Trailing data:
/// the string arguments, in argument order, each `str_lens[k]` bytes (without NUL), then
/// `addr_len` bytes of the socket address argument (see [`ARG_SOCKADDR`]), then a
/// [`SocketInfo`] when `flags` has [`SYSCALL_SOCKET_INFO`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallEvent {
    pub header: Header,
    /// Syscall number in the native table of the kernel's architecture.
    pub nr: u32,
    /// `SYSCALL_*` flags.
    pub flags: u32,
    pub args: [u64; SYSCALL_ARGS],
    /// The return value: negative is `-errno`.
    pub ret: i64,
    pub exit_time_ns: u64,
    /// The arg-type word the kernel used (see [`arg_type`]): which args carry a string.
    pub arg_types: u32,
    pub str_lens: [u16; SYSCALL_STRINGS_MAX],
    /// Bytes of the copied socket address, after the strings (at most [`SOCKADDR_MAX`]).
    pub addr_len: u16,
    pub _pad: [u16; 2],
}

const _: () = assert!(size_of::<SyscallEvent>() == 128);
const _: () = assert!(core::mem::offset_of!(SyscallEvent, args) == 48);
const _: () = assert!(core::mem::offset_of!(SyscallEvent, arg_types) == 112);

/// Largest syscall record.
pub const SYSCALL_RECORD_MAX: usize = size_of::<SyscallEvent>() + SYSCALL_STRINGS_AREA;

const _: () = assert!(core::mem::offset_of!(SyscallEvent, addr_len) == 122);

/// Bit of an arg-type word (above the argument codes): the syscall's string arguments are file
/// paths, and the record is kept only when one of them starts with a watch prefix of
/// [`crate::maps::FILE_PREFIXES`] (the file sensor's syscalls).
pub const ARG_TYPES_PATH_FILTER: u32 = 1 << 31;
/// Bit of an arg-type word, with [`ARG_TYPES_PATH_FILTER`]: a relative path (not starting with
/// `/`) is kept too; the kernel cannot match it, userspace resolves it.
pub const ARG_TYPES_KEEP_RELATIVE: u32 = 1 << 30;
/// Bit of an arg-type word: the credential sensor watches this syscall. The thread's
/// credentials are stashed at enter and compared at exit; a change is emitted as a
/// [`crate::cred::CredChangeEvent`].
pub const ARG_TYPES_CRED: u32 = 1 << 29;
/// Bit of an arg-type word, with [`ARG_TYPES_CRED`]: only when argument 0 is one of the prctl
/// options that change credentials (`crate::cred::PR_*`).
pub const ARG_TYPES_CRED_PRCTL: u32 = 1 << 28;
/// Bit of an arg-type word: no syscall record. The syscall is in the bitmap only for a sensor
/// that rides on the hooks without one (credentials); the syscall sensor did not select it.
pub const ARG_TYPES_NO_RECORD: u32 = 1 << 27;
/// Bit of an arg-type word: argument 2 points at a `struct open_how` (openat2), whose `flags`
/// and `mode` the kernel copies at enter into arguments 4 and 5, which openat2 does not have.
pub const ARG_TYPES_OPEN_HOW: u32 = 1 << 26;
/// Bit of an arg-type word (the network syscalls): at exit, the socket's own addresses are
/// read from the kernel's `struct sock` and appended as a [`SocketInfo`]. The socket is the
/// fd in argument 0, or the returned fd for accept (argument 1 [`ARG_SOCKADDR`], argument 2
/// [`ARG_PTR`]).
pub const ARG_TYPES_SOCKET: u32 = 1 << 25;

// The flag bits stay clear of the argument codes (two bits per argument).
const _: () = assert!(
    (ARG_TYPES_PATH_FILTER
        | ARG_TYPES_KEEP_RELATIVE
        | ARG_TYPES_CRED
        | ARG_TYPES_CRED_PRCTL
        | ARG_TYPES_NO_RECORD
        | ARG_TYPES_OPEN_HOW
        | ARG_TYPES_SOCKET)
        & ((1 << (2 * SYSCALL_ARGS)) - 1)
        == 0
);

/// Watch prefixes the kernel holds at most.
pub const FILE_PREFIXES_MAX: u32 = 32;
/// Longest watch prefix in bytes.
pub const FILE_PREFIX_LEN: usize = 64;
/// 64-bit words of a prefix.
pub const FILE_PREFIX_WORDS: usize = FILE_PREFIX_LEN / 8;

/// One watch prefix as the kernel compares it: a path matches when, for every word `w` whose
/// mask is non-zero, the path's bytes `8w..8w+8` read as a native-endian `u64` and masked
/// equal `words[w]`. The masks are all ones, then one partial mask, then zero; an entry whose
/// first mask is zero ends the list.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilePrefix {
    pub words: [u64; FILE_PREFIX_WORDS],
    pub masks: [u64; FILE_PREFIX_WORDS],
}

const _: () = assert!(size_of::<FilePrefix>() == 128);
// The compare reads a prefix's words at a string's masked offset.
const _: () = assert!(SYSCALL_STRINGS_MASK + FILE_PREFIX_LEN <= SYSCALL_STRINGS_AREA);

impl FilePrefix {
    /// The entry for `prefix` (`None`: empty or longer than [`FILE_PREFIX_LEN`]).
    pub fn new(prefix: &[u8]) -> Option<Self> {
        if prefix.is_empty() || prefix.len() > FILE_PREFIX_LEN {
            return None;
        }
        let mut entry = Self::default();
        for (w, chunk) in prefix.chunks(8).enumerate() {
            let mut bytes = [0u8; 8];
            let mut mask = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            mask[..chunk.len()].fill(0xff);
            entry.words[w] = u64::from_ne_bytes(bytes);
            entry.masks[w] = u64::from_ne_bytes(mask);
        }
        Some(entry)
    }

    /// Whether `path` starts with this prefix, as the kernel decides it (the kernel's copy has
    /// a NUL after the path, which never equals a prefix byte).
    pub fn matches(&self, path: &[u8]) -> bool {
        (0..FILE_PREFIX_WORDS)
            .take_while(|&w| self.masks[w] != 0)
            .all(|w| {
                let mut bytes = [0u8; 8];
                let start = (8 * w).min(path.len());
                let end = (8 * w + 8).min(path.len());
                bytes[..end - start].copy_from_slice(&path[start..end]);
                u64::from_ne_bytes(bytes) & self.masks[w] == self.words[w]
            })
    }
}

#[cfg(feature = "user")]
// SAFETY: plain `repr(C)` struct of `u64`s, no padding, valid for any bit pattern.
unsafe impl aya::Pod for FilePrefix {}

/// The bytes of a path that pick, through [`file_prefix_index`], the watch prefixes worth
/// comparing: the one after the leading `/`, and the sixth, the first of the second component
/// under a four-letter top folder (`/etc/`, `/var/`, `/usr/`, `/run/`).
pub const FILE_PREFIX_INDEX_AT: [usize; 2] = [1, 5];
/// Entries of [`crate::maps::FILE_PREFIX_INDEX`]: one per value of each of those bytes.
pub const FILE_PREFIX_INDEX_ENTRIES: u32 = 256 * FILE_PREFIX_INDEX_AT.len() as u32;

// One bit per prefix; the bytes are in a prefix's first word.
const _: () = assert!(FILE_PREFIXES_MAX <= u32::BITS);
const _: () = assert!(FILE_PREFIX_INDEX_AT[0] < 8 && FILE_PREFIX_INDEX_AT[1] < 8);

/// The kernel's index of `prefixes` (its list, in order). For the `i`-th byte of
/// [`FILE_PREFIX_INDEX_AT`], entry `256 * i + b` has bit `p` set when prefix `p` can match a
/// path whose byte there is `b`: the prefix has `b` there, or is too short to have a byte
/// there. A path's candidates are the prefixes set in both of its entries; only those are
/// compared. A path shorter than a byte's position has a NUL or stale bytes there, which can
/// only drop prefixes that are longer than the path and so could not match it.
pub fn file_prefix_index(prefixes: &[FilePrefix]) -> [u32; FILE_PREFIX_INDEX_ENTRIES as usize] {
    let mut index = [0u32; FILE_PREFIX_INDEX_ENTRIES as usize];
    for (p, prefix) in prefixes.iter().take(FILE_PREFIXES_MAX as usize).enumerate() {
        let bit = 1u32 << p;
        let (words, masks) = (prefix.words[0].to_ne_bytes(), prefix.masks[0].to_ne_bytes());
        for (i, &at) in FILE_PREFIX_INDEX_AT.iter().enumerate() {
            let table = &mut index[256 * i..256 * (i + 1)];
            if masks[at] == 0 {
                table.iter_mut().for_each(|entry| *entry |= bit);
            } else {
                table[usize::from(words[at])] |= bit;
            }
        }
    }
    index
}
