use vigil_common::syscall::{ARG_STR, FILE_PREFIX_INDEX_AT, arg_type};

use super::*;
use crate::process::ProcessKey;

fn task() -> Task {
    Task {
        pid: 1,
        key: ProcessKey::new(1, 0),
        cgroup_id: 0,
        time_ns: 10,
    }
}

#[test]
fn open_flags_decode_access_mode_then_bits() {
    let flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC) as u64;
    assert_eq!(
        open_flag_names(flags),
        ["O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"]
    );
    assert_eq!(open_flag_names(0), ["O_RDONLY"]);
    assert_eq!(
        open_flag_names((libc::O_RDWR | libc::O_EXCL | libc::O_APPEND) as u64),
        ["O_RDWR", "O_EXCL", "O_APPEND"]
    );
    assert_eq!(open_flag_names(1 << 30), ["O_RDONLY", "0x40000000"]);
}

#[test]
fn prefixes_match_as_the_kernel_compares_them() {
    let p = FilePrefix::new(b"/etc/cron").expect("fits");
    assert!(p.matches(b"/etc/cron"));
    assert!(p.matches(b"/etc/crontab"));
    assert!(p.matches(b"/etc/cron.d/job"));
    assert!(!p.matches(b"/etc/cro"));
    assert!(!p.matches(b"/etc/passwd"));
    let long = "/var/run/secrets/kubernetes.io/serviceaccount/";
    let p = FilePrefix::new(long.as_bytes()).expect("fits");
    assert!(p.matches(format!("{long}token").as_bytes()));
    assert!(!p.matches(&long.as_bytes()[..long.len() - 1]));
    // Exactly 8 and 64 bytes: whole words only.
    let p = FilePrefix::new(b"/etc/ss/").expect("fits");
    assert_eq!(p.masks[1], 0);
    assert!(p.matches(b"/etc/ss/x") && !p.matches(b"/etc/ssh"));
    let max = format!("/{}", "a".repeat(63));
    assert!(FilePrefix::new(max.as_bytes()).is_some());
    assert!(FilePrefix::new(format!("{max}b").as_bytes()).is_none());
    assert!(FilePrefix::new(b"").is_none());
}

/// The kernel's indexed compare (`watched_indexed` in the eBPF crate): the prefixes the
/// path's second and sixth bytes select, in list order. The kernel's copy ends with a NUL,
/// then holds `stale` bytes from an earlier syscall.
fn indexed_match(prefixes: &[FilePrefix], path: &[u8], stale: u8) -> bool {
    let index = vigil_common::syscall::file_prefix_index(prefixes);
    let byte = |at: usize| match at.cmp(&path.len()) {
        std::cmp::Ordering::Less => path[at],
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => stale,
    };
    let [first, second] = FILE_PREFIX_INDEX_AT;
    let candidates = index[usize::from(byte(first))] & index[256 + usize::from(byte(second))];
    (0..FILE_PREFIXES_MAX as usize)
        .filter(|p| candidates & (1 << p) != 0)
        .any(|p| prefixes[p].matches(path))
}

#[test]
fn the_prefix_index_selects_every_prefix_that_can_match() {
    let mut watch: Vec<String> = DEFAULT_WATCH.iter().map(|s| s.to_string()).collect();
    watch.extend(["/".into(), "/t".into(), "/tmp/bench/".into()]);
    let prefixes: Vec<FilePrefix> = watch
        .iter()
        .filter_map(|p| FilePrefix::new(p.as_bytes()))
        .collect();
    let index = vigil_common::syscall::file_prefix_index(&prefixes);
    // "/" has no byte after its slash: every entry selects it.
    let slash = watch.iter().position(|p| p == "/").expect("listed");
    assert!(index.iter().all(|entry| entry & (1 << slash) != 0));
    // "/etc/shadow" is selected by 'e' only.
    assert_ne!(index[usize::from(b'e')] & 1, 0);
    assert_eq!(index[usize::from(b'u')] & 1, 0);
    let paths: [&[u8]; 12] = [
        b"/",
        b"/etc/shadow",
        b"/etc/shadowx",
        b"/etc/passw",
        b"/home/a/.ssh/id",
        b"/tmp/bench/file",
        b"/tmp/other",
        b"/usr/lib/systemd/system/x.service",
        b"/usr/lib/x86_64-linux-gnu/libc.so.6",
        b"/var/run/secrets/kubernetes.io/serviceaccount/token",
        b"/\xff\x00weird",
        b"/t",
    ];
    for path in paths {
        let every = prefixes.iter().any(|p| p.matches(path));
        for stale in [0, b'x', b'e', b'/', 0xff] {
            assert_eq!(indexed_match(&prefixes, path, stale), every, "{path:?}");
        }
    }
    // The sixth byte narrows /etc: one candidate for /etc/passwd, none for /etc/hostname.
    let etc = index[usize::from(b'e')];
    let without = !(1u32 << slash);
    assert_eq!(
        (etc & index[256 + usize::from(b'p')] & without).count_ones(),
        1
    );
    assert_eq!(
        etc & index[256 + usize::from(b'h')] & without,
        0,
        "only \"/\" is left for /etc/h..."
    );
    // Without "/", the kernel's answer for paths nobody watches is no.
    let without_slash: Vec<FilePrefix> = prefixes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != slash)
        .map(|(_, p)| *p)
        .collect();
    let libc = b"/usr/lib/x86_64-linux-gnu/libc.so.6";
    assert!(!indexed_match(&without_slash, libc, 0));
    assert!(indexed_match(&without_slash, b"/etc/sudoers.d/90-cloud", 0));
    assert!(!indexed_match(&without_slash, b"/etc", b's'));
    assert_eq!(
        vigil_common::syscall::file_prefix_index(&[])
            .iter()
            .sum::<u32>(),
        0
    );
}

