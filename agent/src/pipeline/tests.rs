//! Tier 2: records built in userspace go through the real pipeline (decode, process cache)
//! into events, with no kernel and no root.

use std::sync::Arc;

use super::Pipeline;
use crate::{
    decode::encode::{self, ExecSpec, Ids},
    event::{Detail, Event},
    process::{ExecId, Origin, ProcessCacheConfig, ProcessKey},
    source::Batch,
    telemetry::{Counters, Drop},
};

const SHELL: ProcessKey = ProcessKey::new(100, 1_000);
const CHILD: ProcessKey = ProcessKey::new(200, 2_000);

fn ids(key: ProcessKey, time_ns: u64) -> Ids {
    Ids {
        time_ns,
        pid: key.tgid,
        tgid: key.tgid,
        start_time_ns: key.start_time_ns,
        cgroup_id: 1,
    }
}

fn exec_record(key: ProcessKey, parent: ProcessKey, time_ns: u64, binary: &[u8]) -> Vec<u8> {
    encode::exec(&ExecSpec {
        ids: ids(key, time_ns),
        ppid: parent.tgid,
        parent_start_time_ns: parent.start_time_ns,
        filename: binary,
        args: &[binary, b"--flag"],
        binary,
        cwd: b"/srv",
        ..ExecSpec::default()
    })
}

fn run(pipeline: &mut Pipeline, records: &[Vec<u8>]) -> Vec<Event> {
    let mut batch = Batch::default();
    for record in records {
        batch.push(record);
    }
    let mut out = Vec::new();
    pipeline.process_batch(&batch, &mut out);
    out
}

fn pipeline() -> (Pipeline, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    (
        Pipeline::new(ProcessCacheConfig::default(), counters.clone()),
        counters,
    )
}

#[test]
fn fork_exec_exit_share_identity_and_parentage() {
    let (mut p, _) = pipeline();
    let events = run(
        &mut p,
        &[
            exec_record(SHELL, ProcessKey::new(1, 1), 1_500, b"/bin/sh"),
            encode::fork(ids(CHILD, 2_000), SHELL.tgid, SHELL.start_time_ns, false),
            exec_record(CHILD, SHELL, 2_100, b"/usr/bin/ls"),
            encode::exit(ids(CHILD, 2_900), 0, true),
        ],
    );
    let kinds: Vec<&str> = events.iter().map(|e| e.detail.kind()).collect();
    assert_eq!(kinds, ["exec", "fork", "exec", "exit"]);

    let shell = events[0].process.clone().expect("shell");
    let forked = events[1].process.clone().expect("forked child");
    assert_eq!(forked.origin, Origin::Fork);
    assert_eq!(
        forked.binary.path, b"/bin/sh",
        "a fork runs its parent's image"
    );
    assert_eq!(forked.exec_id, ExecId::at_start(CHILD));
    assert_eq!(forked.parent_exec_id.as_ref(), Some(&shell.exec_id));

    let execd = events[2].process.clone().expect("exec'd child");
    assert_eq!(execd.binary.path, b"/usr/bin/ls");
    assert_eq!(execd.exec_id, ExecId::new(CHILD, 2_100));
    assert_ne!(execd.exec_id, forked.exec_id, "an exec gets its own id");
    assert_eq!(
        events[2].parent.as_ref().map(|p| &p.exec_id),
        Some(&shell.exec_id)
    );

    let exited = &events[3];
    assert_eq!(
        exited.process.as_ref().map(|p| &p.exec_id),
        Some(&execd.exec_id)
    );
    assert_eq!(exited.time_ns, 2_900);
    assert!(matches!(&exited.detail, Detail::Exit(e) if e.status() == Some(0)));
}

#[test]
fn exit_before_anything_resolves_as_unknown_and_stays_consistent() {
    let (mut p, _) = pipeline();
    let events = run(
        &mut p,
        &[
            encode::fork(ids(CHILD, 2_000), SHELL.tgid, SHELL.start_time_ns, true),
            encode::exit(ids(CHILD, 2_500), 0, true),
        ],
    );
    let first = events[0].process.clone().expect("resolved");
    let second = events[1].process.clone().expect("resolved");
    assert_eq!(first.origin, Origin::Unknown);
    assert_eq!(first.exec_id, second.exec_id);
    assert_eq!(
        p.cache().stats().misses,
        2,
        "the child and its unknown parent"
    );
}

#[test]
fn exec_before_fork_keeps_the_exec_image() {
    let (mut p, _) = pipeline();
    let events = run(
        &mut p,
        &[
            exec_record(CHILD, SHELL, 2_100, b"/usr/bin/ls"),
            encode::fork(ids(CHILD, 2_000), SHELL.tgid, SHELL.start_time_ns, false),
        ],
    );
    // The late fork still describes the child; the cache now holds the fork's view, which is
    // the image before the exec. Later events must resolve to the same key.
    assert_eq!(events[1].process.as_ref().map(|p| p.key), Some(CHILD));
}

