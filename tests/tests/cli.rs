//! The `vigil` command line as an operator runs it: `run` streams JSON lines until SIGTERM,
//! a bad config is refused with its file, line and key, `probe --json` is machine-readable.

use std::{
    ffi::OsStr,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use vigil_tests::{
    EVENT_TIMEOUT,
    binary::vigil_binary,
    gate,
    json::{is_recent, parse_time},
    spawn::{Spawned, TempDir, all_lines, install_executable, lines, spawn},
};

/// How long `vigil run` may take to load and attach.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Every line of `path` as JSON; a line cut short (still being written) is left out.
fn json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read(path).unwrap_or_default();
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(end) => &text[..=end],
        None => return Vec::new(),
    };
    complete
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line).unwrap_or_else(|e| {
                panic!("not a JSON line ({e}): {}", String::from_utf8_lossy(line))
            })
        })
        .collect()
}

fn exec_line_of(lines: &[Value], pid: u32) -> Option<Value> {
    lines
        .iter()
        .find(|l| l["kind"] == "exec" && l["process"]["pid"] == pid)
        .cloned()
}

/// The stderr lines received so far, waiting at most `timeout` for one containing `needle`.
fn stderr_until(lines: &Receiver<String>, seen: &mut Vec<String>, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !seen.iter().any(|l| l.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!(
                "no `{needle}` on vigil's stderr ({e}); it printed:\n{}",
                seen.join("\n")
            ),
        }
    }
}

