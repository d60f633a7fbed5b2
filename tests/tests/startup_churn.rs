//! Processes that start and exit, and one that has exited but is not reaped, while `vigil
//! run` walks /proc at start-up: the agent starts and says it is ready, the walk counts the
//! processes that vanished in its one log line (no warning or error per process), a
//! long-lived process started before it is in the tree with its exact binary, argv and
//! parent, and an exec after the start is captured with its exact argv.

use std::{path::Path, process::Command, time::Duration};

use vigil_tests::{
    EVENT_TIMEOUT,
    daemon::{log_field as field, wait_until},
    repeat::churn,
    spawn::{canonical_bytes, install_executable, run_to_end},
    tree::ShellAndChild,
    vigil_run::{READY, VigilRun, setup},
};

#[test]
fn processes_exiting_during_the_start_up_walk_are_counted_and_the_tree_is_right() {
    let Some((vigil, dir)) = setup("startup-churn") else {
        return;
    };
    let d = dir.path();
    // A long-lived child of a shell, both started before the agent.
    let long_lived = install_executable(Path::new("/bin/sleep"), d, "vigil-long-lived");
    let mut tree = ShellAndChild::start(Path::new("/bin/sh"), &long_lived, EVENT_TIMEOUT);
    let (shell, child) = (tree.shell.pid, tree.child);
    // Exited and left unreaped until the agent is up: the walk meets it for sure.
    let mut zombie = Command::new("/bin/true").spawn().expect("spawn /bin/true");

    let churn = churn(
        install_executable(Path::new("/bin/true"), d, "vigil-churn"),
        Duration::ZERO,
    );
    wait_until(EVENT_TIMEOUT, "the churn to start", || churn.count() > 0);
    let before = churn.count();
    let agent = VigilRun::start(&vigil, d, "");
    let during = churn.count() - before;
    drop(churn);
    zombie.wait().expect("reap");
    assert!(
        during > 0,
        "processes came and went while the agent started"
    );

    // One line for the walk, with the count; no warning or error about a process.
    let log = agent.daemon.log();
    let walked: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Read running processes from /proc."))
        .collect();
    assert_eq!(walked.len(), 1, "{log}");
    let vanished: usize = field(walked[0], "vanished")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a vanished count: {}", walked[0]));
    assert!(vanished >= 1, "the unreaped child at least: {}", walked[0]);
    assert_eq!(field(walked[0], "unreadable"), Some("0"), "{}", walked[0]);
    assert!(
        field(walked[0], "processes")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n >= 3),
        "{}",
        walked[0]
    );
    assert!(!log.contains(" ERROR "), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains(" WARN ") && l.contains("/proc")),
        "{log}"
    );
    assert!(log.contains(READY));
    eprintln!(
        "{during} processes spawned while the agent started; walk: {}",
        walked[0]
    );

    // The long-lived process, known from the walk, with its parent.
    tree.kill_child();
    let exit = agent.line("exit", child);
    let p = &exit["process"];
    assert_eq!(p["origin"], "snapshot", "{exit}");
    let long_lived_text = String::from_utf8(canonical_bytes(&long_lived)).expect("UTF-8 path");
    assert_eq!(p["binary"], long_lived_text.as_str(), "{exit}");
    assert_eq!(
        p["args"],
        serde_json::json!([long_lived.to_str().expect("UTF-8"), "300"]),
        "{exit}"
    );
    assert_eq!(p["ppid"], shell, "{exit}");
    assert_eq!(exit["parent"]["pid"], shell, "{exit}");
    let sh = String::from_utf8(canonical_bytes(Path::new("/bin/sh"))).expect("UTF-8 path");
    assert_eq!(exit["parent"]["binary"], sh.as_str(), "{exit}");
    assert_eq!(p["parent_exec_id"], exit["parent"]["exec_id"], "{exit}");
    tree.shell.wait(EVENT_TIMEOUT);

    // An exec after the start, exact.
    let after = install_executable(Path::new("/bin/true"), d, "vigil-after-start");
    let ran = run_to_end(
        Command::new(&after).args(["after", "the start"]),
        EVENT_TIMEOUT,
    );
    let exec = agent.line("exec", ran.pid);
    let after_text = after.to_str().expect("UTF-8 path");
    assert_eq!(
        exec["process"]["args"],
        serde_json::json!([after_text, "after", "the start"]),
        "{exec}"
    );
    assert_eq!(exec["process"]["origin"], "exec");
    assert_eq!(exec["parent"]["pid"], std::process::id(), "{exec}");
    agent.stop_and_check_output();
}