#[test]
fn the_default_watch_list_fits_the_kernel() {
    let config = FilesConfig::default();
    assert_eq!(config.invalid_field(), None);
    assert_eq!(config.prefixes().len(), DEFAULT_WATCH.len());
    assert!(config.watches(b"/etc/shadow"));
    assert!(config.watches(b"/home/alice/.ssh/authorized_keys"));
    assert!(config.watches(b"/run/containerd/containerd.sock"));
    assert!(!config.watches(b"/tmp/x"));
    assert!(!config.watches(b"etc/shadow"));
}

#[test]
fn invalid_prefixes_are_named() {
    let long = format!("/{}", "x".repeat(64));
    let config = FilesConfig {
        watch: vec!["/etc/".into(), long.clone()],
        ..FilesConfig::default()
    };
    let (field, problem) = config.invalid_field().expect("too long");
    assert_eq!(field, "files.watch");
    assert_eq!(
        problem,
        format!("prefix `{long}` is 65 bytes, longer than the kernel's limit of 64")
    );
    let relative = FilesConfig {
        watch: vec!["etc/".into()],
        ..FilesConfig::default()
    };
    assert!(
        relative
            .invalid_field()
            .expect("relative")
            .1
            .contains("absolute")
    );
    let many = FilesConfig {
        watch: (0..33).map(|i| format!("/d{i}/")).collect(),
        ..FilesConfig::default()
    };
    assert!(
        many.invalid_field()
            .expect("too many")
            .1
            .contains("at most 32")
    );
}

#[test]
fn the_filter_marks_every_file_syscall_for_the_path_compare() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let filter = FilesConfig::default().filter(arch);
        let present = SYSCALLS.iter().filter(|n| arch.number(n).is_some()).count();
        assert_eq!(filter.arg_types.len(), present, "{arch:?}");
        for &(nr, word) in &filter.arg_types {
            assert!(word & ARG_TYPES_PATH_FILTER != 0, "{arch:?} {nr}");
            assert_eq!(word & ARG_TYPES_KEEP_RELATIVE, 0);
            assert!((0..6).any(|i| arg_type(word, i) == ARG_STR), "{nr}");
        }
    }
    assert_eq!(Arch::Aarch64.number("open"), None);
    assert!(Arch::Aarch64.number("openat").is_some());
    let relative = FilesConfig {
        match_relative: true,
        ..FilesConfig::default()
    };
    assert!(
        relative
            .filter(Arch::NATIVE)
            .arg_types
            .iter()
            .all(|&(_, w)| w & ARG_TYPES_KEEP_RELATIVE != 0)
    );
    let off = FilesConfig {
        enabled: false,
        ..FilesConfig::default()
    };
    assert!(off.filter(Arch::NATIVE).is_empty());
    for name in SYSCALLS {
        assert!(op(name).is_some(), "{name}");
        assert!(crate::syscall::args::has_spec(name), "{name}");
    }
}

#[test]
fn syscalls_become_file_events() {
    let flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) as u64;
    let file = from_syscall(
        task(),
        "openat",
        &[AT_FDCWD as u32 as u64, 0x1000, flags, 0o600, 0, 0],
        &[Some((b"/etc/shadow", false))],
        3,
        20,
    )
    .expect("a file op");
    assert_eq!(file.op, FileOp::Create, "O_CREAT|O_EXCL succeeded");
    assert_eq!(file.path, b"/etc/shadow");
    assert_eq!(file.flags, Some(flags));
    assert_eq!(file.mode, Some(0o600));
    assert!(file.path_resolved);

    let file = from_syscall(
        task(),
        "renameat2",
        &[AT_FDCWD as u32 as u64, 1, AT_FDCWD as u32 as u64, 2, 0, 0],
        &[Some((b"/tmp/a", false)), Some((b"/etc/passwd", false))],
        0,
        20,
    )
    .expect("a file op");
    assert_eq!(file.op, FileOp::Rename);
    assert_eq!(file.new_path.as_deref(), Some(&b"/etc/passwd"[..]));

    let file = from_syscall(
        task(),
        "fchownat",
        &[AT_FDCWD as u32 as u64, 1, 0, u64::from(u32::MAX), 0, 0],
        &[Some((b"/etc/sudoers", false))],
        -1,
        20,
    )
    .expect("a file op");
    assert_eq!((file.uid, file.gid), (Some(0), Some(-1)));
    assert_eq!(from_syscall(task(), "bpf", &[0; 6], &[], 0, 0), None);
}

#[test]
fn relative_paths_resolve_against_the_cwd_or_flag_it() {
    let me = std::process::id();
    let cwd = std::env::current_dir().expect("a cwd");
    let file = from_syscall(
        Task {
            key: ProcessKey::new(me, 0),
            ..task()
        },
        "unlink",
        &[0; 6],
        &[Some((b"x/y", false))],
        -2,
        20,
    )
    .expect("a file op");
    assert!(file.path_resolved);
    assert_eq!(file.path, cwd.join("x/y").as_os_str().as_encoded_bytes());
    let gone = from_syscall(
        Task {
            key: ProcessKey::new(u32::MAX - 1, 0),
            ..task()
        },
        "unlinkat",
        &[5, 0, 0, 0, 0, 0],
        &[Some((b"y", false))],
        0,
        20,
    )
    .expect("a file op");
    assert!(!gone.path_resolved);
    assert_eq!(gone.path, b"y");
}
