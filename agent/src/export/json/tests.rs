use serde_json::Value;

use super::*;
use crate::{
    decode::{
        decode,
        encode::{self, ExecSpec, Ids},
    },
    event::KernelEvent,
    process::{ProcessCache, ProcessCacheConfig},
};

/// The byte-for-byte comparison with the renderer this one replaced.
mod golden;

/// The hand-written file, network and DNS members against their serde schema.
mod details;

/// The task every sample record here is about: pid 42, started at 1 s, event at 2 s.
fn sample_ids() -> Ids {
    Ids {
        time_ns: 2_000_000_000,
        pid: 42,
        tgid: 42,
        start_time_ns: 1_000_000_000,
        cgroup_id: 9,
    }
}

fn render(event: &Event) -> Value {
    let mut renderer = JsonRenderer::new(
        "node-a".into(),
        BootClock::with_offset(1_700_000_000_000_000_000),
    );
    let mut out = Vec::new();
    renderer.render(event, &mut out);
    assert_eq!(out.last(), Some(&b'\n'), "one line per event");
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    serde_json::from_slice(&out).expect("valid JSON")
}

fn exec_event() -> Event {
    let record = encode::exec(&ExecSpec {
        ids: sample_ids(),
        ppid: 1,
        parent_start_time_ns: 5,
        uid: 1000,
        comm: b"tool",
        filename: b"./tool",
        args: &[b"./tool", b"", b"a b", b"caf\xe9", b"back\\slash"],
        binary: b"/opt/tool",
        cwd: b"/tmp/w",
        ..ExecSpec::default()
    });
    let KernelEvent::Exec(exec) = decode(&record).expect("decodes") else {
        panic!("exec");
    };
    ProcessCache::new(ProcessCacheConfig::default()).apply(KernelEvent::Exec(exec))
}

#[test]
fn exec_line_has_the_documented_fields() {
    let json = render(&exec_event());
    assert_eq!(json["kind"], "exec");
    assert_eq!(json["node"], "node-a");
    assert_eq!(json["time"], "2023-11-14T22:13:22Z");
    let p = &json["process"];
    assert_eq!(p["pid"], 42);
    assert_eq!(p["tgid"], 42);
    assert_eq!(p["ppid"], 1);
    assert_eq!(p["uid"], 1000);
    assert_eq!(p["binary"], "/opt/tool");
    assert_eq!(p["cwd"], "/tmp/w");
    assert_eq!(p["exec_id"], "2a-3b9aca00-77359400");
    assert_eq!(p["start_time"], "2023-11-14T22:13:21Z");
    assert_eq!(p["origin"], "exec");
    assert_eq!(
        p["args"],
        serde_json::json!(["./tool", "", "a b", "caf\\xe9", "back\\\\slash"])
    );
    assert!(p.get("exit_code").is_none());
    assert_eq!(json["exec"]["filename"], "./tool");
    assert_eq!(json["exec"]["dev"], "8:1");
    assert!(json.get("loss").is_none());
}

#[test]
fn loss_line_lists_causes() {
    let event = Event::new(
        0,
        0,
        None,
        None,
        Detail::Loss(Loss {
            counts: vec![("ringbuf_full_exec", 3), ("queue_full_fork", 1)],
        }),
    );
    let json = render(&event);
    assert_eq!(json["kind"], "loss");
    assert_eq!(json["loss"]["total"], 4);
    assert_eq!(json["loss"]["causes"]["ringbuf_full_exec"], 3);
    assert!(json.get("process").is_none());
}

#[test]
fn exit_line_carries_code_or_signal() {
    let mut cache = ProcessCache::new(ProcessCacheConfig::default());
    let ids = Ids {
        time_ns: 10,
        pid: 7,
        tgid: 7,
        start_time_ns: 1,
        cgroup_id: 0,
    };
    for (code, group_dead, expect_code, expect_signal) in [
        (0, false, Some(0), None),
        (3 << 8, true, Some(3), None),
        (9, true, None, Some(9)),
    ] {
        let KernelEvent::Exit(exit) = decode(&encode::exit(ids, code, group_dead)).expect("exit")
        else {
            panic!("exit");
        };
        let json = render(&cache.apply(KernelEvent::Exit(exit)));
        assert_eq!(json["process"]["exit_code"].as_u64(), expect_code);
        assert_eq!(json["process"]["signal"].as_u64(), expect_signal);
        assert_eq!(json["exit"], serde_json::json!({"group_dead": group_dead}));
    }
}

