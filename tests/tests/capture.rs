//! Capture files from a running agent, through its API, as an operator makes them:
//! `vigil capture record` writes the event stream while a known chain of processes runs, then
//! `vigil replay` of those files with the test's own policy finds exactly what the live agent
//! found with that policy; `vigil capture dump --pid P` writes P's tree from the flight
//! recorder and nothing of an unrelated process. The agent runs in this test process, its
//! API socket private to the test.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use vigil::{
    api::proto::{self, event::Detail as Pd},
    config::Config,
    event::{Detail, Event},
    export::escape::escape,
    forensics::capture::CaptureReader,
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    binary::{run, vigil_binary},
    daemon::{Daemon, wait_until},
    spawn::{TempDir, install_executable, python3, run_to_end},
};

/// An agent with its API socket and flight-recorder directory in `dir`.
fn agent(dir: &Path, configure: impl FnOnce(&mut Config)) -> Option<(Harness, PathBuf)> {
    let socket = dir.join("run/vigil.sock");
    let mut config = Config::default();
    config.api.socket = socket.clone();
    config.recorder.dir = dir.join("dumps");
    configure(&mut config);
    Harness::start(&config).map(|h| (h, socket))
}

/// The thread-group ids of `root` and every process below it, from the exec and fork events.
fn tree_of(events: &[Event], root: u32) -> BTreeSet<u32> {
    let parents: BTreeMap<u32, u32> = events
        .iter()
        .filter(|e| matches!(e.detail, Detail::Exec(_) | Detail::Fork(_)))
        .filter_map(|e| e.process.as_deref())
        .map(|p| (p.key.tgid, p.ppid))
        .collect();
    let mut tree = BTreeSet::from([root]);
    loop {
        let before = tree.len();
        for (pid, ppid) in &parents {
            if tree.contains(ppid) {
                tree.insert(*pid);
            }
        }
        if tree.len() == before {
            return tree;
        }
    }
}

/// The events of every capture file in `dir` so far (an open file up to its last frame).
fn recorded(dir: &Path) -> Vec<proto::Event> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| CaptureReader::open(&e.path()).ok())
        .flat_map(|reader| reader.events().flatten())
        .collect()
}

/// A finding as the comparison sees it: rule, process (tgid) and binary.
type Found = (String, u32, String);

/// The policy the replay runs, and that the live agent runs beside the default pack: rules
/// on exec, exit and connect that read the process, its ancestors and the network.
fn policy(dir: &Path, token: &str, port: u16) -> String {
    let d = dir.display();
    format!(
        "rules:
  - name: rp-token-in-args
    match: {{kind: exec, process.args: {{contains: {token}}}}}
  - name: rp-step-exec
    match: {{kind: exec, process.binary: {d}/vigil-rp-step}}
  - name: rp-leaf-below-token
    match:
      kind: exec
      process.binary: {{suffix: /vigil-rp-leaf}}
      ancestors.args: {{contains: {token}}}
  - name: rp-step-exit
    severity: low
    match: {{kind: exit, process.binary: {d}/vigil-rp-step}}
  - name: rp-connect-to-the-listener
    severity: high
    match: {{kind: connect, network.dst_port: {port}, network.protocol: {{exists: false}}}}
  - name: rp-never
    match: {{kind: exec, process.binary: {{suffix: /vigil-rp-absent}}}}
"
    )
}

