//! The hand-written renderer against `golden.jsonl`, written by the serde renderer it
//! replaced.

use super::*;

/// Lines of many shapes, for the byte-for-byte comparison of renderers.
fn golden_events() -> Vec<Event> {
    let mut cache = ProcessCache::new(ProcessCacheConfig {
        ancestors: 2,
        ..ProcessCacheConfig::default()
    });
    let hostile: &[u8] = b"\x1b[31mred\x1b[0m \"q\" \\ \x00\x01\x07\x08\t\n\x0b\x0c\r\x1f\x7f \xc3\xa9 \xff\xfe \xe2\x82 \xf0\x9f\x98\x80 \xed\xa0\x80 </script>";
    let mut events = Vec::new();
    let mut push = |cache: &mut ProcessCache, record: Vec<u8>| {
        events.push(cache.apply(decode(&record).expect("decodes")));
    };
    let ids = |pid: u32, start: u64, time: u64| Ids {
        time_ns: time,
        pid,
        tgid: pid,
        start_time_ns: start,
        cgroup_id: 77,
    };
    push(
        &mut cache,
        encode::exec(&ExecSpec {
            ids: ids(10, 1_000, 2_000),
            ppid: 1,
            parent_start_time_ns: 5,
            comm: b"init-ish",
            filename: b"/sbin/init",
            args: &[b"/sbin/init", b"splash"],
            binary: b"/usr/lib/systemd/systemd",
            cwd: b"/",
            cgroup: b"/init.scope",
            ..ExecSpec::default()
        }),
    );
    push(
        &mut cache,
        encode::fork(ids(20, 123_456_789, 123_456_789), 10, 1_000, false),
    );
    push(
        &mut cache,
        encode::exec(&ExecSpec {
            ids: ids(20, 123_456_789, 1_000_000_000),
            ppid: 10,
            parent_start_time_ns: 1_000,
            uid: 1000,
            comm: hostile,
            filename: hostile,
            args: &[hostile, b"", b"-c", b"caf\xe9"],
            binary: hostile,
            cwd: hostile,
            cgroup: b"/kubepods/besteffort/pod8c0d9a52-1f3e-4b7a-9c61-2d5e7f8a9b0c/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ..ExecSpec::default()
        }),
    );
    push(
        &mut cache,
        encode::fork(
            ids(30, 1_999_999_999, 1_999_999_999),
            20,
            123_456_789,
            false,
        ),
    );
    push(
        &mut cache,
        encode::fork(ids(30, 1_999_999_999, 2_000_000_001), 20, 123_456_789, true),
    );
    push(
        &mut cache,
        encode::exit(ids(30, 1_999_999_999, 2_100_000_000), 9 | 0x80, true),
    );
    push(
        &mut cache,
        encode::exit(ids(20, 123_456_789, 2_200_000_000), 3 << 8, true),
    );
    push(
        &mut cache,
        encode::exit(ids(99, 5, 2_300_000_010), 0, false),
    );
    let mut with_workload = events[2].clone();
    with_workload.container = Some(std::sync::Arc::new(crate::enrich::Container {
        id: crate::enrich::ContainerId("aaaa".into()),
        runtime: crate::enrich::Runtime::Containerd,
        name: Some("web\"1".into()),
        image: Some("localhost/app:1".into()),
        image_digest: None,
    }));
    with_workload.pod = Some(std::sync::Arc::new(crate::enrich::Pod {
        name: Some("web-0".into()),
        namespace: Some("shop".into()),
        uid: None,
        labels: [
            ("app".to_owned(), "web".to_owned()),
            ("z\n".to_owned(), "\u{1}".to_owned()),
        ]
        .into(),
    }));
    events.push(with_workload);
    let mut no_labels = events[1].clone();
    no_labels.pod = Some(std::sync::Arc::new(crate::enrich::Pod::default()));
    events.push(no_labels);
    events.push(Event::new(
        4_000_000_000,
        0,
        None,
        None,
        Detail::Loss(Loss {
            counts: vec![("ring_full", 3), ("decode", 1)],
        }),
    ));
    events.push(exec_event());
    events
}

fn golden_render(events: &[Event]) -> Vec<u8> {
    let mut renderer = JsonRenderer::new(
        "node-\"a\"".into(),
        BootClock::with_offset(1_700_000_000_123_456_700),
    );
    let mut out = Vec::new();
    for event in events {
        renderer.render(event, &mut out);
    }
    for event in events {
        let far = BootClock::with_offset(-1_700_000_000_000_000_000);
        JsonRenderer::new("n".into(), far).render(event, &mut out);
        let late = BootClock::with_offset(253_402_300_799_999_999_999 - 2_000_000_000);
        JsonRenderer::new("n".into(), late).render(event, &mut out);
    }
    out
}

/// `golden.jsonl` was written by the serde renderer that the hand-written one replaced: the
/// output is the same to the byte (escapes, field order, left-out fields, times). Since then
/// only exit lines changed: they gained `"exit":{"group_dead":..}`. Set
/// `VIGIL_GOLDEN_OUT` to a path to write what this renderer writes there.
#[test]
fn lines_are_byte_for_byte_the_golden_ones() {
    let lines = golden_render(&golden_events());
    if let Some(path) = std::env::var_os("VIGIL_GOLDEN_OUT") {
        std::fs::write(path, &lines).expect("writes");
    }
    let golden = include_bytes!("../golden.jsonl");
    for (i, (line, expected)) in lines
        .split(|&b| b == b'\n')
        .zip(golden.split(|&b| b == b'\n'))
        .enumerate()
    {
        assert_eq!(
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(expected),
            "line {}",
            i + 1
        );
    }
    assert_eq!(lines, golden);
}
