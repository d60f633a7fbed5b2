//! Processes that started before the agent: read from /proc at start-up (`process.snapshot`),
//! then matched to the exact start time that the first kernel record naming them carries.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use vigil::{
    config::Config,
    event::Event,
    process::{ExecId, Origin, ProcessKey},
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    select::{exit, find_exec, find_group_exit},
    spawn::{
        Spawned, TempDir, canonical_bytes, clock_ticks_per_second, own_creds, proc_start_ticks,
        run_to_end, spawn,
    },
};

/// The key a /proc snapshot gives `pid`: its start time, precise to a clock tick.
fn snapshot_key(pid: u32) -> ProcessKey {
    let tick_ns = 1_000_000_000 / clock_ticks_per_second();
    ProcessKey::new(pid, proc_start_ticks(pid) * tick_ns)
}

/// `sleep 30` in `dir`, once it runs sleep (so that /proc shows sleep, not our image).
fn sleeper(dir: &Path) -> Spawned {
    let child = spawn(Command::new("/bin/sleep").arg("30").current_dir(dir));
    let sleep = canonical_bytes(Path::new("/bin/sleep"));
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let exe = std::fs::read_link(format!("/proc/{}/exe", child.pid)).unwrap_or_default();
        if vigil_tests::spawn::bytes(&exe) == sleep {
            return child;
        }
        assert!(
            Instant::now() < deadline,
            "sleep {} did not start",
            child.pid
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills `child` and returns its exit event.
fn kill_and_collect_exit(agent: &mut Harness, child: &mut Spawned) -> Event {
    child.signal(libc::SIGKILL);
    child.wait(EVENT_TIMEOUT);
    agent.collect_until("the exit of the earlier process", EVENT_TIMEOUT, |events| {
        find_group_exit(events, child.pid, child.since_ns)
    })
}

#[test]
fn a_process_started_before_the_agent_is_known_from_proc() {
    let dir = TempDir::new("snapshot");
    let mut child = sleeper(dir.path());
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let approx = snapshot_key(child.pid);
    let event = kill_and_collect_exit(&mut agent, &mut child);

    let detail = exit(&event).expect("an exit");
    assert_eq!(detail.signal(), Some(9));
    let process = event.process.as_deref().expect("known from the snapshot");
    assert_eq!(process.origin, Origin::Snapshot);
    assert_eq!(
        process.key, detail.task.key,
        "re-keyed to the exact start time"
    );
    assert_eq!(
        process.exec_id,
        ExecId::at_start(approx),
        "the id given at start-up"
    );
    assert_eq!(
        process.binary.path,
        canonical_bytes(Path::new("/bin/sleep"))
    );
    assert_eq!(process.args, [&b"/bin/sleep"[..], b"30"]);
    assert_eq!(process.cwd.path, vigil_tests::spawn::bytes(dir.path()));
    assert_eq!(process.creds, own_creds());
    assert_eq!(process.comm, b"sleep");
    assert_eq!(process.ppid, std::process::id());
    let own = snapshot_key(std::process::id());
    assert_eq!(process.parent_exec_id, Some(ExecId::at_start(own)));
    let parent = event
        .parent
        .as_deref()
        .expect("the parent: this test process");
    assert_eq!(parent.origin, Origin::Snapshot);
    assert_eq!(parent.exec_id, ExecId::at_start(own));
    let exe = std::env::current_exe().expect("own executable");
    assert_eq!(parent.binary.path, vigil_tests::spawn::bytes(&exe));

    agent.stop();
}

#[test]
fn a_process_started_before_the_agent_keeps_its_parent_once_the_parent_is_seen_again() {
    let dir = TempDir::new("snapshot-parent");
    let mut child = sleeper(dir.path());
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    // A fork of this process names it with its exact key: the cache re-keys its entry, and
    // the earlier child's record of its parent (the tick-precise key) must still resolve.
    let other = run_to_end(&mut Command::new("/bin/true"), EVENT_TIMEOUT);
    agent.collect_until("the exec of /bin/true", EVENT_TIMEOUT, |events| {
        find_exec(events, other.pid, other.since_ns)
    });
    let event = kill_and_collect_exit(&mut agent, &mut child);

    let own = snapshot_key(std::process::id());
    let parent = event
        .parent
        .as_deref()
        .expect("the parent: this test process");
    assert_eq!(parent.exec_id, ExecId::at_start(own));

    agent.stop();
}

#[test]
fn without_the_snapshot_earlier_processes_are_only_known_from_events() {
    let mut config = Config::default();
    config.process.snapshot = false;
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let child = run_to_end(&mut Command::new("/bin/true"), EVENT_TIMEOUT);
    let event = agent.collect_until("the exec of /bin/true", EVENT_TIMEOUT, |events| {
        find_exec(events, child.pid, child.since_ns)
    });
    let parent = event
        .parent
        .as_deref()
        .expect("the parent is recorded from the event");
    assert_eq!(parent.origin, Origin::Unknown);
    assert_eq!(parent.key.tgid, std::process::id());
    assert_eq!(parent.exec_id, ExecId::at_start(parent.key));
    assert!(
        parent.binary.path.is_empty(),
        "nothing is known of it but its key"
    );
    assert!(parent.args.is_empty());

    agent.stop();
}
