use vigil_common::process::{ARGS_MAX, EXEC_ARGV_TRUNCATED, EXEC_CWD_TRUNCATED};

use super::{
    encode::{self, ExecSpec, Ids},
    *,
};

fn ids() -> Ids {
    Ids {
        time_ns: 5_000,
        pid: 101,
        tgid: 100,
        start_time_ns: 1_000,
        cgroup_id: 7,
    }
}

fn sample_exec() -> Vec<u8> {
    encode::exec(&ExecSpec {
        ids: ids(),
        ppid: 1,
        parent_start_time_ns: 10,
        uid: 1000,
        comm: b"caf\xe9",
        filename: b"./run me",
        args: &[b"./run me", b"", b"with space", b"caf\xe9", b"\"quoted\""],
        binary: b"/opt/app/run me",
        cwd: b"/home/u",
        cgroup: b"/kubepods/besteffort/pod-1/abc",
        ..ExecSpec::default()
    })
}

#[test]
fn exec_round_trip_keeps_every_byte() {
    let KernelEvent::Exec(exec) = decode(&sample_exec()).expect("decodes") else {
        panic!("not an exec");
    };
    assert_eq!(exec.task.key, ProcessKey::new(100, 1_000));
    assert_eq!(
        (exec.task.pid, exec.task.cgroup_id, exec.task.time_ns),
        (101, 7, 5_000)
    );
    assert_eq!(exec.parent, ProcessKey::new(1, 10));
    assert_eq!(exec.creds.uid, 1000);
    assert_eq!(exec.creds.loginuid, None);
    assert_eq!(exec.image.comm, b"caf\xe9");
    assert_eq!(exec.filename, b"./run me");
    let args: Vec<&[u8]> = exec.image.args.iter().map(Vec::as_slice).collect();
    assert_eq!(
        args,
        [
            &b"./run me"[..],
            b"",
            b"with space",
            b"caf\xe9",
            b"\"quoted\""
        ]
    );
    assert_eq!(exec.image.binary.path, b"/opt/app/run me");
    assert_eq!(exec.image.cwd.path, b"/home/u");
    assert_eq!(exec.image.cgroup_path, b"/kubepods/besteffort/pod-1/abc");
    assert!(
        !exec.image.args_truncated && !exec.image.cwd.truncated && !exec.image.binary.truncated
    );
    assert_eq!((exec.exe_inode, exec.exe_dev), (42, (8 << 20) | 1));
}

#[test]
fn truncation_flags_are_reported() {
    let record = encode::exec(&ExecSpec {
        ids: ids(),
        flags: EXEC_ARGV_TRUNCATED | EXEC_CWD_TRUNCATED,
        args: &[b"a", b"partial-arg-cut-by-the-kerne"],
        ..ExecSpec::default()
    });
    let KernelEvent::Exec(exec) = decode(&record).expect("decodes") else {
        panic!("not an exec");
    };
    assert!(exec.image.args_truncated && exec.image.cwd.truncated);
    assert_eq!(exec.image.args.len(), 2);
}

#[test]
fn truncated_records_are_errors_at_every_length() {
    let record = sample_exec();
    for len in 0..record.len() {
        assert!(
            decode(&record[..len]).is_err(),
            "decoded a {len}-byte prefix"
        );
    }
}

#[test]
fn header_claiming_more_than_arrived_is_size_mismatch() {
    let mut record = encode::exit(ids(), 0, true);
    record[4..8].copy_from_slice(&1000u32.to_ne_bytes());
    assert!(matches!(
        decode(&record),
        Err(DecodeError::SizeMismatch { claimed: 1000, .. })
    ));
}

