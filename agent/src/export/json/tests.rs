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

fn render(event: &Event) -> Value {
    let renderer = JsonRenderer::new(
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
        ids: Ids {
            time_ns: 2_000_000_000,
            pid: 42,
            tgid: 42,
            start_time_ns: 1_000_000_000,
            cgroup_id: 9,
        },
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
    for (code, expect_code, expect_signal) in [(3 << 8, Some(3), None), (9, None, Some(9))] {
        let KernelEvent::Exit(exit) = decode(&encode::exit(ids, code, true)).expect("exit") else {
            panic!("exit");
        };
        let json = render(&cache.apply(KernelEvent::Exit(exit)));
        assert_eq!(json["process"]["exit_code"].as_u64(), expect_code);
        assert_eq!(json["process"]["signal"].as_u64(), expect_signal);
    }
}

#[test]
fn syscall_line_has_named_args_ret_and_errno() {
    use crate::syscall::{Arch, args};

    let nr = Arch::NATIVE.number("memfd_create").expect("memfd_create");
    let record = encode::syscall(&encode::SyscallSpec {
        ids: Ids {
            time_ns: 2_000_000_000,
            pid: 42,
            tgid: 42,
            start_time_ns: 1_000_000_000,
            cgroup_id: 9,
        },
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
