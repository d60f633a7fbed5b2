use super::*;
use std::time::Instant;

const INT: u32 = 1;
const PTR: u32 = 2;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const TYPEDEF: u32 = 8;
const CONST: u32 = 10;
const FUNC_PROTO: u32 = 13;

/// Writes BTF blobs by hand: types get ids 1, 2, ... in the order they are added, so a
/// type must be added before anything that refers to it.
struct Builder {
    words: Vec<u32>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Builder {
    fn new() -> Self {
        Self {
            words: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = u32::try_from(self.strings.len()).expect("test strings fit in u32");
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn record(&mut self, name: &str, info: u32, size_or_type: u32, extra: &[u32]) -> u32 {
        let name_off = self.string(name);
        self.words.extend([name_off, info, size_or_type]);
        self.words.extend_from_slice(extra);
        self.next_id += 1;
        self.next_id - 1
    }

    fn int(&mut self, name: &str, size: u32) -> u32 {
        self.int_bits(name, size, size * 8)
    }

    fn int_bits(&mut self, name: &str, size: u32, bits: u32) -> u32 {
        self.record(name, INT << 24, size, &[bits])
    }

    fn modifier(&mut self, kind: u32, name: &str, target: u32) -> u32 {
        self.record(name, kind << 24, target, &[])
    }

    fn aggregate(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        kind_flag: bool,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let mut extra = Vec::new();
        for &(member, type_id, offset) in members {
            extra.extend([self.string(member), type_id, offset]);
        }
        let vlen = u32::try_from(members.len()).expect("few members");
        let info = (u32::from(kind_flag) << 31) | (kind << 24) | vlen;
        self.record(name, info, size, &extra)
    }

    /// A function prototype returning void with parameters of `types` (names left empty).
    fn func_proto(&mut self, types: &[u32]) -> u32 {
        let extra: Vec<u32> = types.iter().flat_map(|&t| [0, t]).collect();
        let vlen = u32::try_from(types.len()).expect("few parameters");
        self.record("", (FUNC_PROTO << 24) | vlen, 0, &extra)
    }

    /// `typedef void (*btf_trace_<name>)(void *, <args>)`, as the kernel declares every
    /// tracepoint for BTF-aware programs.
    fn tracepoint(&mut self, name: &str, args: &[u32]) -> u32 {
        let void_ptr = self.modifier(PTR, "", 0);
        let params: Vec<u32> = std::iter::once(void_ptr)
            .chain(args.iter().copied())
            .collect();
        let proto = self.func_proto(&params);
        let pointer = self.modifier(PTR, "", proto);
        self.modifier(TYPEDEF, &format!("btf_trace_{name}"), pointer)
    }

    fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.aggregate(STRUCT, name, size, false, members)
    }

    fn build(&self, big_endian: bool) -> Vec<u8> {
        let put16 = |out: &mut Vec<u8>, v: u16| {
            out.extend(if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        };
        let put32 = |out: &mut Vec<u8>, v: u32| {
            out.extend(if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        };
        let type_len = u32::try_from(self.words.len() * 4).expect("small blob");
        let str_len = u32::try_from(self.strings.len()).expect("small blob");
        let mut out = Vec::new();
        put16(&mut out, BTF_MAGIC);
        out.extend([BTF_VERSION, 0]);
        for v in [24, 0, type_len, type_len, str_len] {
            put32(&mut out, v);
        }
        for &w in &self.words {
            put32(&mut out, w);
        }
        out.extend_from_slice(&self.strings);
        out
    }
}

/// `struct qstr` as the kernel lays it out on little-endian machines, with `dentry` and
/// `file` around it: anonymous union, anonymous struct, const-qualified pointer target,
/// and a typedef'd nested struct.
fn kernel_like(big_endian: bool) -> Vec<u8> {
    let mut b = Builder::new();
    let u32_t = b.int("unsigned int", 4);
    let u64_t = b.int("long long unsigned int", 8);
    let uchar = b.int("unsigned char", 1);
    let const_uchar = b.modifier(CONST, "", uchar);
    let name_ptr = b.modifier(PTR, "", const_uchar);
    let hash_len = b.strukt("", 8, &[("hash", u32_t, 0), ("len", u32_t, 32)]);
    let anon_union = b.aggregate(
        UNION,
        "",
        8,
        false,
        &[("", hash_len, 0), ("hash_len", u64_t, 0)],
    );
    let qstr = b.strukt("qstr", 16, &[("", anon_union, 0), ("name", name_ptr, 64)]);
    let const_qstr = b.modifier(CONST, "", qstr);
    let dentry = b.strukt(
        "dentry",
        48,
        &[("d_flags", u32_t, 0), ("d_name", const_qstr, 256)],
    );
    let dentry_ptr = b.modifier(PTR, "", dentry);
    let path = b.strukt(
        "path",
        16,
        &[("mnt", dentry_ptr, 0), ("dentry", dentry_ptr, 64)],
    );
    let path_t = b.modifier(TYPEDEF, "path_t", path);
    b.strukt("file", 64, &[("f_mode", u32_t, 0), ("f_path", path_t, 128)]);
    b.build(big_endian)
}

fn parse(blob: &[u8]) -> Btf {
    Btf::parse(blob).expect("test blob is valid BTF")
}

#[test]
fn direct_member() {
    let btf = parse(&kernel_like(false));
    assert_eq!(btf.member_offset("dentry", "d_flags").expect("d_flags"), 0);
    assert_eq!(btf.member_offset("dentry", "d_name").expect("d_name"), 32);
    assert_eq!(btf.member_offset("qstr", "name").expect("name"), 8);
}

#[test]
fn dotted_path_through_typedef_and_const() {
    let btf = parse(&kernel_like(false));
    assert_eq!(
        btf.member_offset("file", "f_path.dentry").expect("typedef"),
        16 + 8
    );
    assert_eq!(
        btf.member_offset("dentry", "d_name.name").expect("const"),
        32 + 8
    );
    assert_eq!(
        btf.member_offset("dentry", "d_name.len").expect("anon"),
        32 + 4
    );
}

#[test]
fn anonymous_union_with_anonymous_struct() {
    let btf = parse(&kernel_like(false));
    assert_eq!(btf.member_offset("qstr", "hash").expect("hash"), 0);
    assert_eq!(btf.member_offset("qstr", "len").expect("len"), 4);
    assert_eq!(btf.member_offset("qstr", "hash_len").expect("hash_len"), 0);
}

#[test]
fn named_member_wins_over_anonymous() {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    let inner = b.strukt("", 4, &[("x", int, 0)]);
    b.strukt("outer", 12, &[("", inner, 0), ("x", int, 64)]);
    let btf = parse(&b.build(false));
    assert_eq!(btf.member_offset("outer", "x").expect("direct x"), 8);
}

#[test]
fn anonymous_members_are_offset_by_their_position() {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    let inner = b.strukt("", 8, &[("a", int, 0), ("b", int, 32)]);
    b.strukt("outer", 24, &[("head", int, 0), ("", inner, 128)]);
    let btf = parse(&b.build(false));
    assert_eq!(btf.member_offset("outer", "b").expect("b"), 16 + 4);
}

#[test]
fn kind_flag_offset_on_byte_aligned_member() {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    let flags = (3 << 24) | 64;
    let members = [("a", int, 0), ("bits", int, flags), ("c", int, 96)];
    b.aggregate(STRUCT, "kf", 16, true, &members);
    let btf = parse(&b.build(false));
    assert_eq!(btf.member_offset("kf", "c").expect("c"), 12);
    assert_eq!(btf.member_offset("kf", "a").expect("a"), 0);
}

#[test]
fn kind_flag_bitfield_is_error() {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    b.aggregate(
        STRUCT,
        "kf",
        8,
        true,
        &[("a", int, 0), ("bits", int, (3 << 24) | 32)],
    );
    let err = parse(&b.build(false))
        .member_offset("kf", "bits")
        .expect_err("bitfield");
    assert!(
        matches!(&err, BtfError::Bitfield { strukt, member } if strukt == "kf" && member == "bits"),
        "{err:?}"
    );
}

#[test]
fn int_encoded_bitfield_is_error() {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    let three_bits = b.int_bits("int", 4, 3);
    b.strukt("old", 8, &[("a", int, 0), ("bits", three_bits, 32)]);
    let err = parse(&b.build(false))
        .member_offset("old", "bits")
        .expect_err("bitfield");
    assert!(matches!(err, BtfError::Bitfield { .. }), "{err:?}");
}

#[test]
fn missing_struct_is_error_with_name() {
    let err = parse(&kernel_like(false))
        .member_offset("inode", "i_ino")
        .expect_err("no inode");
    assert!(
        matches!(&err, BtfError::StructNotFound { name } if name == "inode"),
        "{err:?}"
    );
}

#[test]
fn missing_member_is_error_with_names() {
    let btf = parse(&kernel_like(false));
    let err = btf
        .member_offset("dentry", "d_name.nmae")
        .expect_err("typo");
    assert!(
        matches!(&err, BtfError::MemberNotFound { strukt, member, segment }
            if strukt == "dentry" && member == "d_name.nmae" && segment == "nmae"),
        "{err:?}"
    );
    for path in ["", "d_name.", ".d_name", "d_name..name"] {
        let err = btf
            .member_offset("dentry", path)
            .expect_err("empty segment");
        assert!(
            matches!(err, BtfError::MemberNotFound { .. }),
            "{path}: {err:?}"
        );
    }
}

#[test]
fn path_through_pointer_is_error() {
    let err = parse(&kernel_like(false))
        .member_offset("path", "dentry.d_name")
        .expect_err("pointer");
    assert!(
        matches!(&err, BtfError::NotAggregate { segment, .. } if segment == "dentry"),
        "{err:?}"
    );
}

#[test]
fn duplicate_struct_name_prefers_non_empty() {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    b.strukt("dup", 0, &[]);
    b.strukt("dup", 8, &[("x", int, 32)]);
    b.strukt("dup", 4, &[("x", int, 0)]);
    let btf = parse(&b.build(false));
    assert_eq!(btf.member_offset("dup", "x").expect("first non-empty"), 4);
}

#[test]
fn tracepoint_arguments_are_counted_without_the_leading_context() {
    let mut b = Builder::new();
    let task = b.strukt("task_struct", 8, &[("pid", 0, 0)]);
    let task_ptr = b.modifier(PTR, "", task);
    let bool_t = b.int("_Bool", 1);
    b.tracepoint("sched_process_fork", &[task_ptr, task_ptr]);
    b.tracepoint("sched_process_exit", &[task_ptr, bool_t]);
    b.tracepoint("sched_process_free", &[task_ptr]);
    // A typedef of that name that is no function pointer is not a tracepoint.
    b.modifier(TYPEDEF, "btf_trace_not_a_pointer", bool_t);
    let btf = parse(&b.build(false));

    assert_eq!(btf.tracepoint_args("sched_process_exit").expect("exit"), 2);
    assert_eq!(btf.tracepoint_args("sched_process_fork").expect("fork"), 2);
    assert_eq!(btf.tracepoint_args("sched_process_free").expect("free"), 1);
    for name in ["not_a_pointer", "no_such_tracepoint"] {
        let err = btf.tracepoint_args(name).expect_err(name);
        assert_eq!(
            err.to_string(),
            format!("tracepoint {name} not found in BTF (no btf_trace_{name} prototype)")
        );
    }
}

#[test]
fn truncated_blob_is_error_at_every_length() {
    let blob = kernel_like(false);
    for len in 0..blob.len() {
        let result = Btf::parse(&blob[..len]);
        assert!(result.is_err(), "prefix of {len} bytes parsed");
    }
}

#[test]
fn truncated_type_record_is_error() {
    let mut blob = kernel_like(false);
    // Shrink the type section so the last record is cut short but the header is honest.
    let type_len = u32::from_le_bytes(blob[12..16].try_into().expect("4 bytes"));
    blob[12..16].copy_from_slice(&(type_len - 4).to_le_bytes());
    let err = Btf::parse(&blob).expect_err("record cut short");
    assert!(matches!(err, BtfError::Truncated { .. }), "{err:?}");
}

#[test]
fn bad_magic_is_error() {
    let mut blob = kernel_like(false);
    blob[0] = 0x7f;
    let err = Btf::parse(&blob).expect_err("bad magic");
    assert!(
        matches!(err, BtfError::BadMagic { found: 0xeb7f }),
        "{err:?}"
    );
    let err = Btf::parse(b"\x7fELF").expect_err("not BTF");
    assert!(matches!(err, BtfError::BadMagic { .. }), "{err:?}");
}

#[test]
fn unsupported_version_is_error() {
    let mut blob = kernel_like(false);
    blob[2] = 2;
    let err = Btf::parse(&blob).expect_err("version 2");
    assert!(
        matches!(err, BtfError::UnsupportedVersion { version: 2 }),
        "{err:?}"
    );
}

#[test]
fn unknown_kind_is_error() {
    let mut b = Builder::new();
    b.int("int", 4);
    b.record("future", 20 << 24, 0, &[]);
    let err = Btf::parse(&b.build(false)).expect_err("kind 20");
    assert!(
        matches!(
            err,
            BtfError::UnknownKind {
                kind: 20,
                type_id: 2
            }
        ),
        "{err:?}"
    );
}

#[test]
fn typedef_cycle_is_error_not_hang() {
    let mut b = Builder::new();
    // Type 1 names itself; struct member 'loop' is typed by it.
    b.modifier(TYPEDEF, "t", 1);
    b.strukt("s", 8, &[("loop", 1, 0)]);
    let err = parse(&b.build(false))
        .member_offset("s", "loop.x")
        .expect_err("cycle");
    assert!(matches!(err, BtfError::TooDeep { .. }), "{err:?}");
}

#[test]
fn self_containing_anonymous_struct_is_error_not_overflow() {
    let mut b = Builder::new();
    // Type 1 is an anonymous struct whose only member is itself.
    b.strukt("", 4, &[("", 1, 0)]);
    b.strukt("s", 4, &[("", 1, 0)]);
    let err = parse(&b.build(false))
        .member_offset("s", "x")
        .expect_err("cycle");
    assert!(matches!(err, BtfError::TooDeep { .. }), "{err:?}");
}

#[test]
fn dangling_type_id_is_error() {
    let mut b = Builder::new();
    b.strukt("s", 8, &[("x", 99, 0)]);
    let err = parse(&b.build(false))
        .member_offset("s", "x")
        .expect_err("no type 99");
    assert!(
        matches!(err, BtfError::BadTypeId { type_id: 99 }),
        "{err:?}"
    );
}

/// Flips every byte of a valid blob in a few ways: whatever parses must then answer
/// lookups without panicking.
#[test]
fn corrupted_blobs_never_panic() {
    for big_endian in [false, true] {
        let blob = kernel_like(big_endian);
        for i in 0..blob.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = blob.clone();
                bad[i] ^= flip;
                if let Ok(btf) = Btf::parse(&bad) {
                    let _ = btf.member_offset("dentry", "d_name.len");
                    let _ = btf.member_offset("file", "f_path.dentry");
                }
            }
        }
    }
}

#[test]
fn big_endian_blob() {
    let little = parse(&kernel_like(false));
    let big = parse(&kernel_like(true));
    for (strukt, member) in [
        ("dentry", "d_name.len"),
        ("file", "f_path.dentry"),
        ("qstr", "name"),
    ] {
        let expected = little.member_offset(strukt, member).expect("little endian");
        assert_eq!(
            big.member_offset(strukt, member).expect("big endian"),
            expected
        );
    }
    assert_eq!(big.member_offset("dentry", "d_name.len").expect("len"), 36);
}

#[test]
fn missing_file_is_io_error() {
    let path = Path::new("/nonexistent/vigil/btf");
    let err = Btf::from_file(path).expect_err("no file");
    assert!(
        matches!(&err, BtfError::Io { path: p, .. } if p == path),
        "{err:?}"
    );
}

/// The members the probes read (see `agent-common/src/offsets.rs`), all of which every
/// supported kernel has.
const PROBE_MEMBERS: &[(&str, &str)] = &[
    ("task_struct", "real_parent"),
    ("task_struct", "group_leader"),
    ("task_struct", "start_boottime"),
    ("task_struct", "mm"),
    ("cred", "euid"),
    ("mm_struct", "arg_start"),
    ("fs_struct", "pwd"),
    ("dentry", "d_parent"),
    ("vfsmount", "mnt_root"),
    ("mount", "mnt_mountpoint"),
    ("file", "f_inode"),
    ("inode", "i_ino"),
    ("super_block", "s_dev"),
    ("linux_binprm", "filename"),
];

#[test]
fn real_vmlinux_offsets_are_plausible() {
    let path = Path::new(VMLINUX_BTF_PATH);
    if !path.exists() {
        println!("skipping: {VMLINUX_BTF_PATH} is absent (kernel without CONFIG_DEBUG_INFO_BTF)");
        return;
    }
    let data = std::fs::read(path).expect("read vmlinux BTF");
    let started = Instant::now();
    let btf = Btf::parse(&data).expect("parse vmlinux BTF");
    println!(
        "parsed {} bytes of vmlinux BTF in {:?}: {btf:?}",
        data.len(),
        started.elapsed()
    );
    let offset = |s: &str, m: &str| btf.member_offset(s, m).expect(m);

    assert!(offset("task_struct", "pid") < offset("task_struct", "tgid"));
    assert!(offset("dentry", "d_name.name") > offset("dentry", "d_name"));
    let name_in_qstr = offset("qstr", "name");
    assert_eq!(
        offset("dentry", "d_name.name"),
        offset("dentry", "d_name") + name_in_qstr
    );
    assert!(offset("qstr", "len") < name_in_qstr);
    assert_eq!(
        offset("file", "f_path.dentry"),
        offset("file", "f_path") + offset("path", "dentry")
    );
    for (strukt, member) in PROBE_MEMBERS {
        assert!(
            offset(strukt, member) < 1 << 16,
            "{strukt}.{member} implausibly far"
        );
    }
    let err = btf
        .member_offset("task_struct", "sched_reset_on_fork")
        .expect_err("bitfield");
    assert!(matches!(err, BtfError::Bitfield { .. }), "{err:?}");
    // The task, and on newer kernels (6.18 here; not 6.1 or 6.12) `group_dead`.
    let exit_args = btf.tracepoint_args("sched_process_exit").expect("exit");
    assert!(matches!(exit_args, 1 | 2), "{exit_args}");
    assert_eq!(btf.tracepoint_args("sched_process_fork").expect("fork"), 2);
}
