//! Containment through the running agent's API, as an operator uses it: `vigil contain`
//! talks to an agent running in this test process (its API socket and its enforcement layout
//! private to the test), the agent acts, and each action is an enforcement event (`by:
//! operator`) in its output, in a tonic client's stream and in `vigil events`, listed by
//! `vigil enforcement list` and undone by `vigil contain release`. Refused requests come back
//! as gRPC errors naming the field, and are reported too.

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil::{
    api::{client, proto},
    config::Config,
    event::{Detail, Event},
    response::{By, Enforcement},
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    binary::{run, vigil_binary},
    enforcement::PrivateLayout,
    json::render,
    spawn::{Spawned, TempDir, install_executable, spawn},
};

const SIGKILL: i32 = 9;

/// An agent with its API socket and enforcement layout in `dir`, and no policies: what an
/// operator asks is all that acts.
fn agent(
    dir: &TempDir,
    label: &str,
    allow: &[PathBuf],
) -> Option<(Harness, PathBuf, PrivateLayout)> {
    let socket = dir.path().join("run/vigil.sock");
    let private = PrivateLayout::new(label, &dir.path().join("state"));
    let mut config = Config::default();
    config.api.socket = socket.clone();
    config.policy.enabled = false;
    config.enforcement.allow_executables = allow.to_vec();
    private.apply(&mut config);
    Harness::start(&config).map(|h| (h, socket, private))
}

fn operator_event<'e>(event: &'e Event, action: &str, target: &str) -> Option<&'e Enforcement> {
    match &event.detail {
        Detail::Enforcement(e)
            if e.by == By::Operator && e.action == action && e.target == target =>
        {
            Some(e)
        }
        _ => None,
    }
}

/// `vigil events --json --kind enforcement` on `socket`, live: probed with a release of a rule
/// that does not exist until the probe's event comes through.
fn events_command(vigil: &Path, socket: &str) -> (Spawned, Receiver<String>) {
    let mut events = spawn(
        Command::new(vigil)
            .args([
                "events",
                "--socket",
                socket,
                "--kind",
                "enforcement",
                "--json",
            ])
            .stdout(Stdio::piped()),
    );
    let lines = events.stdout_lines();
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "`vigil events` never showed the probe"
        );
        let probe = run(
            vigil,
            &["contain", "--socket", socket, "release", "4000000000"],
        );
        assert!(
            probe
                .failed()
                .contains("release.id: no enforcement rule with id 4000000000")
        );
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(300)) {
            assert!(line.contains("rule:4000000000"), "{line}");
            return (events, lines);
        }
    }
}

/// The `Enforcement` detail of a `vigil events --json` line, when it is one.
fn enforcement_json(line: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(line).expect("`vigil events --json` prints JSON");
    value["detail"].get("Enforcement").cloned()
}