struct Run {
    agent: Spawned,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

/// `vigil run --output <output>`, once it says it is running.
fn start_run(vigil: &Path, output: &Path) -> Run {
    let mut agent = spawn(
        Command::new(vigil)
            .arg("run")
            .arg("--output")
            .arg(output)
            .env("VIGIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let stderr = lines(agent.child.stderr.take().expect("piped stderr"));
    let mut seen = Vec::new();
    stderr_until(&stderr, &mut seen, "Vigil is running", START_TIMEOUT);
    Run {
        agent,
        stderr,
        seen,
    }
}

#[test]
fn run_streams_json_lines_and_stops_cleanly_on_sigterm() {
    let Some(vigil) = vigil_binary() else { return };
    if !gate::privileged() {
        gate::skip("`vigil run` needs root or CAP_BPF + CAP_PERFMON");
        return;
    }
    let dir = TempDir::new("cli-run");
    let output = dir.path().join("events.jsonl");
    let mut run = start_run(&vigil, &output);

    let program: PathBuf =
        install_executable(Path::new("/bin/true"), dir.path(), "vigil-cli-target");
    let args = [OsStr::new("hello world"), OsStr::from_bytes(b"caf\xe9")];
    let mut child = spawn(Command::new(&program).args(args).current_dir(dir.path()));
    assert!(child.wait(EVENT_TIMEOUT).success());

    // The agent flushes after each batch: the line appears while it runs.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while exec_line_of(&json_lines(&output), child.pid).is_none() {
        assert!(
            Instant::now() < deadline,
            "no exec line for {} in {}",
            child.pid,
            output.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    run.agent.signal(libc::SIGTERM);
    let status = run.agent.wait(EVENT_TIMEOUT);
    run.seen.extend(all_lines(&run.stderr, EVENT_TIMEOUT));
    assert_eq!(
        status.code(),
        Some(0),
        "vigil stopped with {status}:\n{}",
        run.seen.join("\n")
    );
    assert!(
        run.seen.iter().any(|l| l.contains("Stopped.")),
        "{}",
        run.seen.join("\n")
    );

    let text = std::fs::read(&output).expect("the output file");
    assert_eq!(
        text.last(),
        Some(&b'\n'),
        "the output ends with a whole line"
    );
    let written = json_lines(&output);
    let line = exec_line_of(&written, child.pid).expect("the exec line");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");

    assert_eq!(line["kind"], "exec");
    assert_eq!(line["node"], hostname.trim());
    let at = parse_time(&line["time"]);
    assert!(is_recent(at, 60), "time {at} is not now");
    let p = &line["process"];
    let utf8 = |path: &Path| path.to_str().expect("utf-8 temp path").to_owned();
    assert_eq!(p["pid"], child.pid);
    assert_eq!(p["tgid"], child.pid);
    assert_eq!(p["ppid"], std::process::id());
    // SAFETY: getuid cannot fail and has no preconditions.
    assert_eq!(p["uid"], unsafe { libc::getuid() });
    assert_eq!(p["binary"], utf8(&program));
    assert_eq!(
        p["args"],
        json!([utf8(&program), "hello world", r"caf\xe9"])
    );
    assert_eq!(p["cwd"], utf8(dir.path()));
    let start_ns = p["start_time_ns"].as_u64().expect("start_time_ns");
    let exec_id = p["exec_id"].as_str().expect("exec_id");
    let prefix = format!("{:x}-{start_ns:x}-", child.pid);
    let exec_ns = exec_id
        .strip_prefix(&prefix)
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .unwrap_or_else(|| panic!("exec_id {exec_id} is not {prefix}<exec time>"));
    assert!(exec_ns >= start_ns);
    assert!(parse_time(&p["start_time"]) <= at);
    assert_eq!(line["exec"]["filename"], utf8(&program));
}

#[test]
fn run_refuses_an_unknown_config_key_naming_file_line_and_key() {
    let Some(vigil) = vigil_binary() else { return };
    let dir = TempDir::new("cli-config");
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        "node_name = \"n1\"\n\n[process]\ntrace_thread = true\n",
    )
    .expect("writing the config");
    let mut run = spawn(
        Command::new(&vigil)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let stderr = lines(run.child.stderr.take().expect("piped stderr"));
    let text = all_lines(&stderr, EVENT_TIMEOUT).join("\n");
    let status = run.wait(EVENT_TIMEOUT);
    assert!(!status.success(), "an unknown key must be refused:\n{text}");
    assert!(
        text.contains(config.to_str().expect("utf-8")),
        "names the file:\n{text}"
    );
    assert!(text.contains("line 4"), "names the line:\n{text}");
    assert!(text.contains("trace_thread"), "names the key:\n{text}");
}

#[test]
fn probe_json_lists_the_raw_tracepoint_feature() {
    let Some(vigil) = vigil_binary() else { return };
    let mut probe = spawn(
        Command::new(&vigil)
            .args(["probe", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = lines(probe.child.stdout.take().expect("piped stdout"));
    let text = all_lines(&stdout, EVENT_TIMEOUT).join("\n");
    let status = probe.wait(EVENT_TIMEOUT);
    assert!(status.success(), "vigil probe --json exited with {status}");
    let report: Value = serde_json::from_str(&text).expect("probe --json prints JSON");

    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert_eq!(report["kernel"], release.trim());
    let features = report["features"].as_array().expect("a feature list");
    let feature = |name: &str| {
        features
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` feature in {report:#}"))
    };
    let raw_tp = feature("raw_tracepoint");
    assert!(raw_tp["supported"].is_boolean(), "{raw_tp}");
    if gate::privileged() {
        assert_eq!(
            raw_tp["supported"], true,
            "the process sensor needs it: {raw_tp}"
        );
        assert_eq!(feature("ring_buffer")["supported"], true);
        assert_eq!(
            feature("task_storage")["supported"],
            true,
            "this kernel (5.11+) has task local storage"
        );
        assert_eq!(feature("privileges")["supported"], true);
    } else {
        gate::skip("without privileges, probe cannot tell whether raw tracepoints load");
    }
    let uses = report["uses"].as_array().expect("a list of uses");
    let hooks: Vec<&str> = uses.iter().filter_map(|u| u["hook"].as_str()).collect();
    assert_eq!(
        hooks,
        [
            "tp_btf/sched_process_exec",
            "tp_btf/sched_process_fork",
            "tp_btf/sched_process_exit",
            "tp_btf/sys_enter",
            "tp_btf/sys_exit",
            "tp/sock/inet_sock_set_state",
            "cgroup_skb/egress",
            "raw_tp/sched_process_exec + bpf_send_signal(SIGKILL)",
            "lsm/file_open",
            "cgroup/connect4, connect6",
            "cgroup/sendmsg4, sendmsg6"
        ],
        "this kernel refuses BPF-LSM: the fallbacks are listed"
    );
    assert!(
        uses.iter()
            .all(|u| u["mechanism"].is_string() && u["reason"].is_string()),
        "{uses:#?}"
    );
    for name in ["cgroup_skb", "cgroup_sock_addr"] {
        assert_eq!(feature(name)["supported"], gate::privileged(), "{name}");
    }
}
