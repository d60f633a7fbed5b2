//! How the arguments of the syscalls Vigil knows are named and decoded, and which of them
//! the kernel must copy as strings.

use vigil_common::syscall::{ARG_INT, ARG_PTR, ARG_SOCKADDR, ARG_STR, SYSCALL_ARGS};

use super::names::{
    BPF_COMMANDS, CLONE_FLAGS, KEYCTL_OPERATIONS, MFD_FLAGS, MOUNT_FLAGS, PTRACE_REQUESTS,
    UMOUNT_FLAGS, flag_names, indexed_name, value_name,
};

/// How one argument is read and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A C `int` (fd, pid, ...): the low 32 bits, signed.
    Int,
    /// A size or count.
    Uint,
    /// A number best read in hex (flags without names, addresses that are not pointers).
    Hex,
    /// A user pointer, shown as an address.
    Ptr,
    /// A NUL-terminated user string, copied by the kernel at entry.
    Str,
    /// A `struct sockaddr` pointer (argument 1 only), copied by the kernel at entry or, when
    /// argument 2 is a [`Ptr`] to its length, at exit; decoded by the network sensor.
    Sockaddr,
    /// A uid or gid (`-1`: unchanged).
    Id,
    CloneFlags,
    MfdFlags,
    MountFlags,
    UmountFlags,
    PtraceRequest,
    BpfCommand,
    KeyctlOperation,
}

impl ArgKind {
    /// The kernel's two-bit type code for this argument.
    pub const fn code(self) -> u32 {
        match self {
            Self::Str => ARG_STR,
            Self::Ptr => ARG_PTR,
            Self::Sockaddr => ARG_SOCKADDR,
            Self::Int
            | Self::Uint
            | Self::Hex
            | Self::Id
            | Self::CloneFlags
            | Self::MfdFlags
            | Self::MountFlags
            | Self::UmountFlags
            | Self::PtraceRequest
            | Self::BpfCommand
            | Self::KeyctlOperation => ARG_INT,
        }
    }
}

/// An argument's decoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgValue {
    Int(i64),
    Uint(u64),
    /// A number shown in hex (pointers, unnamed flags).
    Hex(u64),
    /// A user string as the kernel copied it.
    Str {
        bytes: Vec<u8>,
        truncated: bool,
    },
    /// A user string the kernel could not read (or did not copy): its address.
    Unread(u64),
    /// Flags or a command by name (`A|B|0xrest`, or the number when unknown).
    Named {
        raw: u64,
        names: String,
    },
}

/// The named arguments of one syscall.
pub type Spec = &'static [(&'static str, ArgKind)];

use ArgKind::{
    BpfCommand, CloneFlags, Hex, Id, Int, KeyctlOperation, MfdFlags, MountFlags, Ptr,
    PtraceRequest, Sockaddr, Str, Uint, UmountFlags,
};

