use std::sync::Arc;

use super::*;
use crate::{
    event::{Creds, Fork, Network, NetworkOp, SocketEnds, Task, WalkedPath},
    forensics::Scope,
    process::{ExecId, Image, Origin, Process, ProcessKey},
};

const SEC: u64 = 1_000_000_000;

fn process(tgid: u32, parent: Option<u32>) -> Arc<Process> {
    let key = ProcessKey::new(tgid, 1);
    Arc::new(Process {
        key,
        exec_id: ExecId::new(key, 2),
        ppid: parent.unwrap_or(1),
        parent: parent.map(|p| ProcessKey::new(p, 1)),
        parent_exec_id: None,
        image: Arc::new(Image {
            binary: WalkedPath {
                path: format!("/bin/p{tgid}").into_bytes(),
                truncated: false,
            },
            args: vec![],
            args_truncated: false,
            cwd: WalkedPath::default(),
            comm: vec![],
            cgroup_path: vec![],
            json: Default::default(),
        }),
        creds: Creds::default(),
        cgroup_id: 1,
        origin: Origin::Exec,
        parent_json: Default::default(),
    })
}

/// A fork event of `tgid` (child of `parent`) at `time_s`.
fn fork(time_s: u64, tgid: u32, parent: u32) -> Event {
    let child = process(tgid, Some(parent));
    Event::new(
        time_s * SEC,
        tgid,
        Some(child.clone()),
        Some(process(parent, None)),
        Detail::Fork(Fork {
            task: Task {
                pid: tgid,
                key: child.key,
                cgroup_id: 1,
                time_ns: time_s * SEC,
            },
            parent: ProcessKey::new(parent, 1),
            caller_pid: parent,
            thread: false,
        }),
    )
}

fn connect(time_s: u64, tgid: u32, local: &str, remote: &str) -> Event {
    let p = process(tgid, None);
    Event::new(
        time_s * SEC,
        tgid,
        Some(p.clone()),
        None,
        Detail::Network(Network {
            task: Task {
                pid: tgid,
                key: p.key,
                cgroup_id: 1,
                time_ns: time_s * SEC,
            },
            op: NetworkOp::Connect,
            fd: 3,
            addr: None,
            backlog: None,
            socket: Some(SocketEnds {
                protocol: 6,
                local: local.parse().expect("addr"),
                remote: Some(remote.parse().expect("addr")),
            }),
            ret: 0,
            exit_time_ns: time_s * SEC,
        }),
    )
}

/// A batch as the pipeline hands it over.
fn batch(events: Vec<Event>) -> Vec<Arc<Event>> {
    events.into_iter().map(Arc::new).collect()
}

fn limits() -> RecorderLimits {
    RecorderLimits {
        max_bytes: 1 << 20,
        max_age_ns: 60 * SEC,
    }
}

fn request(pre_s: u64, post_s: u64, scope: Scope) -> DumpRequest {
    DumpRequest {
        id: 1,
        reason: "test".into(),
        pre_ns: pre_s * SEC,
        post_ns: post_s * SEC,
        scope,
        metadata: Vec::new(),
    }
}

fn tgids(dump: &Dump) -> Vec<u32> {
    dump.events.iter().map(|e| e.pid).collect()
}

#[test]
fn a_dump_holds_the_pre_window_and_what_follows_until_the_post_window_ends() {
    let mut recorder = Recorder::new(limits());
    let mut done = Vec::new();
    recorder.record(
        &batch(vec![fork(1, 10, 1), fork(5, 11, 1), fork(8, 12, 1)]),
        8 * SEC,
        &mut done,
    );
    recorder.trigger(request(4, 3, Scope::All), 9 * SEC, &mut done);
    assert!(done.is_empty(), "collecting until 12 s");
    recorder.record(&batch(vec![fork(10, 13, 1)]), 10 * SEC, &mut done);
    recorder.record(&batch(vec![fork(13, 14, 1)]), 13 * SEC, &mut done);
    assert_eq!(done.len(), 1);
    // 5 s and 8 s are within 4 s of the trigger at 9 s; 10 s is after it; the 13 s batch
    // came after the window closed (it is released on that batch, without it).
    assert_eq!(tgids(&done[0]), vec![11, 12, 13]);
    assert_eq!(done[0].trigger_ns, 9 * SEC);
}

