//! The syscall sensor's userspace half: syscall names and numbers per architecture, the
//! argument specs, the filter the kernel is given, and decoding of the captured arguments.

pub mod args;
mod config;
pub mod names;
mod table;

use vigil_common::syscall::{
    ARG_STR, ARG_TYPES_CRED, ARG_TYPES_CRED_PRCTL, ARG_TYPES_NO_RECORD, SYSCALL_ARGS,
    SYSCALL_BITMAP_WORDS, SYSCALL_NR_MAX, SYSCALL_STRINGS_MAX, arg_type,
};

pub use self::{
    args::{ArgKind, ArgValue},
    config::{Selection, SyscallsConfig},
};

/// The syscall numberings Vigil knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this agent was built for (the kernel's, since the agent runs on it).
    pub const NATIVE: Self = if cfg!(target_arch = "aarch64") {
        Self::Aarch64
    } else {
        Self::X86_64
    };

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Self::X86_64 => table::X86_64,
            Self::Aarch64 => table::AARCH64,
        }
    }

    /// The number of syscall `name`, if this architecture has it (and Vigil knows it).
    pub fn number(self, name: &str) -> Option<u32> {
        self.table()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, nr)| nr)
    }

    /// The name of syscall `nr`, if Vigil knows it.
    pub fn name(self, nr: u32) -> Option<&'static str> {
        self.table()
            .binary_search_by_key(&nr, |&(_, n)| n)
            .ok()
            .map(|i| self.table()[i].0)
    }
}

/// The default security set (issue 3): what a security team wants on by default.
pub const DEFAULT_SET: &[&str] = &[
    "ptrace",
    "process_vm_writev",
    "process_vm_readv",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "memfd_create",
    "execveat",
    "kexec_load",
    "kexec_file_load",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "capset",
    "keyctl",
    "personality",
    "open_by_handle_at",
    "userfaultfd",
];

/// What the kernel side is told: the selection bitmap and each selected syscall's arg types.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelFilter {
    pub bitmap: [u64; SYSCALL_BITMAP_WORDS as usize],
    /// (syscall number, two-bit type word) for every selected syscall.
    pub arg_types: Vec<(u32, u32)>,
}

impl KernelFilter {
    /// The filter for `names` on `arch`; the first name `arch` does not have is the error.
    pub fn new<'a>(arch: Arch, names: impl IntoIterator<Item = &'a str>) -> Result<Self, &'a str> {
        let mut filter = Self::default();
        for name in names {
            let nr = arch
                .number(name)
                .filter(|&nr| nr < SYSCALL_NR_MAX)
                .ok_or(name)?;
            filter.bitmap[(nr / 64) as usize] |= 1 << (nr % 64);
            filter
                .arg_types
                .push((nr, args::type_word(args::spec(name))));
        }
        Ok(filter)
    }

    pub fn is_empty(&self) -> bool {
        self.bitmap.iter().all(|&w| w == 0)
    }

    /// Selects syscall `nr` (below `SYSCALL_NR_MAX`) with the arg-type word `word`, merged
    /// with the word it already has.
    pub fn add(&mut self, nr: u32, word: u32) {
        self.bitmap[(nr / 64) as usize] |= 1 << (nr % 64);
        match self.arg_types.iter_mut().find(|(n, _)| *n == nr) {
            Some((_, mine)) => *mine = merge_words(*mine, word),
            None => self.arg_types.push((nr, word)),
        }
    }

    /// Adds the syscalls of `other` (another sensor's selection).
    pub fn merge(&mut self, other: &Self) {
        for (word, &theirs) in self.bitmap.iter_mut().zip(&other.bitmap) {
            *word |= theirs;
        }
        for &(nr, types) in &other.arg_types {
            self.add(nr, types);
        }
    }
}

/// Two sensors' words for one syscall. The record part (argument codes, path filter) is the
/// first word's that wants a record ([`ARG_TYPES_NO_RECORD`] clear; with
/// [`ARG_TYPES_NO_RECORD`] only when neither does); the credential bits add up.
fn merge_words(mine: u32, theirs: u32) -> u32 {
    const CRED: u32 = ARG_TYPES_CRED | ARG_TYPES_CRED_PRCTL;
    let record = if mine & ARG_TYPES_NO_RECORD == 0 || theirs & ARG_TYPES_NO_RECORD != 0 {
        mine
    } else {
        theirs
    };
    (record & !CRED) | ((mine | theirs) & CRED)
}