#[test]
fn deny_exec_through_the_agent_kills_at_exec_is_reported_listed_and_released() {
    let dir = TempDir::new("contain-api");
    let Some(vigil) = vigil_binary() else {
        return;
    };
    let Some((mut agent, socket, private)) = agent(&dir, "api-exec", &[]) else {
        return;
    };
    let socket_arg = socket.to_str().expect("UTF-8 path");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the client");
    // Subscribed once the call returns: nothing after this point is missed.
    let mut stream = rt.block_on(async {
        let mut client = client::connect(&socket).await.expect("connect to the API");
        client
            .get_events(proto::EventsRequest {
                allow: vec![proto::EventFilter {
                    kinds: vec!["enforcement".into()],
                    ..Default::default()
                }],
                deny: vec![],
            })
            .await
            .expect("GetEvents")
            .into_inner()
    });
    let (_events, lines) = events_command(&vigil, socket_arg);

    let denied = install_executable(Path::new("/usr/bin/touch"), dir.path(), "api-denied");
    let denied_str = denied.to_str().expect("UTF-8 path");
    let contain = run(
        &vigil,
        &[
            "contain",
            "--socket",
            socket_arg,
            "--reason",
            "INC-42",
            "--json",
            "deny-exec",
            denied_str,
        ],
    );
    let reply: Value = serde_json::from_str(contain.ok()).expect("--json prints the reply");
    let answered = &reply["enforcement"];
    let id = answered["rule_id"].as_u64().expect("the rule's id") as u32;
    let target = format!("binary:{denied_str}");
    let requested_by = format!("uid=0 pid={}", contain.pid);
    assert_eq!(answered["action"], "deny_exec", "{reply}");
    assert_eq!(answered["by"], "operator");
    assert_eq!(answered["outcome"], "ok");
    assert_eq!(answered["target"], target.as_str());
    assert_eq!(answered["requested_by"], requested_by.as_str());
    assert_eq!(answered["record"]["origin"], "api:uid=0");
    assert_eq!(answered["record"]["path"], denied_str);

    // The kernel kills the binary at exec, before it runs.
    let marker = dir.path().join("marker");
    let mut child = spawn(Command::new(&denied).arg(&marker));
    let status = child.wait(EVENT_TIMEOUT);
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    assert!(!marker.exists(), "the denied binary ran");

    // The agent's output: the operator's action, then the kernel's record of the same rule.
    let pid = child.pid;
    let (action, kill) = agent.collect_until(
        "the action and the kernel's record",
        EVENT_TIMEOUT,
        |events| {
            let action = events
                .iter()
                .find(|e| operator_event(e, "deny_exec", &target).is_some())?;
            let kill = events.iter().find(|e| {
            matches!(&e.detail, Detail::Enforcement(k) if k.by == By::Kernel && k.tgid == pid)
        })?;
            Some((action.clone(), kill.clone()))
        },
    );
    let e = operator_event(&action, "deny_exec", &target).expect("the operator's event");
    assert_eq!(
        (e.rule_id, e.outcome, e.error.as_deref()),
        (Some(id), "ok", None)
    );
    assert_eq!(e.binary.as_deref(), Some(denied_str));
    assert!(e.rule.is_none(), "no policy rule asked");
    assert!(e.latency_ns > 0);
    let operator = e.operator.as_deref().expect("who asked");
    assert_eq!(operator.requested_by, requested_by);
    assert_eq!(operator.reason, "INC-42");
    let record = operator.record.as_ref().expect("the rule it made");
    assert_eq!((record.id, record.origin.as_str()), (id, "api:uid=0"));
    let Detail::Enforcement(k) = &kill.detail else {
        unreachable!()
    };
    assert_eq!(
        (k.action, k.rule_id, k.binary.as_deref(), k.comm.as_str()),
        ("exec_killed", Some(id), Some(denied_str), "api-denied"),
        "the kernel's record names the operator's rule"
    );
    // As `vigil run` writes it.
    let line = render(&action);
    eprintln!("{line}");
    let json = &line["enforcement"];
    assert_eq!(line["kind"], "enforcement");
    assert_eq!(json["action"], "deny_exec");
    assert_eq!(json["by"], "operator");
    assert_eq!(json["rule_id"], u64::from(id));
    assert_eq!(json["target"], target.as_str());
    assert_eq!(json["outcome"], "ok");
    assert_eq!(json["requested_by"], requested_by.as_str());
    assert_eq!(json["reason"], "INC-42");
    assert_eq!(json["record"]["kind"], "deny_exec");
    assert_eq!(json["record"]["path"], denied_str);
    assert_eq!(json["record"]["origin"], "api:uid=0");
    assert!(json.get("rule").is_none(), "{line}");

    // The API's stream: the same action, then the kernel's record.
    let streamed = rt.block_on(async {
        tokio::time::timeout(EVENT_TIMEOUT, async {
            let mut seen = Vec::new();
            while seen.len() < 2 {
                let event = stream
                    .message()
                    .await
                    .expect("the stream")
                    .expect("it goes on");
                if let Some(proto::event::Detail::Enforcement(e)) = event.detail
                    && e.rule_id == Some(id)
                {
                    seen.push(e);
                }
            }
            seen
        })
        .await
        .expect("both events on the stream")
    });
    assert_eq!(
        (
            streamed[0].by.as_str(),
            streamed[0].action.as_str(),
            streamed[0].requested_by.as_str()
        ),
        ("operator", "deny_exec", requested_by.as_str())
    );
    assert_eq!(streamed[0].reason, "INC-42");
    assert_eq!(
        streamed[0].record.as_ref().map(|r| r.path.as_str()),
        Some(denied_str)
    );
    assert_eq!(
        (
            streamed[1].by.as_str(),
            streamed[1].action.as_str(),
            streamed[1].tgid
        ),
        ("kernel", "exec_killed", pid)
    );

    // `vigil events`.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let shown = loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the action in `vigil events`");
        if let Some(e) = enforcement_json(&line)
            && e["rule_id"] == u64::from(id)
            && e["by"] == "operator"
        {
            break e;
        }
    };
    assert_eq!(shown["action"], "deny_exec");
    assert_eq!(shown["requested_by"], requested_by.as_str());

    // Listed, with the kernel's hit, from the agent.
    let list = run(&vigil, &["enforcement", "--socket", socket_arg, "list"]);
    let listed = list.ok();
    let line = listed
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("rule {id} is not listed: {listed}"));
    assert!(
        line.contains("deny_exec")
            && line.contains(denied_str)
            && line.contains("hits=1")
            && line.contains("(origin api:uid=0)"),
        "{line}"
    );
    assert!(
        listed.starts_with(&format!(
            "pinned programs ({}/links): enforce_exec",
            private.layout.bpffs_dir.display()
        )),
        "the agent's private layout: {listed}"
    );

    // Released: the binary runs again, and the release is reported.
    let released = run(
        &vigil,
        &[
            "contain",
            "--socket",
            socket_arg,
            "release",
            &id.to_string(),
        ],
    );
    assert!(
        released
            .ok()
            .starts_with(&format!("released rule {id} (deny_exec {denied_str}")),
        "{released:?}"
    );
    let mut again = spawn(Command::new(&denied).arg(&marker));
    assert!(
        again.wait(EVENT_TIMEOUT).success(),
        "released: the binary runs"
    );
    assert!(marker.exists());
    let release_target = format!("rule:{id}");
    let release = agent.collect_until("the release's event", EVENT_TIMEOUT, |events| {
        events
            .iter()
            .find_map(|e| operator_event(e, "release", &release_target).cloned())
    });
    assert_eq!((release.rule_id, release.outcome), (Some(id), "ok"));
    let list = run(&vigil, &["enforcement", "--socket", socket_arg, "list"]);
    assert!(list.ok().contains("no rules"), "{list:?}");
}