#[test]
fn syscall_line_has_named_args_ret_and_errno() {
    use crate::syscall::{Arch, args};

    let nr = Arch::NATIVE.number("memfd_create").expect("memfd_create");
    let record = encode::syscall(&encode::SyscallSpec {
        ids: sample_ids(),
        nr,
        args: [0x7000, 1, 0, 0, 0, 0],
        ret: -24,
        exit_time_ns: 2_000_001_500,
        arg_types: args::type_word(args::spec("memfd_create")),
        strings: &[b"vigil\"x"],
        ..encode::SyscallSpec::default()
    });
    let KernelEvent::Syscall(call) = decode(&record).expect("decodes") else {
        panic!("syscall");
    };
    let event = ProcessCache::new(ProcessCacheConfig::default()).apply(KernelEvent::Syscall(call));
    let json = render(&event);
    assert_eq!(json["kind"], "syscall");
    assert_eq!(
        json["syscall"],
        serde_json::json!({
            "name": "memfd_create",
            "nr": nr,
            "args": {"name": "vigil\"x", "flags": "MFD_CLOEXEC"},
            "ret": -24,
            "errno": "EMFILE",
            "duration_ns": 1_500,
        })
    );
    assert_eq!(json["process"]["pid"], 42);
}

/// A network syscall record as the kernel writes it, decoded, cached and rendered.
fn network_line(name: &str, args: [u64; 6], ret: i64, addr: &[u8]) -> Value {
    use crate::syscall::{Arch, args};

    let record = encode::syscall(&encode::SyscallSpec {
        ids: sample_ids(),
        nr: Arch::NATIVE.number(name).expect("a network syscall"),
        args,
        ret,
        exit_time_ns: 2_000_000_700,
        arg_types: args::type_word(args::spec(name)),
        addr,
        ..encode::SyscallSpec::default()
    });
    let event = decode(&record).expect("decodes");
    assert!(matches!(event, KernelEvent::Network(_)), "{event:?}");
    render(&ProcessCache::new(ProcessCacheConfig::default()).apply(event))
}

fn sockaddr_in(ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut b = 2u16.to_ne_bytes().to_vec();
    b.extend_from_slice(&port.to_be_bytes());
    b.extend_from_slice(&ip);
    b.extend_from_slice(&[0; 8]);
    b
}

fn sockaddr_in6(ip: std::net::Ipv6Addr, port: u16) -> Vec<u8> {
    let mut b = 10u16.to_ne_bytes().to_vec();
    b.extend_from_slice(&port.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&ip.octets());
    b.extend_from_slice(&[0; 4]);
    b
}

#[test]
fn connect_line_has_the_remote_address_and_result() {
    let addr = sockaddr_in([127, 0, 0, 1], 8080);
    let json = network_line("connect", [3, 0x7000, 16, 0, 0, 0], -111, &addr);
    assert_eq!(json["kind"], "connect");
    assert_eq!(
        json["network"],
        serde_json::json!({
            "family": "inet",
            "dst_ip": "127.0.0.1",
            "dst_port": 8080,
            "fd": 3,
            "result": "ECONNREFUSED",
            "duration_ns": 700,
        })
    );
    let json = network_line("connect", [3, 0x7000, 16, 0, 0, 0], -115, &addr);
    assert_eq!(json["network"]["result"], "in_progress");
    assert_eq!(json["process"]["pid"], 42);
}

#[test]
fn accept_line_has_the_peer_and_the_new_fd_with_mapped_v4() {
    let ip = "::ffff:127.0.0.1".parse().expect("ip");
    let json = network_line(
        "accept4",
        [4, 0x7000, 0x7100, 0x80000, 0, 0],
        7,
        &sockaddr_in6(ip, 40000),
    );
    assert_eq!(json["kind"], "accept");
    assert_eq!(
        json["network"],
        serde_json::json!({
            "family": "inet6",
            "dst_ip": "::ffff:127.0.0.1",
            "dst_port": 40000,
            "mapped_ipv4": "127.0.0.1",
            "fd": 4,
            "new_fd": 7,
            "result": "ok",
            "duration_ns": 700,
        })
    );
}