/// Argument names and kinds of the syscalls of the default security set.
const SPECS: &[(&str, Spec)] = &[
    (
        "ptrace",
        &[
            ("request", PtraceRequest),
            ("pid", Int),
            ("addr", Ptr),
            ("data", Ptr),
        ],
    ),
    ("process_vm_readv", PROCESS_VM),
    ("process_vm_writev", PROCESS_VM),
    (
        "init_module",
        &[("module_image", Ptr), ("len", Uint), ("param_values", Str)],
    ),
    (
        "finit_module",
        &[("fd", Int), ("param_values", Str), ("flags", Hex)],
    ),
    ("delete_module", &[("name", Str), ("flags", Hex)]),
    ("bpf", &[("cmd", BpfCommand), ("attr", Ptr), ("size", Uint)]),
    (
        "perf_event_open",
        &[
            ("attr", Ptr),
            ("pid", Int),
            ("cpu", Int),
            ("group_fd", Int),
            ("flags", Hex),
        ],
    ),
    (
        "mount",
        &[
            ("source", Str),
            ("target", Str),
            ("fstype", Str),
            ("flags", MountFlags),
            ("data", Ptr),
        ],
    ),
    ("umount2", &[("target", Str), ("flags", UmountFlags)]),
    ("pivot_root", &[("new_root", Str), ("put_old", Str)]),
    ("chroot", &[("path", Str)]),
    ("unshare", &[("flags", CloneFlags)]),
    ("setns", &[("fd", Int), ("nstype", CloneFlags)]),
    ("memfd_create", &[("name", Str), ("flags", MfdFlags)]),
    (
        "execveat",
        &[
            ("dirfd", Int),
            ("pathname", Str),
            ("argv", Ptr),
            ("envp", Ptr),
            ("flags", Hex),
        ],
    ),
    (
        "kexec_load",
        &[
            ("entry", Hex),
            ("nr_segments", Uint),
            ("segments", Ptr),
            ("flags", Hex),
        ],
    ),
    (
        "kexec_file_load",
        &[
            ("kernel_fd", Int),
            ("initrd_fd", Int),
            ("cmdline_len", Uint),
            ("cmdline", Str),
            ("flags", Hex),
        ],
    ),
    ("setuid", &[("uid", Id)]),
    ("setgid", &[("gid", Id)]),
    ("setreuid", &[("ruid", Id), ("euid", Id)]),
    ("setregid", &[("rgid", Id), ("egid", Id)]),
    ("setresuid", &[("ruid", Id), ("euid", Id), ("suid", Id)]),
    ("setresgid", &[("rgid", Id), ("egid", Id), ("sgid", Id)]),
    ("capset", &[("header", Ptr), ("data", Ptr)]),
    (
        "keyctl",
        &[
            ("operation", KeyctlOperation),
            ("arg2", Hex),
            ("arg3", Hex),
            ("arg4", Hex),
            ("arg5", Hex),
        ],
    ),
    ("personality", &[("persona", Hex)]),
    (
        "open_by_handle_at",
        &[("mount_fd", Int), ("handle", Ptr), ("flags", Hex)],
    ),
    ("userfaultfd", &[("flags", Hex)]),
    // The network sensor's: the address is read by the kernel (see `Sockaddr`).
    (
        "connect",
        &[("fd", Int), ("addr", Sockaddr), ("addrlen", Uint)],
    ),
    (
        "bind",
        &[("fd", Int), ("addr", Sockaddr), ("addrlen", Uint)],
    ),
    (
        "accept",
        &[("fd", Int), ("addr", Sockaddr), ("addrlen", Ptr)],
    ),
    (
        "accept4",
        &[
            ("fd", Int),
            ("addr", Sockaddr),
            ("addrlen", Ptr),
            ("flags", Hex),
        ],
    ),
    ("listen", &[("fd", Int), ("backlog", Int)]),
    // The file sensor's: the paths are compared with the watch prefixes by the kernel.
    ("open", &[("path", Str), ("flags", Hex), ("mode", Hex)]),
    (
        "openat",
        &[("dirfd", Int), ("path", Str), ("flags", Hex), ("mode", Hex)],
    ),
    (
        "openat2",
        &[("dirfd", Int), ("path", Str), ("how", Ptr), ("size", Uint)],
    ),
    ("creat", &[("path", Str), ("mode", Hex)]),
    ("rename", &[("oldpath", Str), ("newpath", Str)]),
    (
        "renameat",
        &[
            ("olddirfd", Int),
            ("oldpath", Str),
            ("newdirfd", Int),
            ("newpath", Str),
        ],
    ),
    (
        "renameat2",
        &[
            ("olddirfd", Int),
            ("oldpath", Str),
            ("newdirfd", Int),
            ("newpath", Str),
            ("flags", Hex),
        ],
    ),
    ("unlink", &[("path", Str)]),
    ("unlinkat", &[("dirfd", Int), ("path", Str), ("flags", Hex)]),
    ("chmod", &[("path", Str), ("mode", Hex)]),
    ("fchmodat", &[("dirfd", Int), ("path", Str), ("mode", Hex)]),
    ("chown", &[("path", Str), ("owner", Id), ("group", Id)]),
    ("lchown", &[("path", Str), ("owner", Id), ("group", Id)]),
    (
        "fchownat",
        &[
            ("dirfd", Int),
            ("path", Str),
            ("owner", Id),
            ("group", Id),
            ("flags", Hex),
        ],
    ),
    ("truncate", &[("path", Str), ("length", Uint)]),
];

const PROCESS_VM: Spec = &[
    ("pid", Int),
    ("local_iov", Ptr),
    ("liovcnt", Uint),
    ("remote_iov", Ptr),
    ("riovcnt", Uint),
    ("flags", Hex),
];

/// Raw arguments of syscalls without a spec: all six, as numbers.
const UNKNOWN: Spec = &[
    ("arg0", Hex),
    ("arg1", Hex),
    ("arg2", Hex),
    ("arg3", Hex),
    ("arg4", Hex),
    ("arg5", Hex),
];

/// The spec of syscall `name` (six raw arguments for one Vigil has none for).
pub fn spec(name: &str) -> Spec {
    SPECS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(UNKNOWN, |&(_, spec)| spec)
}