#[test]
fn refused_requests_name_their_field_and_are_reported() {
    let dir = TempDir::new("contain-refused");
    let Some(vigil) = vigil_binary() else {
        return;
    };
    let protected = install_executable(Path::new("/usr/bin/sleep"), dir.path(), "protected-sleep");
    let Some((mut agent, socket, _private)) =
        agent(&dir, "api-refused", std::slice::from_ref(&protected))
    else {
        return;
    };
    let socket_arg = socket.to_str().expect("UTF-8 path");
    let contain = |args: &[&str]| {
        let mut all = vec!["contain", "--socket", socket_arg];
        all.extend_from_slice(args);
        run(&vigil, &all)
    };

    // Through the CLI: each error names the field at fault and the gRPC status.
    let me = std::process::id().to_string();
    assert_eq!(
        contain(&["kill", "--pid", "1"]).failed(),
        "vigil: error: kill.pid: refused: pid 1 is init or invalid (gRPC FailedPrecondition)"
    );
    assert_eq!(
        contain(&["kill", "--pid", &me]).failed(),
        "vigil: error: kill.pid: refused: that is the agent itself (gRPC FailedPrecondition)"
    );
    let mut sleeper = spawn(Command::new(&protected).arg("30"));
    let refused = contain(&["kill", "--pid", &sleeper.pid.to_string()]);
    assert_eq!(
        refused.failed(),
        format!(
            "vigil: error: kill.pid: refused: pid {} runs allow-listed {} (gRPC FailedPrecondition)",
            sleeper.pid,
            protected.display()
        )
    );
    assert_eq!(
        contain(&["deny-exec", "relative/path"]).failed(),
        "vigil: error: deny_exec.path: `relative/path` is not an absolute path (gRPC InvalidArgument)"
    );
    assert_eq!(
        contain(&["freeze", "--container", "0123456789abcdef"]).failed(),
        "vigil: error: freeze.container_id: no cgroup of container 0123456789abcdef was found under the cgroup v2 root (gRPC NotFound)"
    );
    assert!(
        sleeper.child.try_wait().expect("wait").is_none(),
        "the allow-listed process lives"
    );
    sleeper.signal(SIGKILL);
    sleeper.wait(EVENT_TIMEOUT);

    // Through a tonic client: the status code and message.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the client");
    let status = rt.block_on(async {
        let channel = client::channel(&socket).await.expect("connect to the API");
        let mut response = proto::response_client::ResponseClient::new(channel);
        response
            .contain(proto::ContainRequest {
                action: Some(proto::contain_request::Action::Kill(proto::Kill {
                    pid: std::process::id(),
                    tree: true,
                    start_time_ns: 0,
                })),
                reason: "must not happen".into(),
            })
            .await
            .expect_err("the agent is never killed")
    });
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "kill.pid: refused: that is the agent itself"
    );

    // Each refused attempt that reached the agent is an event (a malformed one is not).
    let refusal = agent.collect_until("the refusals' events", EVENT_TIMEOUT, |events| {
        let init = events
            .iter()
            .find_map(|e| operator_event(e, "kill", "process:1"))?;
        events
            .iter()
            .find_map(|e| operator_event(e, "kill_tree", &format!("process_tree:{me}")))?;
        Some(init.clone())
    });
    assert_eq!(refusal.outcome, "refused");
    assert_eq!(
        refusal.error.as_deref(),
        Some("kill.pid: refused: pid 1 is init or invalid")
    );
    assert_eq!(refusal.rule_id, None, "nothing was recorded");
    assert!(
        !agent.events().iter().any(
            |e| matches!(&e.detail, Detail::Enforcement(e) if e.target.contains("relative/path"))
        ),
        "a malformed request is refused before it reaches the responder"
    );

    // With no agent: a clear error that names --direct.
    let missing = dir.path().join("no-agent.sock");
    let gone = run(
        &vigil,
        &[
            "contain",
            "--socket",
            missing.to_str().expect("UTF-8"),
            "kill",
            "--pid",
            "1",
        ],
    );
    assert!(
        gone.failed().contains("no agent answers on") && gone.failed().contains("--direct"),
        "{gone:?}"
    );
}
