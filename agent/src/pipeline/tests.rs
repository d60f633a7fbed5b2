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
    Ids::leader(key, time_ns)
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
            ..ProcessCacheConfig::default()
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
            ..ProcessCacheConfig::default()
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

fn cache_with(config: ProcessCacheConfig) -> Pipeline {
    Pipeline::new(config, Arc::new(Counters::default()))
}

/// init -> shell -> child -> grandchild, each exec'd.
fn chain() -> (Vec<Vec<u8>>, [ProcessKey; 4]) {
    let keys = [
        ProcessKey::new(1, 10),
        ProcessKey::new(100, 1_000),
        ProcessKey::new(200, 2_000),
        ProcessKey::new(300, 3_000),
    ];
    let records = vec![
        exec_record(keys[0], ProcessKey::new(0, 0), 20, b"/sbin/init"),
        exec_record(keys[1], keys[0], 1_100, b"/bin/sh"),
        exec_record(keys[2], keys[1], 2_100, b"/usr/bin/make"),
        exec_record(keys[3], keys[2], 3_100, b"/usr/bin/cc"),
    ];
    (records, keys)
}

#[test]
fn ancestors_are_listed_nearest_first_up_to_the_depth() {
    let mut p = cache_with(ProcessCacheConfig {
        ancestors: 2,
        ..ProcessCacheConfig::default()
    });
    let (records, keys) = chain();
    let events = run(&mut p, &records);
    let last = events.last().expect("grandchild exec");
    assert_eq!(last.parent.as_ref().map(|p| p.key), Some(keys[2]));
    let ancestors: Vec<&[u8]> = last
        .ancestors
        .iter()
        .map(|a| a.binary.path.as_slice())
        .collect();
    assert_eq!(ancestors, [&b"/bin/sh"[..], b"/sbin/init"]);

    let mut none = cache_with(ProcessCacheConfig::default());
    let events = run(&mut none, &records);
    assert!(events.iter().all(|e| e.ancestors.is_empty()));
}

#[test]
fn exited_ancestors_of_live_processes_outlive_their_grace_period() {
    let mut p = cache_with(ProcessCacheConfig {
        exit_grace_ns: 100,
        ancestors: 3,
        ..ProcessCacheConfig::default()
    });
    let (mut records, keys) = chain();
    // The shell and make exit; cc (the grandchild) lives on.
    records.push(encode::exit(ids(keys[2], 4_000), 0, true));
    records.push(encode::exit(ids(keys[1], 4_000), 0, true));
    run(&mut p, &records);
    p.tick(1_000_000);
    assert!(
        p.cache().get(&keys[2]).is_some(),
        "make is cc's parent: kept"
    );
    assert!(
        p.cache().get(&keys[1]).is_some(),
        "sh is make's parent and make has a live child"
    );
    // Once cc exits, the chain goes after its grace period.
    run(&mut p, &[encode::exit(ids(keys[3], 2_000_000), 0, true)]);
    p.tick(2_000_200);
    assert!(p.cache().get(&keys[3]).is_none());
    p.tick(4_000_000);
    assert!(p.cache().get(&keys[2]).is_none());
    p.tick(8_000_000);
    assert!(p.cache().get(&keys[1]).is_none());
}

#[test]
fn eviction_takes_exited_processes_before_ancestors_of_live_ones() {
    let mut p = cache_with(ProcessCacheConfig {
        max_entries: 6,
        exit_grace_ns: u64::MAX,
        ancestors: 3,
        ..ProcessCacheConfig::default()
    });
    let (records, keys) = chain();
    run(&mut p, &records);
    // Many short-lived children of the shell push the cache past its bound.
    for i in 0..50u32 {
        let key = ProcessKey::new(5_000 + i, 50_000 + u64::from(i));
        let t = key.start_time_ns;
        run(
            &mut p,
            &[
                encode::fork(ids(key, t), keys[1].tgid, keys[1].start_time_ns, false),
                encode::exit(ids(key, t + 1), 0, true),
            ],
        );
    }
    assert!(p.cache().len() <= 6);
    for key in &keys {
        assert!(
            p.cache().get(key).is_some(),
            "{key:?} is live or an ancestor of one"
        );
    }
    assert_eq!(p.cache().stats().evicted_ancestors, 0);
    assert!(p.cache().stats().evictions >= 48);
}

#[test]
fn a_churn_of_short_lived_processes_stays_within_entries_and_bytes() {
    let max_bytes = 1024 * 1024;
    let mut p = cache_with(ProcessCacheConfig {
        max_entries: 100_000,
        max_bytes,
        exit_grace_ns: 1_000_000,
        ancestors: 0,
    });
    let mut peak_len = 0;
    for i in 0..100_000u32 {
        let key = ProcessKey::new(10_000 + i % 30_000, 1_000_000 + u64::from(i) * 10);
        let t = key.start_time_ns;
        run(
            &mut p,
            &[
                encode::fork(ids(key, t), SHELL.tgid, SHELL.start_time_ns, false),
                exec_record(key, SHELL, t + 1, b"/usr/bin/some-tool-with-a-long-name"),
                encode::exit(ids(key, t + 2), 0, true),
            ],
        );
        if i % 1_000 == 0 {
            p.tick(t);
        }
        peak_len = peak_len.max(p.cache().len());
        assert!(
            p.cache().bytes() <= max_bytes,
            "{} bytes",
            p.cache().bytes()
        );
    }
    assert!(
        peak_len < 100_000,
        "bounded by bytes, not by count: {peak_len}"
    );
}