#[test]
fn bind_listen_unix_and_garbage_lines() {
    let json = network_line(
        "bind",
        [5, 0x7000, 16, 0, 0, 0],
        0,
        &sockaddr_in([0; 4], 5353),
    );
    assert_eq!(json["kind"], "bind");
    assert_eq!(json["network"]["src_ip"], "0.0.0.0");
    assert_eq!(json["network"]["src_port"], 5353);
    assert!(json["network"].get("dst_ip").is_none());

    let json = network_line("listen", [5, 128, 0, 0, 0, 0], 0, &[]);
    assert_eq!(json["kind"], "listen");
    assert_eq!(json["network"]["backlog"], 128);
    assert!(json["network"].get("family").is_none());

    let mut abstract_name = 1u16.to_ne_bytes().to_vec();
    abstract_name.extend_from_slice(b"\0vigil-test");
    let json = network_line("connect", [6, 0x7000, 13, 0, 0, 0], 0, &abstract_name);
    assert_eq!(json["network"]["family"], "unix");
    assert_eq!(json["network"]["path"], "@vigil-test");

    let json = network_line("connect", [6, 0x7000, 3, 0, 0, 0], -22, &[2, 0, 1]);
    assert_eq!(
        json["network"]["address_error"],
        "inet socket address of 3 bytes is shorter than 8 bytes"
    );
    assert_eq!(json["network"]["result"], "EINVAL");
}

#[test]
fn tcp_close_and_connect_outcome_lines() {
    use vigil_common::network::{TCP_CLOSE, TCP_ESTABLISHED, TCP_STATE_OWNER_KNOWN, TCP_SYN_SENT};

    let ids = Ids {
        time_ns: 2_000_000_000,
        pid: 42,
        tgid: 42,
        start_time_ns: 1_000_000_000,
        cgroup_id: 9,
    };
    let line = |old, new, flags| {
        let event = decode(&encode::tcp_state(ids, old, new, 2, flags)).expect("decodes");
        render(&ProcessCache::new(ProcessCacheConfig::default()).apply(event))
    };
    let json = line(TCP_ESTABLISHED, TCP_CLOSE, TCP_STATE_OWNER_KNOWN);
    assert_eq!(json["kind"], "close");
    assert_eq!(
        json["network"],
        serde_json::json!({
            "family": "inet",
            "protocol": "tcp",
            "src_ip": "127.0.0.1",
            "src_port": 40000,
            "dst_ip": "127.0.0.2",
            "dst_port": 8080,
            "result": "ok",
            "tcp_state": {"old": "ESTABLISHED", "new": "CLOSE", "owner_known": true},
        })
    );
    assert_eq!(json["process"]["pid"], 42);

    let json = line(TCP_SYN_SENT, TCP_CLOSE, TCP_STATE_OWNER_KNOWN);
    assert_eq!(json["kind"], "connect");
    assert_eq!(json["network"]["result"], "failed");
    let json = line(TCP_SYN_SENT, TCP_ESTABLISHED, 0);
    assert_eq!(json["kind"], "connect");
    assert_eq!(json["network"]["result"], "ok");
    assert!(
        json.get("process").is_none(),
        "no owner, no process: {json}"
    );
}

#[test]
fn fileless_execs_are_flagged_memfd_only_for_memfd_files() {
    let exec_of = |binary: &[u8]| {
        let record = encode::exec(&ExecSpec {
            ids: Ids::leader(crate::process::ProcessKey::new(7, 1), 2),
            flags: vigil_common::process::EXEC_EXE_UNLINKED,
            filename: b"/proc/self/fd/3",
            args: &[b"x"],
            binary,
            ..ExecSpec::default()
        });
        let KernelEvent::Exec(exec) = decode(&record).expect("decodes") else {
            panic!("exec");
        };
        assert!(exec.exe_unlinked);
        render(&ProcessCache::new(ProcessCacheConfig::default()).apply(KernelEvent::Exec(exec)))
    };
    let memfd = exec_of(b"/memfd:payload");
    assert_eq!(memfd["exec"]["deleted"], true);
    assert_eq!(memfd["exec"]["memfd"], true);
    assert_eq!(memfd["process"]["binary"], "/memfd:payload");
    let deleted = exec_of(b"/tmp/dropper");
    assert_eq!(deleted["exec"]["deleted"], true);
    assert!(deleted["exec"].get("memfd").is_none());
}

