//! Hostile input, end to end through `vigil run` and its JSON output: arguments and paths
//! with bytes that are not UTF-8, newlines, terminal escape sequences and JSON
//! metacharacters; about 1 MiB of argv; a path longer than the capture limit. Every output
//! line is one valid JSON object, no control byte reaches the file raw, each field decodes
//! back to the exact bytes (`vigil::export::escape::unescape` reverses the documented `\\`
//! and `\xNN` form), truncation is flagged, and a plain exec in the same window is intact.
//! And a malformed policy pushed by SIGHUP: the agent keeps running with the set it had.
//!
//! The limits themselves (how many arguments and bytes are kept, where a filename is cut)
//! are asserted on the in-process pipeline in `exec_limits.rs`; this is about the output.

use std::{
    ffi::OsStr,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use vigil::export::escape::unescape;
use vigil_common::process::{FILENAME_MAX, PATH_MAX};
use vigil_tests::{
    EVENT_TIMEOUT,
    binary::vigil_binary,
    daemon::{Daemon, json_lines, wait_until},
    gate,
    spawn::{TempDir, bytes, install_executable, run_to_end},
};

/// How long `vigil run` may take to load and attach.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const RULE: &str = "hostile-test-marker";
const MARKER: &str = "vigil-hup-marker";

/// Every kind of byte that has broken a log pipeline: quotes, backslashes, braces, a
/// newline, a clear-screen and a set-title escape, a bell, and bytes that are not UTF-8.
const NASTY: &[u8] = b"q\"b\\s{b}[a]\n\x1b[2J\x1b]0;owned\x07\r\t\xff\xfe\xc3(\x00end";

/// `vigil run` with only this test's policy directory, no API socket and no enforcement
/// pins (nothing shared with an agent running beside), writing JSON to `events.jsonl`.
struct Agent {
    daemon: Daemon,
    output: PathBuf,
}

fn start(vigil: &Path, dir: &Path) -> Agent {
    let config = dir.join("vigil.toml");
    let output = dir.join("events.jsonl");
    std::fs::write(
        &config,
        format!(
            "[policy]\ndefault_pack = false\ndirectory = \"{}\"\nreload_interval_ms = 0\n\n\
             [api]\nenabled = false\n\n[enforcement]\nenabled = false\n",
            dir.join("policies").display()
        ),
    )
    .expect("writing the config");
    let mut daemon = Daemon::start(
        Command::new(vigil)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--output")
            .arg(&output)
            .env("VIGIL_LOG", "info"),
        &dir.join("agent.log"),
    );
    daemon.wait_for_log("Vigil is running.", 1, START_TIMEOUT);
    Agent { daemon, output }
}

fn setup(label: &str) -> Option<(PathBuf, TempDir)> {
    if !gate::privileged() {
        gate::skip("`vigil run` needs root or CAP_BPF + CAP_PERFMON");
        return None;
    }
    let vigil = vigil_binary()?;
    let dir = TempDir::new(label);
    std::fs::create_dir(dir.path().join("policies")).expect("policy directory");
    Some((vigil, dir))
}

impl Agent {
    /// The line of `kind` about `pid`, once it is in the file.
    #[track_caller]
    fn line(&self, kind: &str, pid: u32) -> Value {
        let mut found = None;
        let output = self.output.clone();
        wait_until(EVENT_TIMEOUT, &format!("{kind} line of pid {pid}"), || {
            found = json_lines(&output)
                .into_iter()
                .find(|l| l["kind"] == kind && l["process"]["pid"] == pid);
            found.is_some()
        });
        found.expect("found")
    }

    /// Stops the agent cleanly and checks the whole file: whole lines, each one JSON object,
    /// no raw control byte but the line ends.
    fn stop_and_check_output(self) -> Vec<Value> {
        self.daemon.interrupt(EVENT_TIMEOUT);
        let text = std::fs::read(&self.output).expect("the output file");
        assert_eq!(text.last(), Some(&b'\n'), "the file ends with a whole line");
        if let Some(at) = text.iter().position(|&b| b < 0x20 && b != b'\n') {
            panic!("raw control byte {:#04x} at offset {at}", text[at]);
        }
        text.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let value: Value = serde_json::from_slice(l).unwrap_or_else(|e| {
                    panic!("not a JSON line ({e}): {}", String::from_utf8_lossy(l))
                });
                assert!(value.is_object(), "{value}");
                value
            })
            .collect()
    }
}

/// The bytes a JSON string field stands for.
#[track_caller]
fn decoded(value: &Value) -> Vec<u8> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    unescape(text).unwrap_or_else(|| panic!("not in the escaped form: {text:?}"))
}

