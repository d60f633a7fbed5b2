//! Exit events: exit statuses, death by signal, and one exit per process however many threads
//! it had (unless threads are traced, when each thread's creation and exit are reported).

use std::{
    collections::BTreeSet,
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use vigil::{
    config::Config,
    event::Event,
    process::{Origin, ProcessKey},
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    json::render,
    select::{exit, find_exec, find_group_exit, fork, is_of_key},
    spawn::{canonical_bytes, next_line, ns_to_ticks, proc_start_ticks, python3, spawn},
};

#[test]
fn exit_status_is_reported() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    for code in [0u8, 3] {
        let script = format!("exit {code}");
        let mut child = spawn(Command::new("/bin/sh").args(["-c", &script]));
        assert_eq!(child.wait(EVENT_TIMEOUT).code(), Some(i32::from(code)));

        let event = agent.collect_until("the shell's exit", EVENT_TIMEOUT, |events| {
            find_group_exit(events, child.pid, child.since_ns)
        });
        let detail = exit(&event).expect("an exit event");
        assert_eq!(
            event.pid, child.pid,
            "a single-threaded process exits from its leader"
        );
        assert!(detail.group_dead);
        assert_eq!(detail.status(), Some(code));
        assert_eq!(detail.signal(), None);
        assert!(!detail.core_dumped());
        assert_eq!(detail.exit_code, u32::from(code) << 8);
        let process = event.process.as_deref().expect("resolved");
        assert_eq!(process.origin, Origin::Exec);
        assert_eq!(process.binary.path, canonical_bytes(Path::new("/bin/sh")));
        assert_eq!(process.args, [&b"/bin/sh"[..], b"-c", script.as_bytes()]);
        assert_eq!(process.ppid, std::process::id());

        let json = render(&event);
        assert_eq!(json["kind"], "exit");
        assert_eq!(json["process"]["exit_code"], code);
        assert_eq!(json["process"].get("signal"), None);
    }
    agent.stop();
}

#[test]
fn death_by_signal_is_reported_as_the_signal() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let mut child = spawn(Command::new("/bin/sleep").arg("30"));
    // Once its exec is seen, the child is running sleep (not still our image).
    let exec_event = agent.collect_until("sleep's exec", EVENT_TIMEOUT, |events| {
        find_exec(events, child.pid, child.since_ns)
    });
    let key = exec_event.process.as_deref().expect("resolved").key;
    assert_eq!(
        ns_to_ticks(key.start_time_ns),
        proc_start_ticks(child.pid),
        "the start time in the key is the one /proc reports"
    );
    child.signal(libc::SIGKILL);
    assert_eq!(child.wait(EVENT_TIMEOUT).signal(), Some(libc::SIGKILL));

    let event = agent.collect_until("sleep's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, child.pid, child.since_ns)
    });
    let detail = exit(&event).expect("an exit event");
    assert_eq!(detail.task.key, key);
    assert!(detail.group_dead);
    assert_eq!(detail.signal(), Some(9));
    assert_eq!(detail.status(), None);
    assert!(!detail.core_dumped());
    let process = event.process.as_deref().expect("resolved");
    assert_eq!(
        process.exec_id,
        exec_event.process.as_deref().expect("resolved").exec_id
    );
    assert_eq!(
        process.binary.path,
        canonical_bytes(Path::new("/bin/sleep"))
    );

    let json = render(&event);
    assert_eq!(json["process"]["signal"], 9);
    assert_eq!(json["process"].get("exit_code"), None);
    agent.stop();
}

/// Starts four threads, prints their thread ids once all are running, lets them finish and
/// exits with 5.
const FOUR_THREADS_THEN_EXIT_5: &str = "
import sys, threading
ready = threading.Barrier(5)
done = threading.Event()
tids = []
def work():
    tids.append(threading.get_native_id())
    ready.wait()
    done.wait()
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
ready.wait()
print(' '.join(map(str, tids)), flush=True)
done.set()
for t in threads:
    t.join()
sys.exit(5)
";

/// The main thread leaves alone (the `exit` system call, not `exit_group`); the one other
/// thread prints its id and ends the group 200 ms later with `exit_group(7)`. The group's
/// end is that thread's, deterministically.
const LEADER_FIRST_THEN_EXIT_7: &str = "
import ctypes, os, threading, time
SYS_exit = {'x86_64': 60, 'aarch64': 93}[os.uname().machine]
def last():
    print(threading.get_native_id(), flush=True)
    time.sleep(0.2)
    os._exit(7)
threading.Thread(target=last).start()
time.sleep(0.05)
ctypes.CDLL(None).syscall(SYS_exit, 0)
";

/// Runs `script` under an agent with `config`; it prints its threads' ids on one line and
/// exits with `status`. Returns the events of that process (after its exit, and a pause for
/// anything that should not come), its key and its thread ids.
fn run_threaded(
    config: &Config,
    script: &str,
    status: i32,
) -> Option<(Vec<Event>, ProcessKey, BTreeSet<u32>)> {
    let mut agent = Harness::start(config)?;
    let mut child = spawn(
        Command::new(python3())
            .args(["-I", "-c", script])
            .stdout(Stdio::piped()),
    );
    let lines = child.stdout_lines();
    let tids: BTreeSet<u32> = next_line(&lines, EVENT_TIMEOUT, "the thread ids")
        .split_whitespace()
        .map(|t| t.parse().expect("a thread id"))
        .collect();
    assert!(!tids.contains(&child.pid));
    assert_eq!(child.wait(EVENT_TIMEOUT).code(), Some(status));

    let exec_event = agent.collect_until("python's exec", EVENT_TIMEOUT, |events| {
        find_exec(events, child.pid, child.since_ns)
    });
    let key = exec_event.process.as_deref().expect("resolved").key;
    agent.collect_until("python's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, child.pid, child.since_ns)
    });
    // The reader drains every 10 ms: anything else about this process would come by now.
    agent.collect_for(Duration::from_millis(500));
    agent.stop();
    let events = agent
        .events()
        .iter()
        .filter(|e| is_of_key(e, key))
        .cloned()
        .collect();
    Some((events, key, tids))
}

