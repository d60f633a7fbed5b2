//! What the deployment artefacts promise about a running agent: `vigil status` reports its
//! real state over the API (and the node name the DaemonSet passes in VIGIL_NODE_NAME), the
//! probes answer, and the capability list of deploy/ (the unit's bounding set, the
//! DaemonSet's `capabilities.add`) is enough for every sensor and every containment action.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use vigil_tests::{
    EVENT_TIMEOUT,
    binary::vigil_binary,
    daemon::{Daemon, free_port, json_lines, wait_until},
    enforcement::PrivateLayout,
    gate,
    scrape::get,
    spawn::TempDir,
};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const NODE: &str = "deployment-test-node";

/// The capabilities the systemd unit keeps, read from the file, checked against the
/// DaemonSet's list.
fn deployment_capabilities() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit =
        std::fs::read_to_string(root.join("deploy/systemd/vigil.service")).expect("the unit");
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet= in the unit")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let daemonset = std::fs::read_to_string(root.join("deploy/kubernetes/base/daemonset.yaml"))
        .expect("the DaemonSet");
    let added: Vec<String> = daemonset
        .split("add:")
        .nth(1)
        .expect("capabilities.add in the DaemonSet")
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("volumeMounts:"))
        .filter_map(|l| l.strip_prefix("- "))
        .map(|c| format!("CAP_{c}"))
        .collect();
    assert_eq!(
        caps, added,
        "the unit and the DaemonSet keep different capabilities"
    );
    caps
}

struct Agent {
    daemon: Daemon,
    socket: PathBuf,
    metrics: std::net::SocketAddr,
    events: PathBuf,
    _layout: PrivateLayout,
}

/// `vigil run` with a private API socket, enforcement layout and output, under `wrapper`
/// (`setpriv ...`) when given; once its API answers.
fn start(dir: &TempDir, label: &str, wrapper: &[String]) -> Agent {
    let vigil = vigil_binary().expect("the vigil binary");
    let layout = PrivateLayout::new(label, &dir.path().join("state"));
    let socket = dir.path().join("vigil.sock");
    let events = dir.path().join("events.jsonl");
    let port = free_port();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[output]\ntarget = \"{}\"\n[telemetry]\nmetrics_address = \"127.0.0.1:{port}\"\n\
             [api]\nsocket = \"{}\"\n[recorder]\ndir = \"{}\"\n\
             [enforcement]\nbpffs_dir = \"{}\"\nstate_dir = \"{}\"\n",
            events.display(),
            socket.display(),
            dir.path().join("captures").display(),
            layout.layout.bpffs_dir.display(),
            layout.layout.state_dir.display(),
        ),
    )
    .expect("config");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&vigil);
            c
        }
        None => Command::new(&vigil),
    };
    command
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("VIGIL_NODE_NAME", NODE)
        .env("VIGIL_LOG", "info")
        .stdout(Stdio::null());
    let mut daemon = Daemon::start(&mut command, &dir.path().join("agent.log"));
    daemon.wait_for_log("Vigil is running.", 1, START_TIMEOUT);
    let metrics = format!("127.0.0.1:{port}").parse().expect("address");
    Agent {
        daemon,
        socket,
        metrics,
        events,
        _layout: layout,
    }
}