#[test]
fn oversized_sections_are_rejected_not_read_past() {
    let mut record = sample_exec();
    // argv_len lives at offset 106 of ExecEvent.
    let at = core::mem::offset_of!(ExecEvent, argv_len);
    record[at..at + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
    assert!(matches!(
        decode(&record),
        Err(DecodeError::SectionsOverflow { .. })
    ));
}

#[test]
fn trailing_bytes_past_the_claimed_size_are_ignored() {
    let mut record = encode::fork(ids(), 1, 10, false);
    record.extend_from_slice(&[0xAA; 16]);
    assert!(matches!(decode(&record), Ok(KernelEvent::Fork(_))));
}

#[test]
fn unknown_kind_is_an_error() {
    let mut record = encode::exit(ids(), 0, true);
    record[0..2].copy_from_slice(&999u16.to_ne_bytes());
    assert_eq!(decode(&record), Err(DecodeError::UnknownKind { kind: 999 }));
}

#[test]
fn fork_and_exit_decode() {
    let KernelEvent::Fork(fork) = decode(&encode::fork(ids(), 1, 10, true)).expect("fork") else {
        panic!("not a fork");
    };
    assert!(fork.thread);
    assert_eq!(fork.parent, ProcessKey::new(1, 10));
    let KernelEvent::Exit(exit) = decode(&encode::exit(ids(), 3 << 8, true)).expect("exit") else {
        panic!("not an exit");
    };
    assert!(exit.group_dead);
    assert_eq!((exit.status(), exit.signal()), (Some(3), None));
    let KernelEvent::Exit(killed) = decode(&encode::exit(ids(), 9 | 0x80, true)).expect("exit")
    else {
        panic!("not an exit");
    };
    assert_eq!(
        (killed.status(), killed.signal(), killed.core_dumped()),
        (None, Some(9), true)
    );
}

#[test]
fn argv_area_splits_exactly() {
    assert_eq!(split_args(b""), (vec![], false));
    assert_eq!(
        split_args(b"a\0\0b\0"),
        (vec![b"a".to_vec(), vec![], b"b".to_vec()], false)
    );
    // A last argument cut by the byte limit has no NUL.
    assert_eq!(
        split_args(b"a\0bc"),
        (vec![b"a".to_vec(), b"bc".to_vec()], false)
    );
    let many: Vec<u8> = (0..ARGS_MAX + 5).flat_map(|_| *b"x\0").collect();
    let (args, too_many) = split_args(&many);
    assert_eq!(args.len(), ARGS_MAX);
    assert!(too_many);
    // Exactly ARGS_MAX is all of them.
    let exact: Vec<u8> = (0..ARGS_MAX).flat_map(|_| *b"x\0").collect();
    assert_eq!(split_args(&exact).0.len(), ARGS_MAX);
    assert!(!split_args(&exact).1);
}

/// The splits and joins against the plain byte-by-byte definitions, on strings of NULs and
/// letters of every shape (empty pieces, NULs first and last, none at all).
#[test]
fn splits_and_joins_match_their_definitions() {
    let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        n ^= n << 13;
        n ^= n >> 7;
        n ^= n << 17;
        let len = (n % 12) as usize;
        let input: Vec<u8> = (0..len)
            .map(|i| {
                if (n >> (i + 8)) & 3 == 0 {
                    0
                } else {
                    b'a' + i as u8
                }
            })
            .collect();
        let trimmed = input.strip_suffix(&[0]).unwrap_or(&input);
        let mut joined = Vec::new();
        for component in trimmed.rsplit(|&b| b == 0) {
            joined.push(b'/');
            joined.extend_from_slice(component);
        }
        if trimmed.is_empty() {
            joined = b"/".to_vec();
        }
        assert_eq!(join_components(&input), joined, "{input:?}");
        let args: Vec<Vec<u8>> = if input.is_empty() {
            Vec::new()
        } else {
            trimmed.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
        };
        assert_eq!(split_args(&input), (args, false), "{input:?}");
    }
}

#[test]
fn path_components_join_leaf_last() {
    assert_eq!(join_components(b""), b"/");
    assert_eq!(join_components(b"bin\0usr\0"), b"/usr/bin");
    assert_eq!(join_components(b"caf\xe9\0home\0"), b"/home/caf\xe9");
    assert_eq!(encode::path_section(b"/usr/bin"), b"bin\0usr\0");
}

#[test]
fn syscall_round_trip_names_arguments_and_strings() {
    use vigil_common::syscall::{SYSCALL_STRING_MAX, SYSCALL_STRING_TRUNCATED};

    use crate::syscall::{Arch, ArgValue, args};

    let nr = Arch::NATIVE.number("mount").expect("mount");
    let long = vec![b'x'; SYSCALL_STRING_MAX - 1];
    let record = encode::syscall(&encode::SyscallSpec {
        ids: ids(),
        nr,
        args: [0x10, 0x20, 0x30, 0x1000, 0, 0],
        ret: -1,
        exit_time_ns: 6_000,
        arg_types: args::type_word(args::spec("mount")),
        flags: SYSCALL_STRING_TRUNCATED,
        strings: &[b"none", b"/mnt/a b", &long],
        addr: &[],
    });
    let KernelEvent::Syscall(call) = decode(&record).expect("decodes") else {
        panic!("not a syscall");
    };
    assert_eq!(call.task.key, ProcessKey::new(100, 1_000));
    assert_eq!(call.task.pid, 101);
    assert_eq!(call.name, Some("mount"));
    assert_eq!(call.ret, -1);
    assert_eq!(call.errno(), Some(1));
    assert_eq!(call.exit_time_ns, 6_000);
    assert_eq!(
        call.arg("target"),
        Some(&ArgValue::Str {
            bytes: b"/mnt/a b".to_vec(),
            truncated: false
        })
    );
    assert_eq!(
        call.arg("fstype"),
        Some(&ArgValue::Str {
            bytes: long.clone(),
            truncated: true
        }),
        "the string that filled its copy is the cut one"
    );
    assert_eq!(call.arg("data"), Some(&ArgValue::Hex(0)));

    // Strings claimed beyond the record are an error, not a panic.
    let mut short = record.clone();
    short.truncate(record.len() - 10);
    let size = short.len() as u32;
    short[4..8].copy_from_slice(&size.to_ne_bytes());
    assert_eq!(
        decode(&short).map(|_| ()).expect_err("overflow").cause(),
        "sections_overflow"
    );
}

