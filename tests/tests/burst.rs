//! A burst of short-lived processes: every exec and every exit must arrive, none lost.

use std::{
    collections::HashMap,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use vigil::{config::Config, event::Event};
use vigil_common::stats::KernelCounter;
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    select::{exec, exit, loss_causes, task},
    spawn::{Spawned, canonical_bytes, spawn},
};

const PROCESSES: usize = 2_000;
/// Children alive at once: enough to keep several CPUs busy, few enough for any pid_max.
const CONCURRENT: usize = 64;

/// What was seen of one child.
#[derive(Default)]
struct Seen {
    execs: usize,
    exits: usize,
}

#[test]
fn every_exec_and_exit_of_a_burst_arrives() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let true_path = Path::new("/bin/true");
    let binary = canonical_bytes(true_path);

    let started = Instant::now();
    // pid -> the earliest start time its process may have.
    let mut children: HashMap<u32, u64> = HashMap::with_capacity(PROCESSES);
    let mut running: Vec<Spawned> = Vec::with_capacity(CONCURRENT);
    for _ in 0..PROCESSES {
        if running.len() == CONCURRENT {
            for mut child in running.drain(..) {
                assert!(child.wait(EVENT_TIMEOUT).success());
            }
        }
        let child = spawn(&mut Command::new(true_path));
        // A pid reused within the burst would make two children indistinguishable here.
        assert!(
            children.insert(child.pid, child.since_ns).is_none(),
            "pid {} reused within the burst; pid_max is too small for this test",
            child.pid
        );
        running.push(child);
    }
    for mut child in running.drain(..) {
        assert!(child.wait(EVENT_TIMEOUT).success());
    }
    let spawned_in = started.elapsed();

    // Counted as batches arrive (a predicate over every event so far would be quadratic).
    let mut seen: HashMap<u32, Seen> = HashMap::with_capacity(PROCESSES);
    let mut counted = 0;
    let mut complete = 0;
    agent.collect_until(
        "an exec and an exit of every child",
        Duration::from_secs(60),
        |events| {
            for event in &events[counted..] {
                let Some(pid) = own_child(event, &children) else {
                    continue;
                };
                let entry = seen.entry(pid).or_default();
                let before = entry.execs == 1 && entry.exits == 1;
                if exec(event).is_some() {
                    entry.execs += 1;
                    assert_eq!(exec(event).expect("exec").image.binary.path, binary);
                }
                if exit(event).is_some_and(|x| x.group_dead) {
                    entry.exits += 1;
                    assert_eq!(exit(event).expect("exit").status(), Some(0));
                    let process = event.process.as_deref().expect("resolved");
                    assert_eq!(process.binary.path, binary, "the exit resolves to the exec");
                }
                let after = entry.execs == 1 && entry.exits == 1;
                if after && !before {
                    complete += 1;
                }
            }
            counted = events.len();
            (complete == PROCESSES).then_some(())
        },
    );
    let collected_in = started.elapsed();
    // Anything late (a duplicate) would arrive within a few poll intervals.
    agent.collect_for(Duration::from_millis(200));
    let summary = agent.stop();

    for event in &agent.events()[counted..] {
        let exec_or_exit = exec(event).is_some() || exit(event).is_some();
        if let Some(pid) = own_child(event, &children).filter(|_| exec_or_exit) {
            panic!("an extra event for child {pid}: {event:#?}");
        }
    }
    let duplicates: Vec<_> = seen
        .iter()
        .filter(|(_, s)| s.execs != 1 || s.exits != 1)
        .map(|(pid, s)| (pid, s.execs, s.exits))
        .collect();
    assert!(
        duplicates.is_empty(),
        "(pid, execs, exits) not exactly once: {duplicates:?}"
    );

    let losses = loss_causes(agent.events());
    assert!(losses.is_empty(), "events were lost: {losses:?}");
    assert_eq!(summary.lost, 0, "the summary counts losses: {summary:?}");
    for full in [
        KernelCounter::RingbufFullExec,
        KernelCounter::RingbufFullFork,
        KernelCounter::RingbufFullExit,
        KernelCounter::ScratchUnavailable,
    ] {
        assert_eq!(summary.submitted(full), 0, "{full:?}");
    }
    assert!(summary.submitted(KernelCounter::SubmittedExec) >= PROCESSES as u64);
    assert!(summary.submitted(KernelCounter::SubmittedExit) >= PROCESSES as u64);
    eprintln!(
        "{PROCESSES} processes spawned in {spawned_in:?}, all events in {collected_in:?}, {} events in total",
        summary.events
    );
}

/// The pid of the child `event` is about, if it is about one of `children`.
fn own_child(event: &Event, children: &HashMap<u32, u64>) -> Option<u32> {
    let task = task(event)?;
    let since = children.get(&task.key.tgid)?;
    (task.key.start_time_ns >= *since).then_some(task.key.tgid)
}