/// A file syscall record as the kernel writes it (with its path filter bit), rendered.
fn file_line(name: &str, args: [u64; 6], ret: i64, strings: &[&[u8]]) -> Value {
    use vigil_common::syscall::ARG_TYPES_PATH_FILTER;

    use crate::syscall::{Arch, args};

    let record = encode::syscall(&encode::SyscallSpec {
        ids: sample_ids(),
        nr: Arch::NATIVE.number(name).expect("a file syscall"),
        args,
        ret,
        exit_time_ns: 2_000_000_700,
        arg_types: args::type_word(args::spec(name)) | ARG_TYPES_PATH_FILTER,
        strings,
        ..encode::SyscallSpec::default()
    });
    let event = decode(&record).expect("decodes");
    assert!(matches!(event, KernelEvent::File(_)), "{event:?}");
    render(&ProcessCache::new(ProcessCacheConfig::default()).apply(event))
}

#[test]
fn file_lines_have_op_path_flags_and_result() {
    let at_fdcwd = -100i32 as u32 as u64;
    let flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64;
    let json = file_line(
        "openat",
        [at_fdcwd, 0x7000, flags, 0o644, 0, 0],
        5,
        &[b"/etc/shadow"],
    );
    assert_eq!(json["kind"], "file");
    assert_eq!(
        json["file"],
        serde_json::json!({
            "op": "open",
            "syscall": "openat",
            "path": "/etc/shadow",
            "flags": ["O_WRONLY", "O_CREAT", "O_TRUNC"],
            "mode": "0644",
            "fd": 5,
            "result": "ok",
            "duration_ns": 700,
        })
    );
    assert_eq!(json["process"]["pid"], 42);

    let json = file_line(
        "renameat2",
        [at_fdcwd, 0x7000, at_fdcwd, 0x8000, 0, 0],
        -13,
        &[b"/tmp/x", b"/etc/passwd"],
    );
    assert_eq!(json["file"]["op"], "rename");
    assert_eq!(json["file"]["path"], "/tmp/x");
    assert_eq!(json["file"]["new_path"], "/etc/passwd");
    assert_eq!(json["file"]["result"], "EACCES");
    assert!(json["file"].get("fd").is_none());

    let json = file_line(
        "fchownat",
        [at_fdcwd, 0x7000, 0, u64::from(u32::MAX), 0, 0],
        0,
        &[b"/etc/sudoers"],
    );
    assert_eq!(json["file"]["op"], "chown");
    assert_eq!(
        (json["file"]["uid"].as_i64(), json["file"]["gid"].as_i64()),
        (Some(0), Some(-1))
    );
    assert!(json["file"].get("flags").is_none());
}