fn status_json(socket: &Path) -> Value {
    let vigil = vigil_binary().expect("the vigil binary");
    let out = Command::new(vigil)
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .expect("vigil status");
    assert!(
        out.status.success(),
        "vigil status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("vigil status --json prints JSON")
}

fn contain(socket: &Path, args: &[&str]) -> String {
    let vigil = vigil_binary().expect("the vigil binary");
    let out = Command::new(vigil)
        .arg("contain")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("vigil contain");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vigil contain {args:?}: {said}");
    said
}

#[test]
fn status_reports_a_running_agents_state() {
    if !gate::privileged() {
        gate::skip("vigil run needs root");
        return;
    }
    let dir = TempDir::new("status");
    let agent = start(&dir, "status", &[]);

    // The probes: ready once running, healthy while the pipeline ticks.
    for path in ["/readyz", "/healthz"] {
        let response = get(agent.metrics, path);
        assert!(
            response.starts_with("HTTP/1.1 200 OK"),
            "{path}: {response}"
        );
    }
    // Known activity: execs of a known binary, so the rate and the caches have something.
    for _ in 0..20 {
        Command::new("/bin/true").status().expect("true");
    }
    // A rule in force to list: a kill-on-exec of a path nothing runs.
    let denied = dir.path().join("never-run");
    std::fs::write(&denied, "#!/bin/sh\n").expect("file");
    contain(
        &agent.socket,
        &["deny-exec", denied.to_str().expect("utf-8")],
    );

    let mut report = Value::Null;
    wait_until(
        EVENT_TIMEOUT,
        "a status with a rate and the exec events",
        || {
            report = status_json(&agent.socket);
            report["info"]["events_per_second"].as_f64().unwrap_or(0.0) > 0.0
                && report["health"]["events"].as_u64().unwrap_or(0) >= 20
        },
    );
    let info = &report["info"];
    assert_eq!(
        info["node"], NODE,
        "the node name comes from VIGIL_NODE_NAME"
    );
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["uptime_seconds"].as_u64().is_some(), "{info}");
    assert!(
        info["rate_window_seconds"].as_u64().unwrap_or(0) >= 1,
        "{info}"
    );
    assert!(
        info["caches"]["process_cache_entries"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        info["caches"]
    );
    assert!(
        info["caches"]["recorder_events"].as_u64().is_some(),
        "{}",
        info["caches"]
    );
    assert!(info["drops"].is_object(), "{info}");
    let exporter = |name: &str| {
        info["exporters"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no exporter {name}: {}", info["exporters"]))
    };
    assert_eq!(
        exporter("output")["target"],
        agent.events.display().to_string()
    );
    assert_eq!(
        exporter("api")["target"],
        agent.socket.display().to_string()
    );
    assert_eq!(exporter("metrics")["target"], agent.metrics.to_string());
    assert_eq!(exporter("recorder")["state"], "running");
    // The default pack is in force: every rule with its mode and its file.
    let rules = info["rules"].as_array().expect("rules");
    assert_eq!(
        rules.len() as u64,
        info["policies"].as_u64().expect("policies")
    );
    let temp_exec = rules
        .iter()
        .find(|r| r["name"] == "exec-from-temp-dir")
        .expect("the default pack's exec-from-temp-dir");
    assert_eq!(temp_exec["mode"], "monitor");
    assert_eq!(temp_exec["source"], "policies/default/execution.yaml");
    // The enforcement entry made above, from the Response service.
    let enforcement = &report["enforcement"];
    let entries = enforcement["rules"].as_array().expect("enforcement rules");
    assert_eq!(entries.len(), 1, "{enforcement}");
    assert_eq!(entries[0]["kind"], "deny_exec", "{enforcement}");
    assert!(
        enforcement["pinned_programs"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "enforce_exec")),
        "{enforcement}"
    );

    // The readable report says the same.
    let vigil = vigil_binary().expect("the vigil binary");
    let text = Command::new(vigil)
        .args(["status", "--socket"])
        .arg(&agent.socket)
        .output()
        .expect("vigil status");
    let text = String::from_utf8_lossy(&text.stdout);
    for expected in [
        format!("on {NODE}"),
        "exporters:".to_owned(),
        "exec-from-temp-dir".to_owned(),
        "enforcement: 1 rules".to_owned(),
        "deny_exec".to_owned(),
    ] {
        assert!(text.contains(&expected), "`{expected}` in:\n{text}");
    }
    agent.daemon.interrupt(Duration::from_secs(10));
}

/// A process of uid 1000, in a cgroup of its own, for kill and isolate.
struct Target {
    child: std::process::Child,
    cgroup: PathBuf,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

fn unprivileged_target(label: &str) -> Option<Target> {
    let root = vigil::cgroup::CgroupFs::discover().v2_root?;
    let cgroup = root.join(format!("vigil-test-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&cgroup).ok()?;
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec setpriv --reuid 1000 --regid 1000 --clear-groups sleep 60",
        cgroup.display()
    );
    let child = Command::new("sh").args(["-c", &script]).spawn().ok()?;
    Some(Target { child, cgroup })
}

#[test]
fn the_deployments_capabilities_are_enough_for_every_sensor_and_action() {
    if !gate::privileged() {
        gate::skip("vigil run needs root");
        return;
    }
    let caps = deployment_capabilities();
    let bounding: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    // As the DaemonSet's container or the unit's service: uid 0 with only these capabilities.
    let wrapper = vec![
        "setpriv".to_owned(),
        format!("--bounding-set=-all,{}", bounding.join(",")),
        "--inh-caps=-all".to_owned(),
    ];
    let dir = TempDir::new("least-privilege");
    let mut agent = start(&dir, "leastpriv", &wrapper);

    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.daemon.pid()))
        .expect("the agent's status");
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).expect("hex"))
        .expect("CapEff");
    assert_eq!(
        effective.count_ones() as usize,
        caps.len(),
        "CapEff {effective:#x}"
    );

    // Every sensor attached: nothing fell back (DNS needs CAP_NET_ADMIN).
    let report = status_json(&agent.socket);
    assert_eq!(
        report["info"]["fallbacks"],
        serde_json::json!([]),
        "{}",
        report["info"]
    );
    assert!(
        report["info"]["hooks"].as_array().is_some_and(|h| h
            .iter()
            .any(|h| h.as_str().is_some_and(|h| h.starts_with("network_dns")))),
        "{}",
        report["info"]["hooks"]
    );

    // The /proc snapshot read this test process (full capabilities, started before the
    // agent) through /proc/PID/exe: that takes CAP_SYS_PTRACE.
    let child = Command::new("/bin/true").spawn().expect("true");
    let pid = child.id();
    let _ = child.wait_with_output();
    let me = std::env::current_exe().expect("current exe");
    let mut exec = Value::Null;
    wait_until(EVENT_TIMEOUT, "the exec event of /bin/true", || {
        exec = json_lines(&agent.events)
            .into_iter()
            .find(|e| e["kind"] == "exec" && e["process"]["pid"] == pid)
            .unwrap_or(Value::Null);
        !exec.is_null()
    });
    assert_eq!(exec["parent"]["binary"], me.display().to_string(), "{exec}");

    // Containment: isolate (cgroup programs: CAP_NET_ADMIN) and kill of another user's
    // process (CAP_KILL).
    let target = unprivileged_target("leastpriv");
    let Some(mut target) = target else {
        gate::skip("no cgroup v2 hierarchy to put the target in");
        return;
    };
    std::thread::sleep(Duration::from_millis(200));
    let relative = format!(
        "/{}",
        target.cgroup.file_name().expect("name").to_string_lossy()
    );
    let isolated = contain(&agent.socket, &["isolate", "--cgroup", &relative]);
    assert!(isolated.contains("isolate"), "{isolated}");
    let killed = contain(
        &agent.socket,
        &["kill", "--pid", &target.child.id().to_string()],
    );
    assert!(killed.contains("1 killed"), "{killed}");
    let status = target.child.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(get(agent.metrics, "/healthz").starts_with("HTTP/1.1 200 OK"));
    agent
        .daemon
        .wait_for_log("Vigil is running.", 1, START_TIMEOUT);
    agent.daemon.interrupt(Duration::from_secs(10));
}