#[test]
fn syscall_with_unreadable_string_reports_its_address() {
    use vigil_common::syscall::SYSCALL_STRING_UNREADABLE;

    use crate::syscall::{Arch, ArgValue, args};

    let nr = Arch::NATIVE.number("chroot").expect("chroot");
    let record = encode::syscall(&encode::SyscallSpec {
        ids: ids(),
        nr,
        args: [0xdead, 0, 0, 0, 0, 0],
        ret: -14,
        arg_types: args::type_word(args::spec("chroot")),
        flags: SYSCALL_STRING_UNREADABLE,
        strings: &[b""],
        addr: &[],
        ..encode::SyscallSpec::default()
    });
    let KernelEvent::Syscall(call) = decode(&record).expect("decodes") else {
        panic!("not a syscall");
    };
    assert_eq!(call.arg("path"), Some(&ArgValue::Unread(0xdead)));
    assert_eq!(call.errno(), Some(14));
}

/// Root with every capability, as a root shell has it (41 capabilities on Linux 6.x).
fn root_snapshot() -> CredSnapshot {
    const ALL: u64 = (1 << 41) - 1;
    CredSnapshot {
        cap_permitted: ALL,
        cap_effective: ALL,
        cap_bset: ALL,
        ..Default::default()
    }
}

#[test]
fn cred_change_round_trip_keeps_both_snapshots() {
    use crate::syscall::Arch;

    let nr = Arch::NATIVE.number("setresuid").expect("setresuid");
    let before = CredSnapshot {
        securebits: 0x10,
        cap_ambient: 1 << 13,
        ..root_snapshot()
    };
    let after = CredSnapshot {
        uid: 1000,
        euid: 1000,
        suid: 1000,
        fsuid: 1000,
        gid: 7,
        sgid: 8,
        egid: 9,
        fsgid: 10,
        securebits: 0x10,
        cap_inheritable: 2,
        cap_permitted: 0,
        cap_effective: 0,
        cap_ambient: 0,
        ..before
    };
    let record = encode::cred_change(ids(), nr, 0, before, after, 0);
    assert_eq!(record.len(), size_of::<CredChangeEvent>());
    let KernelEvent::CredChange(change) = decode(&record).expect("decodes") else {
        panic!("not a cred change");
    };
    assert_eq!(change.task.key, ProcessKey::new(100, 1_000));
    assert_eq!((change.task.pid, change.task.cgroup_id), (101, 7));
    assert_eq!((change.task.time_ns, change.exit_time_ns), (5_000, 6_500));
    assert_eq!(
        (change.nr, change.syscall, change.ret),
        (nr, Some("setresuid"), 0)
    );
    assert_eq!(
        change.before,
        TaskCreds {
            securebits: 0x10,
            cap_permitted: (1 << 41) - 1,
            cap_effective: (1 << 41) - 1,
            cap_bset: (1 << 41) - 1,
            cap_ambient: Some(1 << 13),
            ..TaskCreds::default()
        }
    );
    assert_eq!(
        change.after,
        TaskCreds {
            uid: 1000,
            gid: 7,
            euid: 1000,
            egid: 9,
            suid: 1000,
            sgid: 8,
            fsuid: 1000,
            fsgid: 10,
            securebits: 0x10,
            cap_inheritable: 2,
            cap_permitted: 0,
            cap_effective: 0,
            cap_bset: (1 << 41) - 1,
            cap_ambient: Some(0),
        }
    );

    // A kernel without ambient capabilities: none on either side.
    let record = encode::cred_change(ids(), nr, 0, before, after, CRED_NO_AMBIENT);
    let KernelEvent::CredChange(change) = decode(&record).expect("decodes") else {
        panic!("not a cred change");
    };
    assert_eq!(
        (change.before.cap_ambient, change.after.cap_ambient),
        (None, None)
    );

    // Shorter than its fixed part: an error, not a panic.
    let mut short = record.clone();
    short.truncate(record.len() - 8);
    let size = short.len() as u32;
    short[4..8].copy_from_slice(&size.to_ne_bytes());
    assert_eq!(
        decode(&short).map(|_| ()).expect_err("too short").cause(),
        "size_mismatch"
    );
}
