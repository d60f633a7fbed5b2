//! The file sensor's userspace half. Opens, creates, renames, unlinks, chmod/chown and
//! truncations are captured by the syscall sensor's hooks: their arg-type word carries
//! [`ARG_TYPES_PATH_FILTER`], so the kernel compares each copied path with the watch prefixes
//! of [`FILE_PREFIXES`](vigil_common::maps::FILE_PREFIXES) right after copying it and stashes
//! nothing for a syscall none of whose paths is watched. Their records are turned into
//! [`File`] events here.
//!
//! A relative path (`foo`, or relative to a dirfd) cannot be matched in the kernel. With
//! `match_relative = false` (the default) such a syscall is dropped there; with `true` it is
//! kept (every relative file syscall of the node, so much more traffic) and its path is
//! resolved here against the process's cwd or the dirfd through `/proc`, which fails when the
//! process or the fd is gone by then (`path_resolved: false`). Resolved paths are not filtered
//! again.

use serde::Deserialize;
use vigil_common::syscall::{
    ARG_TYPES_KEEP_RELATIVE, ARG_TYPES_OPEN_HOW, ARG_TYPES_PATH_FILTER, FILE_PREFIX_LEN,
    FILE_PREFIXES_MAX, FilePrefix, SYSCALL_ARGS,
};

use crate::{
    event::{File, FileOp, Task},
    syscall::{Arch, KernelFilter},
};

/// The syscalls of the file sensor; `[syscalls] names` may not list them. Those an
/// architecture lacks (aarch64 has no `open`, `creat`, `rename`, `unlink`, `chmod`, `chown`,
/// `lchown`) are skipped there.
pub const SYSCALLS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "chmod",
    "fchmodat",
    "chown",
    "fchownat",
    "lchown",
    "truncate",
];

/// The default watch list: credentials, sudoers, ssh keys, the preload list, cron, systemd
/// units, the Kubernetes service-account token and container runtime sockets. `/home/` is
/// watched whole: a prefix cannot say "only `.ssh/` below each home".
pub const DEFAULT_WATCH: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/passwd",
    "/etc/group",
    "/etc/sudoers",
    "/etc/sudoers.d/",
    "/root/.ssh/",
    "/home/",
    "/etc/ssh/",
    "/etc/ld.so.preload",
    "/etc/cron",
    "/var/spool/cron/",
    "/etc/systemd/system/",
    "/lib/systemd/system/",
    "/usr/lib/systemd/system/",
    "/var/run/secrets/kubernetes.io/serviceaccount/",
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/docker.sock",
];

/// `[files]`: file events on watched paths.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Capture the file syscalls.
    pub enabled: bool,
    /// Absolute path prefixes (byte prefixes: `/etc/cron` covers `/etc/crontab` and
    /// `/etc/cron.d/x`), at most [`FILE_PREFIXES_MAX`] of at most [`FILE_PREFIX_LEN`] bytes.
    pub watch: Vec<String>,
    /// Keep relative paths, which the kernel cannot match (see the module docs).
    pub match_relative: bool,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            watch: DEFAULT_WATCH.iter().map(|&p| p.to_owned()).collect(),
            match_relative: false,
        }
    }
}

impl FilesConfig {
    /// The syscalls this asks the kernel for (empty when disabled or with nothing watched).
    pub fn filter(&self, arch: Arch) -> KernelFilter {
        if !self.enabled || (self.watch.is_empty() && !self.match_relative) {
            return KernelFilter::default();
        }
        let names = SYSCALLS
            .iter()
            .copied()
            .filter(|n| arch.number(n).is_some());
        let mut filter = KernelFilter::new(arch, names).unwrap_or_else(|name| {
            tracing::error!(syscall = name, "A file syscall has no number here.");
            KernelFilter::default()
        });
        let keep_relative = if self.match_relative {
            ARG_TYPES_KEEP_RELATIVE
        } else {
            0
        };
        let openat2 = arch.number("openat2");
        for (nr, word) in &mut filter.arg_types {
            *word |= ARG_TYPES_PATH_FILTER | keep_relative;
            if Some(*nr) == openat2 {
                *word |= ARG_TYPES_OPEN_HOW;
            }
        }
        filter
    }

    /// The kernel's prefix entries (invalid prefixes, which validation rejects, are skipped).
    pub fn prefixes(&self) -> Vec<FilePrefix> {
        self.watch
            .iter()
            .filter(|p| prefix_problem(p).is_none())
            .filter_map(|p| FilePrefix::new(p.as_bytes()))
            .take(FILE_PREFIXES_MAX as usize)
            .collect()
    }