#[test]
fn recorded_files_replayed_with_another_policy_find_what_the_live_agent_found() {
    let dir = TempDir::new("capture-replay");
    let d = dir.path();
    let Some(vigil) = vigil_binary() else {
        return;
    };
    for name in ["vigil-rp-step", "vigil-rp-leaf"] {
        install_executable(Path::new("/bin/true"), d, name);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let port = listener.local_addr().expect("its address").port();
    let token = format!("vigil-rp-token-{}", std::process::id());
    let policies = d.join("policies");
    std::fs::create_dir_all(&policies).expect("policy dir");
    std::fs::write(policies.join("replay.yaml"), policy(d, &token, port)).expect("policy");
    // Live: the default pack and the test's rules; the replay runs the test's rules alone.
    let Some((mut agent, socket)) = agent(d, |config| {
        config.policy.directory = policies.display().to_string();
        config.process.ancestors = 4;
    }) else {
        return;
    };
    let out = d.join("recorded");
    let mut recorder = Daemon::start(
        Command::new(&vigil)
            .args(["capture", "record", "--max-file-age", "1s", "--socket"])
            .arg(&socket)
            .arg("--out")
            .arg(&out),
        &d.join("record.log"),
    );
    recorder.wait_for_log("vigil capture record: recording", 1, EVENT_TIMEOUT);

    // The chain: sh (with the token) -> step; sh -> leaf, python3 connecting; step again
    // (the shell may exec the last command in its own process: the tree is the same). Files
    // of 1 s and a pause of 2.2 s: the recorder closes a file in the pause, so the chain's
    // events span files.
    let script = format!(
        "{d}/vigil-rp-step \"$0\"
sleep 2.2
/bin/sh -c '{d}/vigil-rp-leaf; {python} -c \"import socket; socket.create_connection((\\\"127.0.0.1\\\", {port})).close()\"'
{d}/vigil-rp-step again",
        d = d.display(),
        python = python3().display(),
    );
    let shell = run_to_end(
        Command::new("/bin/sh").args(["-c", &script, &token]),
        EVENT_TIMEOUT,
    );
    let rule_of = |e: &Event| match &e.detail {
        Detail::Finding(f) if f.rule.name.starts_with("rp-") => Some(f.rule.name.clone()),
        _ => None,
    };
    // The last rules to fire: the second step's exit, and the connect.
    agent.collect_until("the chain's live findings", EVENT_TIMEOUT, |events| {
        let rules: Vec<String> = events.iter().filter_map(rule_of).collect();
        let exits = rules.iter().filter(|r| *r == "rp-step-exit").count();
        (exits == 2 && rules.iter().any(|r| r == "rp-connect-to-the-listener")).then_some(())
    });
    // The recorder writes its open frame out every second: wait until the files hold the
    // chain's last event, the shell's exit, before stopping it.
    wait_until(
        EVENT_TIMEOUT,
        "the shell's exit in the recorded files",
        || {
            recorded(&out).iter().any(|e| {
                matches!(e.detail, Some(Pd::Exit(_)))
                    && e.process.as_ref().is_some_and(|p| p.tgid == shell.pid)
            })
        },
    );
    recorder.interrupt(EVENT_TIMEOUT);
    let log = std::fs::read_to_string(d.join("record.log")).unwrap_or_default();
    assert!(log.contains(" 0 lost by the stream"), "{log}");
    let _ = agent.stop();

    let tree = tree_of(agent.events(), shell.pid);
    let mut live: Vec<Found> = agent
        .events()
        .iter()
        .filter_map(|e| Some((rule_of(e)?, e.process.as_deref()?)))
        .filter(|(_, p)| tree.contains(&p.key.tgid))
        .map(|(rule, p)| (rule, p.key.tgid, escape(&p.binary.path).into_owned()))
        .collect();
    live.sort();

    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("the recording directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "vcap"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "rotated capture files in {}: {files:?}",
        out.display()
    );
    let mut args = vec![
        "replay".to_owned(),
        "--json".to_owned(),
        "--policy".to_owned(),
        policies.display().to_string(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let replayed = run(&vigil, &args);
    // Every file is intact: the recorder finished them.
    assert!(replayed.status.success(), "{replayed:?}");
    let mut found: Vec<Found> = Vec::new();
    for line in replayed.stdout.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON finding");
        let rule = event["detail"]["Finding"]["rule"]
            .as_str()
            .expect("a rule")
            .to_owned();
        assert!(rule.starts_with("rp-"), "only the replayed policy: {rule}");
        let tgid = event["process"]["tgid"].as_u64().expect("a tgid") as u32;
        let binary = event["process"]["binary"].as_str().expect("a binary");
        if tree.contains(&tgid) {
            found.push((rule, tgid, binary.to_owned()));
        }
    }
    found.sort();
    assert_eq!(found, live, "replayed (left) and live (right) findings");
    let count = |rule: &str| live.iter().filter(|f| f.0 == rule).count();
    assert_eq!(count("rp-step-exec"), 2, "{live:?}");
    assert_eq!(count("rp-step-exit"), 2, "{live:?}");
    assert_eq!(count("rp-leaf-below-token"), 1, "{live:?}");
    assert_eq!(count("rp-connect-to-the-listener"), 1, "{live:?}");
    assert!(
        count("rp-token-in-args") >= 2,
        "the shell and the step: {live:?}"
    );
    assert_eq!(count("rp-never"), 0);
    println!(
        "{} files, {} findings of the test's tree compared; replay said:\n{}",
        files.len(),
        live.len(),
        replayed.stderr
    );
}

/// The exec'd binaries of a capture file's events, by tgid.
fn execs(path: &Path) -> (Vec<proto::Event>, BTreeMap<u32, String>) {
    let reader = CaptureReader::open(path).expect("the dump opens");
    let mut items = reader.events();
    let events: Vec<proto::Event> = (&mut items)
        .map(|item| item.expect("an intact dump"))
        .collect();
    assert!(items.reader().finished(), "a finished file");
    let binaries = events
        .iter()
        .filter(|e| matches!(e.detail, Some(Pd::Exec(_))))
        .filter_map(|e| e.process.as_ref())
        .map(|p| (p.tgid, p.binary.clone()))
        .collect();
    (events, binaries)
}

#[test]
fn a_dump_by_pid_holds_that_tree_and_not_an_unrelated_process() {
    let dir = TempDir::new("capture-dump");
    let d = dir.path();
    let Some(vigil) = vigil_binary() else {
        return;
    };
    for name in ["vigil-dump-a", "vigil-dump-b", "vigil-dump-other"] {
        install_executable(Path::new("/bin/true"), d, name);
    }
    let Some((mut agent, socket)) = agent(d, |config| config.policy.enabled = false) else {
        return;
    };
    let other = run_to_end(&mut Command::new(d.join("vigil-dump-other")), EVENT_TIMEOUT);
    let script = format!(
        "{d}/vigil-dump-a; {d}/vigil-dump-b; {d}/vigil-dump-a again",
        d = d.display()
    );
    let shell = run_to_end(Command::new("/bin/sh").args(["-c", &script]), EVENT_TIMEOUT);
    // Exported, so in the ring: the recorder keeps each batch right after the exporters.
    agent.collect_until(
        "the tree's and the other's exits",
        EVENT_TIMEOUT,
        |events| {
            let exited: BTreeSet<u32> = events
                .iter()
                .filter(|e| matches!(e.detail, Detail::Exit(_)))
                .filter_map(|e| e.process.as_deref().map(|p| p.key.tgid))
                .collect();
            let tree = tree_of(events, shell.pid);
            (tree.len() >= 3
                && tree.iter().all(|p| exited.contains(p))
                && exited.contains(&other.pid))
            .then_some(())
        },
    );
    let tree = tree_of(agent.events(), shell.pid);
    let pid = shell.pid.to_string();
    let socket_arg = socket.to_str().expect("a UTF-8 path");
    let dumped = run(
        &vigil,
        &[
            "capture", "dump", "--socket", socket_arg, "--pid", &pid, "--reason", "INC-42",
            "--json",
        ],
    );
    let reply: serde_json::Value = serde_json::from_str(dumped.ok().trim()).expect("JSON reply");
    let path = PathBuf::from(reply["path"].as_str().expect("a path"));
    assert_eq!(reply["scope"], format!("tree:{}", shell.pid));
    assert!(path.starts_with(d.join("dumps")), "{}", path.display());
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(&path).expect("the dump exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(reply["bytes"].as_u64(), Some(meta.len()));

    let (events, binaries) = execs(&path);
    assert_eq!(reply["events"].as_u64(), Some(events.len() as u64));
    let header = CaptureReader::open(&path)
        .expect("open")
        .header()
        .cloned()
        .expect("a header");
    assert_eq!(
        header.metadata.get("reason").map(String::as_str),
        Some("INC-42")
    );
    assert_eq!(
        header.metadata.get("trigger").map(String::as_str),
        Some("api")
    );
    // Every event is of the tree; each of its processes is there; the other is not.
    for event in &events {
        let tgid = event.process.as_ref().map_or(0, |p| p.tgid);
        assert!(
            tree.contains(&tgid),
            "{tgid} is not of the tree {tree:?}: {event:?}"
        );
    }
    let seen: BTreeSet<u32> = events
        .iter()
        .filter_map(|e| e.process.as_ref())
        .map(|p| p.tgid)
        .collect();
    assert_eq!(seen, tree);
    assert_eq!(reply["processes"].as_u64(), Some(tree.len() as u64));
    let names: Vec<&str> = binaries.values().map(String::as_str).collect();
    for name in ["/vigil-dump-a", "/vigil-dump-b"] {
        assert!(
            names.iter().any(|b| b.ends_with(name)),
            "{name} in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|b| b.ends_with("/vigil-dump-other")),
        "{names:?}"
    );
    assert!(!seen.contains(&other.pid));

    // The readable reply names the file first.
    let readable = run(
        &vigil,
        &["capture", "dump", "--socket", socket_arg, "--pid", &pid],
    );
    let first = readable.ok().lines().next().unwrap_or_default().to_owned();
    assert!(first.ends_with(".vcap"), "{readable:?}");
    println!("vigil capture dump --pid {pid}:\n{}", readable.stdout);
    // A malformed request is named by its field.
    let zero = run(
        &vigil,
        &["capture", "dump", "--socket", socket_arg, "--pid", "0"],
    );
    assert!(
        zero.failed()
            .contains("pid: 0 is not a process id (gRPC InvalidArgument)"),
        "{zero:?}"
    );
    let _ = agent.stop();
}
