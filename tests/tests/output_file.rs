//! `[output]` to a file that rotates, as an operator runs it: `vigil run` under an exec storm
//! with a small `max_bytes` leaves `backups` rotated files of whole JSON lines, none past the
//! limit, and the storm's newest execs in them once each and in order (so nothing was lost or
//! written twice at a rotation).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil_tests::{
    EVENT_TIMEOUT,
    binary::vigil_binary,
    gate,
    spawn::{TempDir, all_lines, install_executable, lines, run_to_end, spawn},
};

const MAX_BYTES: usize = 32 * 1024;
const BACKUPS: usize = 3;
/// Three lines each (exec, fork, exit) of about 700 bytes: some 20 rotations.
const CHILDREN: usize = 300;
/// How long `vigil run` may take to load and attach.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The output and its rotated files, oldest first.
fn files_oldest_first(output: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=BACKUPS + 1)
        .rev()
        .map(|i| PathBuf::from(format!("{}.{i}", output.display())))
        .filter(|p| p.exists())
        .collect();
    files.push(output.to_owned());
    files
}

/// Every line of `path` as JSON; `whole` also requires the file to end with a whole line.
fn json_lines(path: &Path, whole: bool) -> Vec<Value> {
    let text = std::fs::read(path).unwrap_or_default();
    let end = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole {
        assert_eq!(end, text.len(), "{} ends with a cut line", path.display());
    }
    text[..end]
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line).unwrap_or_else(|e| {
                panic!(
                    "{}: not a JSON line ({e}): {}",
                    path.display(),
                    String::from_utf8_lossy(line)
                )
            })
        })
        .collect()
}

/// Pids of the exec lines of `program`, in file order, oldest file first.
fn exec_pids(output: &Path, program: &str, whole: bool) -> Vec<u32> {
    files_oldest_first(output)
        .iter()
        .flat_map(|f| json_lines(f, whole))
        .filter(|l| l["kind"] == "exec" && l["process"]["binary"] == program)
        .filter_map(|l| l["process"]["pid"].as_u64())
        .map(|pid| u32::try_from(pid).expect("a pid"))
        .collect()
}

#[test]
fn the_output_file_rotates_between_whole_json_lines_under_an_exec_storm() {
    let Some(vigil) = vigil_binary() else { return };
    if !gate::privileged() {
        gate::skip("`vigil run` needs root or CAP_BPF + CAP_PERFMON");
        return;
    }
    let dir = TempDir::new("output-file");
    let output = dir.path().join("events.jsonl");
    let config = dir.path().join("vigil.toml");
    // No API socket and no enforcement pins: nothing shared with an agent running beside.
    std::fs::write(
        &config,
        format!(
            "[output]\ntarget = \"{}\"\nmax_bytes = {MAX_BYTES}\nbackups = {BACKUPS}\n\n\
             [api]\nenabled = false\n\n[enforcement]\nenabled = false\n",
            output.display()
        ),
    )
    .expect("writing the config");
    let mut agent = spawn(
        Command::new(&vigil)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("VIGIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let stderr = lines(agent.child.stderr.take().expect("piped stderr"));
    let mut seen = Vec::new();
    let deadline = Instant::now() + START_TIMEOUT;
    while !seen.iter().any(|l: &String| l.contains("Vigil is running")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match stderr.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("vigil did not start ({e}):\n{}", seen.join("\n")),
        }
    }

    let program = install_executable(Path::new("/bin/true"), dir.path(), "vigil-rotation-true");
    let program = program.to_str().expect("utf-8 temp path").to_owned();
    let pids: Vec<u32> = (0..CHILDREN)
        .map(|i| run_to_end(Command::new(&program).arg(i.to_string()), EVENT_TIMEOUT).pid)
        .collect();
    let last = *pids.last().expect("children");
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while !exec_pids(&output, &program, false).contains(&last) {
        assert!(Instant::now() < deadline, "no exec line of the last child");
        std::thread::sleep(Duration::from_millis(50));
    }

    agent.signal(libc::SIGTERM);
    let status = agent.wait(EVENT_TIMEOUT);
    seen.extend(all_lines(&stderr, EVENT_TIMEOUT));
    assert_eq!(status.code(), Some(0), "{status}:\n{}", seen.join("\n"));

    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("events.jsonl"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "events.jsonl",
            "events.jsonl.1",
            "events.jsonl.2",
            "events.jsonl.3"
        ],
        "rotated, and pruned to {BACKUPS} backups"
    );
    for file in files_oldest_first(&output) {
        let lines = json_lines(&file, true);
        let size = std::fs::metadata(&file).expect("stat").len();
        assert!(
            size <= MAX_BYTES as u64 || lines.len() == 1,
            "{} has {size} bytes",
            file.display()
        );
        assert!(lines.iter().all(|l| l["kind"].is_string()));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).expect("stat").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    // What is kept is the newest part of the stream: a suffix of the children, each once.
    let found = exec_pids(&output, &program, true);
    eprintln!(
        "{} of {CHILDREN} execs kept in {} files",
        found.len(),
        names.len()
    );
    assert!(
        !found.is_empty() && found.len() < CHILDREN,
        "{} execs",
        found.len()
    );
    assert_eq!(
        found,
        pids[CHILDREN - found.len()..],
        "in order, none lost or repeated"
    );
}