    /// The first invalid field and why, for config validation.
    pub fn invalid_field(&self) -> Option<(&'static str, String)> {
        if self.watch.len() > FILE_PREFIXES_MAX as usize {
            return Some((
                "files.watch",
                format!(
                    "has {} prefixes; the kernel holds at most {FILE_PREFIXES_MAX}",
                    self.watch.len()
                ),
            ));
        }
        self.watch
            .iter()
            .find_map(|p| prefix_problem(p).map(|problem| ("files.watch", problem)))
    }

    /// Whether `path` starts with a watched prefix, as the kernel decides it.
    pub fn watches(&self, path: &[u8]) -> bool {
        self.prefixes().iter().any(|p| p.matches(path))
    }
}

fn prefix_problem(prefix: &str) -> Option<String> {
    if !prefix.starts_with('/') {
        return Some(format!("prefix `{prefix}` is not an absolute path"));
    }
    if prefix.len() > FILE_PREFIX_LEN {
        return Some(format!(
            "prefix `{prefix}` is {} bytes, longer than the kernel's limit of {FILE_PREFIX_LEN}",
            prefix.len()
        ));
    }
    if prefix.contains('\0') {
        return Some(format!("prefix `{}` contains a NUL", prefix.escape_debug()));
    }
    None
}

/// `O_*` flags of open (the generic values, shared by x86_64 and aarch64 except
/// `O_DIRECTORY`, `O_NOFOLLOW`, `O_DIRECT` and `O_LARGEFILE`, taken from `libc` per target).
const OPEN_FLAGS: &[(u64, &str)] = &[
    (libc::O_CREAT as u64, "O_CREAT"),
    (libc::O_EXCL as u64, "O_EXCL"),
    (libc::O_NOCTTY as u64, "O_NOCTTY"),
    (libc::O_TRUNC as u64, "O_TRUNC"),
    (libc::O_APPEND as u64, "O_APPEND"),
    (libc::O_NONBLOCK as u64, "O_NONBLOCK"),
    (libc::O_DSYNC as u64, "O_DSYNC"),
    (libc::O_ASYNC as u64, "O_ASYNC"),
    (libc::O_DIRECT as u64, "O_DIRECT"),
    (O_LARGEFILE, "O_LARGEFILE"),
    (libc::O_DIRECTORY as u64, "O_DIRECTORY"),
    (libc::O_NOFOLLOW as u64, "O_NOFOLLOW"),
    (libc::O_NOATIME as u64, "O_NOATIME"),
    (libc::O_CLOEXEC as u64, "O_CLOEXEC"),
    // O_SYNC is O_DSYNC plus this bit.
    ((libc::O_SYNC & !libc::O_DSYNC) as u64, "__O_SYNC"),
    ((libc::O_PATH) as u64, "O_PATH"),
    ((libc::O_TMPFILE & !libc::O_DIRECTORY) as u64, "__O_TMPFILE"),
];

/// The kernel's `O_LARGEFILE` (glibc defines it as 0 on 64-bit targets).
#[cfg(target_arch = "aarch64")]
const O_LARGEFILE: u64 = 0o400_000;
#[cfg(not(target_arch = "aarch64"))]
const O_LARGEFILE: u64 = 0o100_000;

/// The names of open flags `flags`: the access mode first (`O_RDONLY`, `O_WRONLY`, `O_RDWR`),
/// then each set flag; unknown bits as one hex number.
pub fn open_flag_names(flags: u64) -> Vec<String> {
    let mut names = Vec::new();
    each_open_flag_name(flags, |name| names.push(name.to_owned()));
    names
}

/// [`open_flag_names`] one at a time, in order, without collecting them.
pub fn each_open_flag_name(flags: u64, mut name: impl FnMut(&str)) {
    let flags = flags & 0xffff_ffff;
    name(match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    });
    let mut rest = flags & !3;
    for &(bit, flag) in OPEN_FLAGS {
        if rest & bit != 0 {
            name(flag);
            rest &= !bit;
        }
    }
    if rest != 0 {
        name(&format!("{rest:#x}"));
    }
}

/// The file operation of syscall `name`, if it is one of the sensor's.
pub fn op(name: &str) -> Option<FileOp> {
    Some(match name {
        "open" | "openat" | "openat2" => FileOp::Open,
        "creat" => FileOp::Create,
        "rename" | "renameat" | "renameat2" => FileOp::Rename,
        "unlink" | "unlinkat" => FileOp::Unlink,
        "chmod" | "fchmodat" => FileOp::Chmod,
        "chown" | "fchownat" | "lchown" => FileOp::Chown,
        "truncate" => FileOp::Truncate,
        _ => return None,
    })
}