#[test]
fn pid_reuse_gives_a_new_identity() {
    let (mut p, _) = pipeline();
    let reused = ProcessKey::new(CHILD.tgid, 9_000);
    let events = run(
        &mut p,
        &[
            exec_record(CHILD, SHELL, 2_100, b"/bin/a"),
            encode::exit(ids(CHILD, 2_200), 0, true),
            exec_record(reused, SHELL, 9_100, b"/bin/b"),
        ],
    );
    let a = events[0].process.clone().expect("a");
    let b = events[2].process.clone().expect("b");
    assert_ne!(a.exec_id, b.exec_id);
    assert_eq!(b.binary.path, b"/bin/b");
}

#[test]
fn exited_processes_go_after_the_grace_period_only() {
    let counters = Arc::new(Counters::default());
    let mut p = Pipeline::new(
        ProcessCacheConfig {
            max_entries: 100,
            exit_grace_ns: 1_000,
        },
        counters,
    );
    run(
        &mut p,
        &[
            exec_record(CHILD, SHELL, 2_100, b"/bin/a"),
            encode::exit(ids(CHILD, 3_000), 0, true),
        ],
    );
    p.tick(3_500);
    assert!(p.cache().get(&CHILD).is_some(), "still in its grace period");
    p.tick(4_001);
    assert!(p.cache().get(&CHILD).is_none());
    assert_eq!(p.cache().stats().expired, 1);
}

#[test]
fn cache_stays_within_its_bound() {
    let mut p = Pipeline::new(
        ProcessCacheConfig {
            max_entries: 50,
            exit_grace_ns: u64::MAX,
        },
        Arc::new(Counters::default()),
    );
    let records: Vec<Vec<u8>> = (0..1_000u32)
        .map(|i| {
            let key = ProcessKey::new(1_000 + i, 10_000 + u64::from(i));
            encode::fork(
                ids(key, key.start_time_ns),
                SHELL.tgid,
                SHELL.start_time_ns,
                false,
            )
        })
        .collect();
    run(&mut p, &records);
    assert!(p.cache().len() <= 50, "{}", p.cache().len());
    assert!(p.cache().stats().evictions >= 950);
}

#[test]
fn bad_records_are_counted_and_do_not_stop_good_ones() {
    let (mut p, counters) = pipeline();
    let mut unknown = encode::exit(ids(CHILD, 1), 0, true);
    unknown[0..2].copy_from_slice(&77u16.to_ne_bytes());
    let events = run(
        &mut p,
        &[
            vec![1, 2, 3],
            unknown,
            exec_record(CHILD, SHELL, 2_100, b"/bin/a"),
        ],
    );
    assert_eq!(events.len(), 1);
    let totals = counters.snapshot();
    assert_eq!(totals[Drop::DecodeTruncated as usize], 1);
    assert_eq!(totals[Drop::DecodeUnknownKind as usize], 1);
}

#[test]
fn snapshot_entries_match_exact_kernel_start_times() {
    use crate::{event::WalkedPath, process::snapshot::ProcEntry};
    let (mut p, _) = pipeline();
    let tick = 10_000_000;
    let shell_start_exact = 1_234_567_891;
    let entry = |tgid, ppid, start, binary: &[u8]| ProcEntry {
        tgid,
        ppid,
        start_time_ns: start,
        binary: WalkedPath {
            path: binary.to_vec(),
            truncated: false,
        },
        args: vec![binary.to_vec()],
        cwd: WalkedPath::default(),
        creds: Default::default(),
        comm: vec![],
        cgroup_id: 1,
        cgroup_path: b"/".to_vec(),
    };
    p.cache.seed(
        vec![
            entry(1, 0, 0, b"/sbin/init"),
            entry(100, 1, shell_start_exact / tick * tick, b"/bin/bash"),
        ],
        tick,
    );
    let shell = ProcessKey::new(100, shell_start_exact);
    let events = run(
        &mut p,
        &[exec_record(CHILD, shell, 2_000_000_000, b"/bin/ls")],
    );
    let parent = events[0].parent.clone().expect("parent from the snapshot");
    assert_eq!(parent.origin, Origin::Snapshot);
    assert_eq!(parent.binary.path, b"/bin/bash");
    assert_eq!(parent.key, shell, "re-keyed to the exact start time");
    assert_eq!(
        events[0]
            .process
            .as_ref()
            .and_then(|c| c.parent_exec_id.clone()),
        Some(parent.exec_id.clone())
    );
    assert_eq!(p.cache().stats().misses, 0);
}