#[test]
fn hostile_arguments_and_paths_are_escaped_exactly_and_cut_with_a_flag() {
    let Some((vigil, dir)) = setup("hostile") else {
        return;
    };
    // A directory named with everything but `/` and NUL, holding the program.
    let nasty_name: Vec<u8> = NASTY.iter().copied().filter(|&b| b != 0).collect();
    let nasty_dir = dir.path().join(OsStr::from_bytes(&nasty_name));
    std::fs::create_dir(&nasty_dir).expect("a directory with a hostile name");
    let program = install_executable(Path::new("/bin/true"), &nasty_dir, "vigil-hostile-true");
    // Deeper than the capture limits: the filename (FILENAME_MAX) and the walked path
    // (PATH_MAX) are both cut.
    let mut deep = nasty_dir.clone();
    while bytes(&deep).len() <= PATH_MAX + 64 {
        let mut component = nasty_name.clone();
        component.extend_from_slice(&[b'd'; 150]);
        deep.push(OsStr::from_bytes(&component));
    }
    std::fs::create_dir_all(&deep).expect("nested hostile directories");
    let deep_program = install_executable(Path::new("/bin/true"), &deep, "vigil-hostile-deep");
    let plain = install_executable(Path::new("/bin/true"), dir.path(), "vigil-hostile-plain");

    let agent = start(&vigil, dir.path());

    // argv: the hostile argument (NUL ends a C string: the kernel sees what precedes it),
    // then 1 MiB in 16 arguments of 64 KiB.
    let nasty_arg = &NASTY[..NASTY.iter().position(|&b| b == 0).expect("a NUL")];
    let big: Vec<Vec<u8>> = (0..16u8)
        .map(|i| {
            let mut arg = vec![b'a' + i; 64 * 1024];
            arg[..nasty_name.len()].copy_from_slice(&nasty_name);
            arg
        })
        .collect();
    let hostile = run_to_end(
        Command::new(&program)
            .arg(OsStr::from_bytes(nasty_arg))
            .args(big.iter().map(|a| OsStr::from_bytes(a))),
        EVENT_TIMEOUT,
    );
    let deep_child = run_to_end(
        Command::new(&deep_program).arg(OsStr::from_bytes(nasty_arg)),
        EVENT_TIMEOUT,
    );
    let plain_child = run_to_end(Command::new(&plain).arg("plain-arg"), EVENT_TIMEOUT);

    let line = agent.line("exec", hostile.pid);
    let process = &line["process"];
    assert_eq!(decoded(&process["binary"]), bytes(&program));
    assert_eq!(decoded(&line["exec"]["filename"]), bytes(&program));
    let args = process["args"].as_array().expect("args");
    assert_eq!(decoded(&args[0]), bytes(&program));
    assert_eq!(
        decoded(&args[1]),
        nasty_arg,
        "the hostile argument, byte for byte"
    );
    assert_eq!(process["args_truncated"], true, "1 MiB of argv is cut");
    let last = decoded(args.last().expect("a cut argument"));
    assert!(args.len() >= 3 && big[args.len() - 3].starts_with(&last));
    assert!(process["binary_truncated"].is_null(), "{line}");

    let line = agent.line("exec", deep_child.pid);
    assert_eq!(line["exec"]["filename_truncated"], true, "{line}");
    assert_eq!(
        decoded(&line["exec"]["filename"]),
        bytes(&deep_program)[..FILENAME_MAX - 1]
    );
    assert_eq!(line["process"]["binary_truncated"], true, "{line}");
    decoded(&line["process"]["binary"]);
    assert_eq!(decoded(&line["process"]["args"][1]), nasty_arg);

    // The plain exec in the same window, intact.
    let line = agent.line("exec", plain_child.pid);
    let plain_text = plain.to_str().expect("a UTF-8 temporary path");
    assert_eq!(line["process"]["binary"], plain_text);
    assert_eq!(
        line["process"]["args"],
        serde_json::json!([plain_text, "plain-arg"])
    );
    assert!(line["process"]["args_truncated"].is_null(), "{line}");

    let lines = agent.stop_and_check_output();
    eprintln!("{} JSON lines checked", lines.len());
}

#[test]
fn a_malformed_policy_pushed_by_sighup_leaves_the_set_in_force() {
    let Some((vigil, dir)) = setup("hostile-hup") else {
        return;
    };
    let marker = install_executable(Path::new("/bin/true"), dir.path(), MARKER);
    let policy = dir.path().join("policies/marker.yaml");
    std::fs::write(
        &policy,
        format!(
            "rules:\n  - name: {RULE}\n    description: The hostile test's marker ran.\n    \
             severity: low\n    match:\n      kind: exec\n      \
             process.binary: {{suffix: /{MARKER}}}\n"
        ),
    )
    .expect("policy file");
    let mut agent = start(&vigil, dir.path());
    let before = run_to_end(&mut Command::new(&marker), EVENT_TIMEOUT);
    assert_eq!(agent.line("finding", before.pid)["finding"]["rule"], RULE);

    std::fs::write(
        &policy,
        "rules:\n  - name: [unclosed\n    match: {kind: exec\n",
    )
    .expect("a malformed policy");
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(agent.daemon.pid() as i32, libc::SIGHUP) };
    agent.daemon.wait_for_log(
        "Policy reload failed; the previous policies stay in force.",
        1,
        EVENT_TIMEOUT,
    );
    let log = agent.daemon.log();
    assert!(
        log.contains("marker.yaml"),
        "the error names the file:\n{log}"
    );

    let after = run_to_end(&mut Command::new(&marker), EVENT_TIMEOUT);
    assert_eq!(
        agent.line("finding", after.pid)["finding"]["rule"],
        RULE,
        "the old rule still fires"
    );
    agent.stop_and_check_output();
}
