//! A container runtime socket that hangs, or answers garbage, through the real `vigil run`:
//! events of a process in a pod-shaped cgroup still come out, with the container id and pod
//! uid that the cgroup path gives and nothing more, no later than `enrich.pending_timeout_ms`;
//! the failed lookup is counted by cause in `/metrics` and logged with the socket's path;
//! events of other processes are not held at all; the agent keeps running and stops cleanly.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use vigil_tests::{
    EVENT_TIMEOUT,
    daemon::free_port,
    fake_pod::FakePod,
    hostile_socket::{Behaviour, HostileSocket},
    scrape::{metrics_until, value},
    spawn::{install_executable, run_to_end},
    vigil_run::{VigilRun, setup},
};

/// Longer than the pending timeout, so that an event that waited for the lookup would show.
const LOOKUP_TIMEOUT_MS: u64 = 4_000;
/// Generous for a loaded CI machine, yet far from the lookup timeout.
const PENDING_TIMEOUT_MS: u64 = 1_500;
const TARGET: &str = "vigil-cri-target";

/// The exec line of `pid` running the target with `args` (the `sh` before it has the same pid).
fn exec_line(agent: &VigilRun, pid: u32, args: &[&str], since: Instant) -> (Value, Duration) {
    let line = agent.line_where(
        &format!("the exec of {TARGET} {args:?} (pid {pid})"),
        EVENT_TIMEOUT,
        |l| {
            l["kind"] == "exec"
                && l["process"]["pid"] == pid
                && l["process"]["args"].as_array().is_some_and(|a| {
                    a.len() == args.len() + 1 && a[1..].iter().zip(args).all(|(x, y)| x == y)
                })
        },
    );
    (line, since.elapsed())
}

/// Runs the target (in `pod` when given) to its end; returns its exec line and how long after
/// the end it came out (the exec was earlier still).
fn run(agent: &VigilRun, target: &Path, pod: Option<&FakePod>, args: &[&str]) -> (Value, Duration) {
    let mut command = match pod {
        Some(pod) => pod.exec(target, args),
        None => {
            let mut command = Command::new(target);
            command.args(args);
            command
        }
    };
    let child = run_to_end(&mut command, EVENT_TIMEOUT);
    exec_line(agent, child.pid, args, Instant::now())
}

#[track_caller]
fn assert_only_the_cgroup_spoke(line: &Value, pod: &FakePod) {
    assert_eq!(
        line["container"],
        json!({"id": pod.id, "runtime": "cri"}),
        "{line}"
    );
    assert_eq!(line["pod"], json!({"uid": pod.uid}), "{line}");
    assert_eq!(line["process"]["cgroup"], pod.cgroup_path(), "{line}");
}

#[track_caller]
fn assert_on_the_host(line: &Value, took: Duration) {
    assert!(
        line.get("container").is_none() && line.get("pod").is_none(),
        "{line}"
    );
    assert!(
        took < Duration::from_millis(PENDING_TIMEOUT_MS),
        "a host process's exec is not held: it came out after {took:?}"
    );
}

/// The whole case for one hostile socket, whose failures have `cause`.
fn hostile_runtime(label: &str, behaviour: Behaviour, cause: &str) {
    let Some((vigil, dir)) = setup(label) else {
        return;
    };
    let Some(pod) = FakePod::new(label) else {
        return;
    };
    let socket = HostileSocket::start(&dir.path().join("cri.sock"), behaviour);
    let port = free_port();
    let agent = VigilRun::start(
        &vigil,
        dir.path(),
        &format!(
            "[enrich]\ncri_socket = \"{}\"\nlookup_timeout_ms = {LOOKUP_TIMEOUT_MS}\n\
             pending_timeout_ms = {PENDING_TIMEOUT_MS}\n\n\
             [telemetry]\nmetrics_address = \"127.0.0.1:{port}\"\n",
            socket.path().display()
        ),
    );
    let target = install_executable(Path::new("/bin/true"), dir.path(), TARGET);

    // The container's first exec asks the runtime; a host exec right after it.
    let (first, first_took) = run(&agent, &target, Some(&pod), &["in-pod", "first"]);
    let (host, host_took) = run(&agent, &target, None, &["on-host", "first"]);
    assert_only_the_cgroup_spoke(&first, &pod);
    assert!(
        first_took < Duration::from_millis(PENDING_TIMEOUT_MS + 1_200),
        "the container's exec waited at most the pending timeout, not for the runtime: {first_took:?}"
    );
    assert_on_the_host(&host, host_took);
    assert!(socket.accepted() >= 1, "the agent asked the socket");

    // Counted by cause, and logged once with the socket's path and the cause.
    let addr = format!("127.0.0.1:{port}").parse().expect("address");
    let failures = format!("vigil_enrich_lookup_failures_total{{cause=\"{cause}\"}}");
    let body = metrics_until(
        addr,
        3 * Duration::from_millis(LOOKUP_TIMEOUT_MS) + EVENT_TIMEOUT,
        |body| value(body, &failures).is_some_and(|n| n >= 1),
    );
    let incomplete: u64 = ["timeout", "lookup_failed", "unresolved"]
        .iter()
        .filter_map(|c| {
            value(
                &body,
                &format!("vigil_enrich_incomplete_total{{cause=\"{c}\"}}"),
            )
        })
        .sum();
    assert!(
        incomplete >= 1,
        "the container's exec left without metadata, counted:\n{body}"
    );
    let other = value(&body, "vigil_enrich_lookup_failures_total{cause=\"error\"}");
    assert_eq!(
        other.unwrap_or(0),
        0,
        "not counted as a runtime error:\n{body}"
    );
    let mut daemon = agent.daemon;
    daemon.wait_for_log("Container metadata lookup failed", 1, EVENT_TIMEOUT);
    let log = daemon.log();
    let warning = log
        .lines()
        .find(|l| l.contains("Container metadata lookup failed"))
        .expect("the warning");
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(
        warning.contains(&format!("socket={}", socket.path().display())),
        "names the socket: {warning}"
    );
    assert!(warning.contains(&format!("cause={cause}")), "{warning}");
    assert!(!log.contains(" ERROR "), "nothing was lost:\n{log}");
    eprintln!("container exec after {first_took:?}, host exec after {host_took:?}; {warning}");
    let agent = VigilRun {
        daemon,
        output: agent.output,
    };

    // Still running: the container's next exec is not held (the runtime is known to fail),
    // and a host exec is as quick as ever.
    let (second, second_took) = run(&agent, &target, Some(&pod), &["in-pod", "second"]);
    assert_only_the_cgroup_spoke(&second, &pod);
    assert!(
        second_took < Duration::from_millis(PENDING_TIMEOUT_MS),
        "not held once the runtime failed: {second_took:?}"
    );
    let (host, host_took) = run(&agent, &target, None, &["on-host", "second"]);
    assert_on_the_host(&host, host_took);
    agent.stop_and_check_output();
}

#[test]
fn a_runtime_socket_that_never_answers_delays_nothing_past_the_pending_timeout() {
    hostile_runtime("cri-silent", Behaviour::Silent, "timeout");
}

#[test]
fn a_runtime_socket_that_answers_random_bytes_is_a_counted_transport_failure() {
    hostile_runtime("cri-random", Behaviour::RandomBytes, "transport");
}

#[test]
fn a_runtime_socket_that_answers_http1_is_a_counted_transport_failure() {
    hostile_runtime("cri-http1", Behaviour::Http1, "transport");
}

#[test]
fn a_runtime_socket_that_hangs_up_at_once_is_a_counted_transport_failure() {
    hostile_runtime("cri-close", Behaviour::Close, "transport");
}
