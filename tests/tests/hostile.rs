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

use std::{ffi::OsStr, os::unix::ffi::OsStrExt as _, path::Path, process::Command};

use serde_json::Value;
use vigil::export::escape::unescape;
use vigil_common::process::{FILENAME_MAX, PATH_MAX};
use vigil_tests::{
    EVENT_TIMEOUT,
    spawn::{bytes, install_executable, run_to_end},
    vigil_run::{VigilRun, setup},
};

const RULE: &str = "hostile-test-marker";
const MARKER: &str = "vigil-hup-marker";

/// Every kind of byte that has broken a log pipeline: quotes, backslashes, braces, a
/// newline, a clear-screen and a set-title escape, a bell, and bytes that are not UTF-8.
const NASTY: &[u8] = b"q\"b\\s{b}[a]\n\x1b[2J\x1b]0;owned\x07\r\t\xff\xfe\xc3(\x00end";

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

    let agent = VigilRun::start(&vigil, dir.path(), "");

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
    let mut agent = VigilRun::start(&vigil, dir.path(), "");
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