const AT_FDCWD: i32 = -100;

/// A path argument: the copied bytes, whether the copy was cut, and its dirfd (`None`: the
/// syscall has none, so the cwd).
pub struct PathArg<'a> {
    pub bytes: Option<(&'a [u8], bool)>,
    pub dirfd: Option<i32>,
}

/// The file event of captured syscall `name` (`op(name)` is `Some`): `args` raw, `strings` the
/// paths the kernel copied, in argument order.
pub fn from_syscall(
    task: Task,
    name: &'static str,
    args: &[u64; SYSCALL_ARGS],
    strings: &[Option<(&[u8], bool)>],
    ret: i64,
    exit_time_ns: u64,
) -> Option<File> {
    let mut op = op(name)?;
    let int = |i: usize| args[i] as u32 as i32;
    // (dirfd of the first path, dirfd of the second) by syscall.
    let (dirfd, new_dirfd) = match name {
        "openat" | "openat2" | "unlinkat" | "fchmodat" | "fchownat" => (Some(int(0)), None),
        "renameat" | "renameat2" => (Some(int(0)), Some(int(2))),
        _ => (None, None),
    };
    let mut file = File {
        task,
        op,
        syscall: name,
        path: Vec::new(),
        path_truncated: false,
        new_path: None,
        path_resolved: true,
        flags: None,
        mode: None,
        uid: None,
        gid: None,
        ret,
        exit_time_ns,
    };
    let mut resolve = |arg: PathArg<'_>| -> Vec<u8> {
        let Some((bytes, truncated)) = arg.bytes else {
            file.path_resolved = false;
            return Vec::new();
        };
        file.path_truncated |= truncated;
        if bytes.starts_with(b"/") {
            return bytes.to_vec();
        }
        match resolve_relative(file.task.key.tgid, arg.dirfd.unwrap_or(AT_FDCWD), bytes) {
            Some(path) => path,
            None => {
                file.path_resolved = false;
                bytes.to_vec()
            }
        }
    };
    let path = resolve(PathArg {
        bytes: strings.first().copied().flatten(),
        dirfd,
    });
    let new_path = (op == FileOp::Rename).then(|| {
        resolve(PathArg {
            bytes: strings.get(1).copied().flatten(),
            dirfd: new_dirfd,
        })
    });
    file.path = path;
    file.new_path = new_path;
    match name {
        "open" => {
            file.flags = Some(args[1]);
        }
        "openat" => {
            file.flags = Some(args[2]);
        }
        // The kernel copied `how->flags` and `how->mode` here (`ARG_TYPES_OPEN_HOW`).
        "openat2" => {
            file.flags = Some(args[4]);
        }
        "creat" => file.mode = Some(args[1] as u32),
        "chmod" => file.mode = Some(args[1] as u32),
        "fchmodat" => file.mode = Some(args[2] as u32),
        "chown" | "lchown" => {
            file.uid = Some(int(1));
            file.gid = Some(int(2));
        }
        "fchownat" => {
            file.uid = Some(int(2));
            file.gid = Some(int(3));
        }
        _ => {}
    }
    if let Some(flags) = file.flags {
        let create = libc::O_CREAT as u64;
        if flags & create != 0 {
            let mode_arg = match name {
                "open" => 2,
                "openat2" => 5,
                _ => 3,
            };
            file.mode = Some(args[mode_arg] as u32);
            // With O_EXCL, success means the file was created here.
            if flags & libc::O_EXCL as u64 != 0 && ret >= 0 {
                op = FileOp::Create;
            }
        }
    }
    file.op = op;
    Some(file)
}

/// `path` (relative) resolved against `dirfd` (or the cwd) of process `tgid` through `/proc`.
fn resolve_relative(tgid: u32, dirfd: i32, path: &[u8]) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let base = if dirfd == AT_FDCWD {
        format!("/proc/{tgid}/cwd")
    } else {
        format!("/proc/{tgid}/fd/{dirfd}")
    };
    let base = std::fs::read_link(base).ok()?;
    let mut out = base.as_os_str().as_bytes().to_vec();
    if !out.starts_with(b"/") {
        return None;
    }
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    let path = path.strip_prefix(b"./").unwrap_or(path);
    out.extend_from_slice(path);
    Some(out)
}

#[cfg(test)]
mod tests;
