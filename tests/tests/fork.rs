//! Fork events: a process that forks without exec'ing. The child runs its parent's image, so
//! it must be reported with the parent's binary, and its exit must carry the same exec id.

use std::process::{Command, Stdio};

use vigil::{
    config::Config,
    event::Event,
    process::{ExecId, Origin},
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    select::{exec, exit, find_exec, find_group_exit, fork, is_of_key},
    spawn::{canonical_bytes, next_line, python3, spawn},
};

/// Forks; the child exits with 7 without exec'ing; the parent prints the child's pid and
/// exits 0 only if it saw that status.
const FORK_THEN_EXIT_7: &str = "
import os, sys
pid = os.fork()
if pid == 0:
    os._exit(7)
print(pid, flush=True)
_, status = os.waitpid(pid, 0)
sys.exit(0 if os.waitstatus_to_exitcode(status) == 7 else 1)
";

#[test]
fn forked_child_inherits_its_parents_image_and_exits_with_its_status() {
    let Some(mut agent) = Harness::start(&Config::default()) else {
        return;
    };
    let python = python3();
    let mut parent = spawn(
        Command::new(&python)
            .args(["-I", "-c", FORK_THEN_EXIT_7])
            .stdout(Stdio::piped()),
    );
    let lines = parent.stdout_lines();
    let child_pid: u32 = next_line(&lines, EVENT_TIMEOUT, "the forked child's pid")
        .parse()
        .expect("a pid");
    let status = parent.wait(EVENT_TIMEOUT);
    assert!(
        status.success(),
        "python saw another status than 7: {status}"
    );

    let parent_exec = agent.collect_until("python's exec", EVENT_TIMEOUT, |events| {
        find_exec(events, parent.pid, parent.since_ns)
    });
    let parent_process = parent_exec.process.clone().expect("resolved");
    assert_eq!(parent_process.binary.path, canonical_bytes(&python));
    let parent_key = parent_process.key;

    let fork_event = agent.collect_until("the fork of the child", EVENT_TIMEOUT, |events| {
        events
            .iter()
            .find(|e| {
                fork(e).is_some_and(|f| f.task.key.tgid == child_pid && f.parent == parent_key)
            })
            .cloned()
    });
    let detail = fork(&fork_event).expect("a fork event");
    let key = detail.task.key;
    assert_eq!(fork_event.pid, child_pid);
    assert_eq!(detail.task.pid, child_pid);
    assert!(!detail.thread);
    assert_eq!(detail.caller_pid, parent.pid, "python's only thread forked");
    assert!(key.start_time_ns >= parent_key.start_time_ns);
    assert!(key.start_time_ns <= fork_event.time_ns);

    let child = fork_event
        .process
        .as_deref()
        .expect("the child is resolved");
    assert_eq!(child.key, key);
    assert_eq!(child.origin, Origin::Fork);
    assert_eq!(
        child.exec_id,
        ExecId::at_start(key),
        "no exec yet: the id of its start"
    );
    assert_eq!(child.ppid, parent.pid);
    assert_eq!(child.parent, Some(parent_key));
    assert_eq!(child.parent_exec_id.as_ref(), Some(&parent_process.exec_id));
    assert_eq!(
        child.binary, parent_process.binary,
        "runs its parent's image"
    );
    assert_eq!(child.args, parent_process.args);
    assert_eq!(child.cwd, parent_process.cwd);
    assert_eq!(child.creds, parent_process.creds);
    assert_eq!(child.comm, parent_process.comm);
    let fork_parent = fork_event
        .parent
        .as_deref()
        .expect("the parent is resolved");
    assert_eq!(fork_parent.key, parent_key);
    assert_eq!(fork_parent.exec_id, parent_process.exec_id);

    let exit_event = agent.collect_until("the child's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, child_pid, key.start_time_ns)
    });
    let ended = exit(&exit_event).expect("an exit event");
    assert_eq!(ended.task.key, key);
    assert_eq!(ended.task.pid, child_pid);
    assert!(ended.group_dead);
    assert_eq!(ended.status(), Some(7));
    assert_eq!(ended.signal(), None);
    assert!(!ended.core_dumped());
    assert_eq!(ended.exit_code, 7 << 8);
    let exited = exit_event.process.as_deref().expect("resolved");
    assert_eq!(
        exited.exec_id, child.exec_id,
        "fork and exit name the same exec"
    );
    assert_eq!(exited.origin, Origin::Fork);
    assert_eq!(exited.binary, parent_process.binary);
    assert_eq!(
        exit_event.parent.as_deref().map(|p| &p.exec_id),
        Some(&parent_process.exec_id)
    );

    // Python's own exit comes after its child's, and the child never exec'd.
    agent.collect_until("python's exit", EVENT_TIMEOUT, |events| {
        find_group_exit(events, parent.pid, parent.since_ns)
    });
    let child_events: Vec<&Event> = agent
        .events()
        .iter()
        .filter(|e| is_of_key(e, key))
        .collect();
    assert!(
        child_events.iter().all(|e| exec(e).is_none()),
        "the child never exec'd: {child_events:#?}"
    );
    assert_eq!(
        child_events.len(),
        2,
        "one fork, one exit: {child_events:#?}"
    );

    agent.stop();
}