/// The default configuration with `process.trace_threads` on.
fn tracing_threads() -> Config {
    let mut config = Config::default();
    config.process.trace_threads = true;
    config
}

/// The exits among `events`, as (pid, group_dead, status).
fn exits_of(events: &[Event]) -> Vec<(u32, bool, Option<u8>)> {
    events
        .iter()
        .filter_map(|e| exit(e).map(|x| (e.pid, x.group_dead, x.status())))
        .collect()
}

#[test]
fn a_group_ended_by_another_thread_exits_once_under_the_process_pid() {
    let Some((events, key, tids)) = run_threaded(&Config::default(), LEADER_FIRST_THEN_EXIT_7, 7)
    else {
        return;
    };
    assert_eq!(tids.len(), 1);
    assert_eq!(
        exits_of(&events),
        [(key.tgid, true, Some(7))],
        "one exit, the process's, with the group's status: {events:#?}"
    );
    assert!(
        events.iter().all(|e| !tids.contains(&e.pid)),
        "no event names the thread: {events:#?}"
    );
}

#[test]
fn with_trace_threads_the_thread_that_ends_the_group_reports_its_end() {
    let Some((events, key, tids)) = run_threaded(&tracing_threads(), LEADER_FIRST_THEN_EXIT_7, 7)
    else {
        return;
    };
    let thread = *tids.first().expect("one thread");
    assert_eq!(
        exits_of(&events),
        [(key.tgid, false, Some(0)), (thread, true, Some(7))],
        "the leader's own exit, then the thread's, which ends the group: {events:#?}"
    );
}

#[test]
fn a_threaded_process_exits_once_and_its_threads_are_not_reported_by_default() {
    let Some((events, key, tids)) = run_threaded(&Config::default(), FOUR_THREADS_THEN_EXIT_5, 5)
    else {
        return;
    };
    assert_eq!(tids.len(), 4);
    assert_eq!(
        exits_of(&events),
        [(key.tgid, true, Some(5))],
        "one exit for the process, none per thread: {events:#?}"
    );
    let forks: Vec<&Event> = events.iter().filter(|e| fork(e).is_some()).collect();
    assert_eq!(
        forks.len(),
        1,
        "only the fork that made the process: {forks:#?}"
    );
    assert!(!fork(forks[0]).expect("a fork").thread);
    assert_eq!(forks[0].pid, key.tgid);
    assert!(
        events.iter().all(|e| !tids.contains(&e.pid)),
        "no event names a thread: {events:#?}"
    );
}

#[test]
fn with_trace_threads_each_thread_is_created_and_exits() {
    let Some((events, key, tids)) = run_threaded(&tracing_threads(), FOUR_THREADS_THEN_EXIT_5, 5)
    else {
        return;
    };
    assert_eq!(tids.len(), 4);
    let exec_id = events
        .iter()
        .find_map(|e| e.process.as_deref().filter(|p| p.origin == Origin::Exec))
        .expect("python's exec")
        .exec_id
        .clone();

    let forks: Vec<&Event> = events
        .iter()
        .filter(|e| fork(e).is_some_and(|f| f.thread))
        .collect();
    let forked: BTreeSet<u32> = forks.iter().map(|e| e.pid).collect();
    assert_eq!(forked, tids, "one thread fork per thread: {forks:#?}");
    assert_eq!(forks.len(), tids.len());
    for event in &forks {
        let detail = fork(event).expect("a fork");
        assert!(detail.thread);
        assert_eq!(detail.task.key, key, "a thread belongs to its process");
        assert_eq!(detail.parent, key);
        assert_eq!(detail.caller_pid, key.tgid, "the main thread started them");
        let process = event.process.as_deref().expect("resolved to the process");
        assert_eq!(process.exec_id, exec_id);
    }

    let exits: Vec<&Event> = events.iter().filter(|e| exit(e).is_some()).collect();
    let mut every_thread = tids.clone();
    every_thread.insert(key.tgid);
    let exited: BTreeSet<u32> = exits.iter().map(|e| e.pid).collect();
    assert_eq!(exited, every_thread, "each thread's exit: {exits:#?}");
    assert_eq!(exits.len(), every_thread.len(), "each once: {exits:#?}");
    // The group ends with the thread that leaves it last. Usually the main thread, after
    // joining; but Python's join returns before a thread's kernel exit, so a thread can be
    // last: then its exit ends the group, with the group's status (exit_group's 5), not its own.
    let last = exits
        .iter()
        .max_by_key(|e| e.time_ns)
        .expect("exits were reported");
    let detail = exit(last).expect("an exit");
    assert!(
        detail.group_dead,
        "the last exit ends the group: {exits:#?}"
    );
    assert_eq!(detail.status(), Some(5), "the group's status: {last:#?}");
    for event in &exits {
        let detail = exit(event).expect("an exit");
        assert_eq!(detail.task.key, key, "every exit is of the process");
        let own = if event.pid == key.tgid {
            vec![Some(5)]
        } else {
            // A thread's own exit, or killed by the main thread's exit_group first.
            vec![Some(0), Some(5)]
        };
        assert!(
            own.contains(&detail.status()),
            "thread {} exited with {:?}",
            event.pid,
            detail.status()
        );
        assert_eq!(event.process.as_deref().expect("resolved").exec_id, exec_id);
    }
}