#[test]
fn cred_change_line_has_both_sides_capability_names_and_changed_fields() {
    use vigil_common::cred::CredSnapshot;

    use crate::syscall::Arch;

    let mut cache = ProcessCache::new(ProcessCacheConfig::default());
    let exec = encode::exec(&ExecSpec {
        ids: sample_ids(),
        uid: 0,
        comm: b"python3",
        filename: b"/usr/bin/python3",
        binary: b"/usr/bin/python3",
        ..ExecSpec::default()
    });
    let KernelEvent::Exec(exec) = decode(&exec).expect("decodes") else {
        panic!("exec");
    };
    cache.apply(KernelEvent::Exec(exec));

    let nr = Arch::NATIVE.number("setresuid").expect("setresuid");
    // Root with every capability, as a root shell has it (41 capabilities on Linux 6.x).
    let before = CredSnapshot {
        cap_permitted: (1 << 41) - 1,
        cap_effective: (1 << 41) - 1,
        cap_bset: (1 << 41) - 1,
        ..CredSnapshot::default()
    };
    let after = CredSnapshot {
        uid: 1000,
        euid: 1000,
        suid: 1000,
        fsuid: 1000,
        cap_permitted: 0,
        cap_effective: 0,
        ..before
    };
    let record = encode::cred_change(sample_ids(), nr, 0, before, after, 0);
    let KernelEvent::CredChange(change) = decode(&record).expect("decodes") else {
        panic!("cred change");
    };
    let json = render(&cache.apply(KernelEvent::CredChange(change)));
    assert_eq!(json["kind"], "cred_change");
    // The process as it is after the change.
    assert_eq!(json["process"]["pid"], 42);
    assert_eq!(json["process"]["uid"], 1000);
    assert_eq!(json["process"]["euid"], 1000);
    assert_eq!(json["process"]["binary"], "/usr/bin/python3");
    let cred = &json["cred"];
    assert_eq!(cred["syscall"], "setresuid");
    assert_eq!(cred["nr"], nr);
    assert_eq!(cred["ret"], 0);
    assert!(cred.get("errno").is_none());
    assert_eq!(cred["duration_ns"], 1_500);
    assert_eq!(
        cred["changed"],
        serde_json::json!([
            "uid",
            "euid",
            "suid",
            "fsuid",
            "cap_permitted",
            "cap_effective"
        ])
    );
    let (b, a) = (&cred["before"], &cred["after"]);
    for id in ["uid", "euid", "suid", "fsuid"] {
        assert_eq!(
            (&b[id], &a[id]),
            (&Value::from(0), &Value::from(1000)),
            "{id}"
        );
    }
    for id in ["gid", "egid", "sgid", "fsgid", "securebits"] {
        assert_eq!((&b[id], &a[id]), (&Value::from(0), &Value::from(0)), "{id}");
    }
    assert_eq!(b["cap_effective"]["mask"], "0x1ffffffffff");
    let names = b["cap_effective"]["names"].as_array().expect("names");
    assert_eq!(names.len(), 41);
    assert_eq!(names[0], "CAP_CHOWN");
    assert_eq!(names[21], "CAP_SYS_ADMIN");
    assert_eq!(
        a["cap_effective"],
        serde_json::json!({"mask": "0x0", "names": []})
    );
    assert_eq!(a["cap_bset"]["mask"], "0x1ffffffffff");
    assert_eq!(
        a["cap_ambient"],
        serde_json::json!({"mask": "0x0", "names": []})
    );

    // A thread's own change (a raw syscall in one thread) leaves the process as it was.
    let thread = Ids {
        pid: 43,
        ..sample_ids()
    };
    let back = encode::cred_change(thread, nr, 0, after, before, 0);
    let KernelEvent::CredChange(change) = decode(&back).expect("decodes") else {
        panic!("cred change");
    };
    let json = render(&cache.apply(KernelEvent::CredChange(change)));
    assert_eq!(json["process"]["pid"], 43);
    assert_eq!(json["process"]["uid"], 1000);
    assert_eq!(json["cred"]["after"]["uid"], 0);
}

#[test]
fn dns_queries_render_question_and_server() {
    use vigil_common::network::DNS_OVER_TCP;

    // www.example.com, type A, id 0x1234.
    let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
                  \x03www\x07example\x03com\x00\x00\x01\x00\x01";
    let line = |payload: &[u8], flags| {
        let record = encode::dns(sample_ids(), [10, 0, 0, 53], 5353, payload, flags);
        let event = decode(&record).expect("decodes");
        render(&ProcessCache::new(ProcessCacheConfig::default()).apply(event))
    };
    let json = line(query, 0);
    assert_eq!(json["kind"], "dns");
    assert_eq!(
        json["network"],
        serde_json::json!({
            "family": "inet",
            "protocol": "udp",
            "src_ip": "127.0.0.1",
            "src_port": 5353,
            "dst_ip": "10.0.0.53",
            "dst_port": 53,
            "result": "sent",
        })
    );
    assert_eq!(
        json["dns"],
        serde_json::json!({
            "name": "www.example.com.",
            "type": "A",
            "type_code": 1,
            "class": "IN",
            "id": 0x1234,
            "opcode": "QUERY",
            "length": query.len(),
        })
    );
    assert_eq!(json["process"]["pid"], 42);

    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    let json = line(&framed, DNS_OVER_TCP);
    assert_eq!(json["network"]["protocol"], "tcp");
    assert_eq!(json["dns"]["name"], "www.example.com.");

    let json = line(b"\x00\x01not dns", 0);
    assert_eq!(
        json["dns"],
        serde_json::json!({
            "length": 9,
            "malformed": "DNS header: unexpected end of input reached",
        })
    );
}

#[test]
fn a_dns_record_claiming_more_payload_than_it_has_is_refused() {
    let mut record = encode::dns(sample_ids(), [10, 0, 0, 53], 5353, b"abc", 0);
    // payload_len sits right after family, protocol, sport and dport.
    let at = size_of::<vigil_common::event::Header>() + 8;
    record[at..at + 2].copy_from_slice(&100u16.to_ne_bytes());
    assert!(matches!(
        decode(&record),
        Err(crate::decode::DecodeError::SectionsOverflow { kind: "dns", .. })
    ));
}