/// Names and decodes the raw arguments of syscall `nr` on `arch`. `arg_types` is the word the
/// kernel used; `strings` the strings it copied (with their truncation), in argument order.
pub fn decode_args(
    arch: Arch,
    nr: u32,
    raw: &[u64; SYSCALL_ARGS],
    arg_types: u32,
    strings: &[Option<(&[u8], bool)>],
) -> Vec<(&'static str, ArgValue)> {
    let spec = arch.name(nr).map_or(args::spec(""), args::spec);
    let mut next_string = 0;
    spec.iter()
        .zip(raw.iter().enumerate())
        .map(|(&(name, kind), (i, &value))| {
            // The kernel's word says whether a string was copied for this argument.
            let string = if arg_type(arg_types, i) == ARG_STR && next_string < SYSCALL_STRINGS_MAX {
                next_string += 1;
                strings.get(next_string - 1).copied().flatten()
            } else {
                None
            };
            (name, args::decode(kind, value, string))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_are_sorted_by_number_without_duplicates() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let table = arch.table();
            assert!(table.windows(2).all(|w| w[0].1 < w[1].1), "{arch:?}");
            for (i, (name, _)) in table.iter().enumerate() {
                assert!(
                    !table[..i].iter().any(|(n, _)| n == name),
                    "{arch:?} {name}"
                );
            }
        }
    }

    #[test]
    fn names_and_numbers_agree_per_architecture() {
        assert_eq!(Arch::X86_64.number("ptrace"), Some(101));
        assert_eq!(Arch::X86_64.number("unshare"), Some(272));
        assert_eq!(Arch::X86_64.number("bpf"), Some(321));
        assert_eq!(Arch::X86_64.name(319), Some("memfd_create"));
        assert_eq!(Arch::X86_64.number("open"), Some(2));
        assert_eq!(Arch::Aarch64.number("ptrace"), Some(117));
        assert_eq!(Arch::Aarch64.number("unshare"), Some(97));
        assert_eq!(Arch::Aarch64.number("bpf"), Some(280));
        assert_eq!(Arch::Aarch64.name(40), Some("mount"));
        assert_eq!(
            Arch::Aarch64.number("open"),
            None,
            "aarch64 has only openat"
        );
        assert_eq!(Arch::X86_64.name(9999), None);
    }

    #[test]
    fn the_default_set_exists_on_both_architectures_with_specs() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let filter = KernelFilter::new(arch, DEFAULT_SET.iter().copied()).expect("all known");
            assert_eq!(filter.arg_types.len(), DEFAULT_SET.len());
        }
        for name in DEFAULT_SET {
            assert!(args::has_spec(name), "{name} has no argument spec");
        }
    }

    #[test]
    fn filter_sets_one_bit_per_syscall() {
        let filter = KernelFilter::new(Arch::X86_64, ["ptrace", "bpf"]).expect("known");
        assert_eq!(filter.bitmap[1], 1 << (101 - 64));
        assert_eq!(filter.bitmap[5], 1 << (321 - 320));
        assert_eq!(filter.bitmap.iter().map(|w| w.count_ones()).sum::<u32>(), 2);
        assert_eq!(
            KernelFilter::new(Arch::X86_64, ["ptrace", "nope"]),
            Err("nope")
        );
        assert!(
            KernelFilter::new(Arch::X86_64, [])
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn mount_arguments_take_the_strings_in_order() {
        let nr = Arch::X86_64.number("mount").expect("mount");
        let word = args::type_word(args::spec("mount"));
        let args = decode_args(
            Arch::X86_64,
            nr,
            &[1, 2, 3, 0xc0ed_0000 | 2, 0, 0],
            word,
            &[
                Some((b"none", false)),
                Some((b"/mnt/x", false)),
                Some((b"tmpfs", true)),
            ],
        );
        let names: Vec<_> = args.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["source", "target", "fstype", "flags", "data"]);
        assert_eq!(
            args[2].1,
            ArgValue::Str {
                bytes: b"tmpfs".to_vec(),
                truncated: true
            }
        );
        assert_eq!(
            args[3].1,
            ArgValue::Named {
                raw: 0xc0ed_0002,
                names: "MS_NOSUID".into()
            }
        );
    }

    #[test]
    fn unknown_syscalls_report_six_raw_arguments() {
        let args = decode_args(Arch::X86_64, 39, &[1, 2, 3, 4, 5, 6], 0, &[]);
        assert_eq!(args.len(), 6);
        assert_eq!(args[5], ("arg5", ArgValue::Hex(6)));
    }
}