/// Whether Vigil names the arguments of `name`.
pub fn has_spec(name: &str) -> bool {
    SPECS.iter().any(|(n, _)| *n == name)
}

/// The kernel's arg-type word for `spec`: two bits per argument.
pub fn type_word(spec: Spec) -> u32 {
    spec.iter()
        .take(SYSCALL_ARGS)
        .enumerate()
        .fold(0, |word, (i, (_, kind))| word | (kind.code() << (2 * i)))
}

/// Decodes one raw argument; `string` is the next copied string when `kind` is [`Str`]
/// (`None` if the kernel did not copy one).
pub fn decode(kind: ArgKind, raw: u64, string: Option<(&[u8], bool)>) -> ArgValue {
    let named = |names: String| ArgValue::Named { raw, names };
    match kind {
        Int => ArgValue::Int(i64::from(raw as u32 as i32)),
        Uint => ArgValue::Uint(raw),
        Hex | Ptr | Sockaddr => ArgValue::Hex(raw),
        Id => ArgValue::Int(i64::from(raw as u32 as i32)),
        Str => match string {
            Some((bytes, truncated)) => ArgValue::Str {
                bytes: bytes.to_vec(),
                truncated,
            },
            None => ArgValue::Unread(raw),
        },
        CloneFlags => named(flag_names(raw & 0xffff_ffff, CLONE_FLAGS)),
        MfdFlags => named(flag_names(raw & 0xffff_ffff, MFD_FLAGS)),
        MountFlags => {
            // The pre-2.4 "magic" in the upper half means nothing today.
            let flags = if raw & 0xffff_0000 == 0xc0ed_0000 {
                raw & 0xffff
            } else {
                raw
            };
            named(flag_names(flags & 0xffff_ffff, MOUNT_FLAGS))
        }
        UmountFlags => named(flag_names(raw & 0xffff_ffff, UMOUNT_FLAGS)),
        PtraceRequest => named(value_name(raw, PTRACE_REQUESTS)),
        BpfCommand => named(indexed_name(raw & 0xffff_ffff, BPF_COMMANDS)),
        KeyctlOperation => named(indexed_name(raw & 0xffff_ffff, KEYCTL_OPERATIONS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_copies_its_three_strings() {
        let word = type_word(spec("mount"));
        assert_eq!(word, ARG_STR | ARG_STR << 2 | ARG_STR << 4 | ARG_PTR << 8);
        assert_eq!(type_word(spec("unshare")), ARG_INT);
        assert_eq!(type_word(spec("no_such")), 0);
        // Copied at enter (length by value) or at exit (length by pointer).
        assert_eq!(type_word(spec("connect")), ARG_SOCKADDR << 2);
        assert_eq!(type_word(spec("accept")), ARG_SOCKADDR << 2 | ARG_PTR << 4);
    }

    #[test]
    fn no_spec_has_more_strings_than_the_kernel_copies() {
        for (name, spec) in SPECS {
            assert!(spec.len() <= SYSCALL_ARGS, "{name}");
            let strings = spec.iter().filter(|(_, k)| *k == Str).count();
            assert!(
                strings <= vigil_common::syscall::SYSCALL_STRINGS_MAX,
                "{name}"
            );
        }
    }

    #[test]
    fn arguments_decode_by_kind() {
        assert_eq!(decode(Int, 0xffff_ffff, None), ArgValue::Int(-1));
        assert_eq!(decode(Id, 0, None), ArgValue::Int(0));
        assert_eq!(decode(Uint, 7, None), ArgValue::Uint(7));
        assert_eq!(decode(Str, 0x1000, None), ArgValue::Unread(0x1000));
        assert_eq!(
            decode(Str, 0x1000, Some((b"tmpfs", false))),
            ArgValue::Str {
                bytes: b"tmpfs".to_vec(),
                truncated: false
            }
        );
        assert_eq!(
            decode(CloneFlags, 0x400_0000, None),
            ArgValue::Named {
                raw: 0x400_0000,
                names: "CLONE_NEWUTS".into()
            }
        );
        let ArgValue::Named { names, .. } = decode(MountFlags, 0xc0ed_0000 | 1 | 1 << 12, None)
        else {
            panic!("named");
        };
        assert_eq!(names, "MS_RDONLY|MS_BIND");
        let ArgValue::Named { names, .. } = decode(BpfCommand, 5, None) else {
            panic!("named");
        };
        assert_eq!(names, "BPF_PROG_LOAD");
    }
}