#[test]
fn the_ring_is_bounded_by_age_and_by_bytes() {
    let mut recorder = Recorder::new(limits());
    let mut done = Vec::new();
    for t in 0..100 {
        recorder.record(&batch(vec![fork(t, 100 + t as u32, 1)]), t * SEC, &mut done);
    }
    assert_eq!(
        recorder.len(),
        61,
        "events from 39 s to 99 s are within 60 s"
    );
    let one = approx_bytes(&fork(0, 1, 1));
    let mut small = Recorder::new(RecorderLimits {
        max_bytes: one * 10,
        max_age_ns: 3600 * SEC,
    });
    for t in 0..100 {
        small.record(&batch(vec![fork(t, 100 + t as u32, 1)]), t * SEC, &mut done);
    }
    assert_eq!(small.len(), 10);
    assert!(small.bytes() <= one * 10);
    assert_eq!(small.evicted(), 90);
}

#[test]
fn a_tree_scope_keeps_descendants_ancestors_and_local_peers_only() {
    let mut recorder = Recorder::new(limits());
    let mut done = Vec::new();
    // 24, the trigger, is a child of 20: the tree is 20's; 21 its child, 22 a grandchild; 30
    // unrelated; 31 connects to a port 21 listens on.
    let trigger = fork(4, 24, 20);
    recorder.record(
        &batch(vec![
            fork(1, 20, 1),
            fork(2, 21, 20),
            fork(2, 30, 1),
            connect(3, 21, "127.0.0.1:8080", "127.0.0.1:40000"),
            fork(3, 22, 21),
        ]),
        3 * SEC,
        &mut done,
    );
    recorder.trigger(request(60, 5, Scope::tree_of(&trigger)), 4 * SEC, &mut done);
    recorder.record(
        &batch(vec![
            connect(5, 31, "127.0.0.1:40000", "127.0.0.1:8080"),
            connect(5, 32, "10.0.0.1:5555", "10.0.0.2:443"),
            fork(6, 23, 22),
        ]),
        6 * SEC,
        &mut done,
    );
    recorder.expire(10 * SEC, &mut done);
    assert_eq!(done.len(), 1);
    assert_eq!(tgids(&done[0]), vec![20, 21, 21, 22, 31, 23]);
}

#[test]
fn a_tree_named_by_pid_only_is_found_through_its_events() {
    let mut recorder = Recorder::new(limits());
    let mut done = Vec::new();
    recorder.record(
        &batch(vec![fork(1, 40, 1), fork(2, 41, 40), fork(2, 50, 1)]),
        2 * SEC,
        &mut done,
    );
    recorder.trigger(request(60, 0, Scope::tree_of_pid(40)), 3 * SEC, &mut done);
    assert_eq!(tgids(&done[0]), vec![40, 41]);
}

/// A dump asked for through the stage (as the API asks): the window is cut to what the ring
/// keeps, the reply counts what the file holds, and the request's metadata is in its header.
#[test]
fn an_asked_dump_is_answered_with_what_the_file_holds() {
    use crate::forensics::{
        capture::CaptureReader,
        dump::DumpWriter,
        stage::{Ask, RecorderStage},
    };
    let dir = std::env::temp_dir().join(format!("vigil-stage-ask-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = crate::forensics::RecorderConfig {
        dir: dir.clone(),
        ..Default::default()
    };
    let writer = DumpWriter {
        dir: dir.clone(),
        node: "node-a".into(),
        clock: crate::clock::BootClock::with_offset(0),
    };
    let mut stage = RecorderStage::start(&config, writer).expect("the writer thread");
    stage.after_flush(
        &batch(vec![
            fork(1, 10, 1),
            fork(2, 11, 10),
            fork(3, 20, 1),
            connect(4, 11, "127.0.0.1:4000", "127.0.0.1:80"),
        ]),
        5 * SEC,
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut asked = request(0, 0, Scope::tree_of_pid(10));
    asked.pre_ns = u64::MAX;
    asked.metadata = vec![("reason".into(), "INC-1".into())];
    stage.ask(
        Ask {
            request: asked,
            reply: Some(tx),
        },
        5 * SEC,
    );
    let written = rx
        .blocking_recv()
        .expect("a reply")
        .expect("the dump is written");
    assert_eq!((written.events, written.processes), (3, 2));
    assert_eq!(
        written
            .kinds
            .iter()
            .map(|(k, n)| (k.as_str(), *n))
            .collect::<Vec<_>>(),
        [("connect", 1), ("fork", 2)]
    );
    assert_eq!(written.scope, "tree:10");
    assert_eq!(
        written.bytes,
        std::fs::metadata(&written.path).expect("the file").len()
    );
    let header = CaptureReader::open(&written.path)
        .expect("open")
        .header()
        .cloned()
        .expect("a header");
    let meta = |key: &str| header.metadata.get(key).cloned().unwrap_or_default();
    assert_eq!(meta("reason"), "INC-1");
    assert_eq!(meta("pre_trigger_s"), "60", "cut to the ring's max_age_s");
    assert_eq!(meta("scope"), "tree:10");
    stage.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
