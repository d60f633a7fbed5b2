//! The privileged tests (`tests/`, package `vigil-tests`): real eBPF programs loaded into this
//! kernel, so they run as root, one at a time.

use std::{env, ffi::OsString, path::PathBuf, process::Stdio};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{cargo, cmd, privilege, setup::BuildEnv};

const PACKAGE: &str = "vigil-tests";

pub fn run(env: &BuildEnv) -> Result<()> {
    // The CLI tests run the real binary: build it and tell them where it is.
    println!("test: building the release agent for the CLI tests");
    let mut build = cargo::with_env(env);
    build.args(["build", "--release", "--package", "vigil"]);
    cmd::run(&mut build)?;
    let binary = cargo::target_dir().join("release").join("vigil");
    // SAFETY: xtask is single-threaded here; nothing reads the environment concurrently.
    unsafe { env::set_var("VIGIL_BIN", &binary) };
    privilege::ensure_tracefs("test")?;
    privilege::raise_limits("test")?;
    match env::var_os("VIGIL_REQUIRE_BPF") {
        Some(value) => println!(
            "test: VIGIL_REQUIRE_BPF={} goes to the tests: a test that cannot load eBPF fails",
            value.to_string_lossy()
        ),
        None => println!(
            "test: VIGIL_REQUIRE_BPF is not set: a test that cannot load eBPF skips with a reason"
        ),
    }
    if privilege::is_root() {
        let mut test = cargo::with_env(env);
        test.args([
            "test",
            "--no-fail-fast",
            "--package",
            PACKAGE,
            "--",
            "--test-threads=1",
        ]);
        return cmd::run(&mut test);
    }
    // Not root: build as this user (root must not own files in target/), run under sudo.
    println!("test: not root: building the privileged tests, then running them through sudo");
    for binary in build_test_binaries(env)? {
        let manifest_dir = cargo::workspace_root().join("tests");
        let mut vars = privilege::forwarded_env();
        vars.push(("CARGO_MANIFEST_DIR", manifest_dir.clone().into_os_string()));
        let mut run = privilege::root_command("test", &binary, &vars)?;
        run.arg("--test-threads=1").current_dir(&manifest_dir);
        cmd::run(&mut run)?;
    }
    Ok(())
}

/// Builds the package's test binaries with `--no-run` and returns their paths, read from
/// cargo's JSON messages.
fn build_test_binaries(env: &BuildEnv) -> Result<Vec<PathBuf>> {
    let mut build = cargo::with_env(env);
    build.args([
        "test",
        "--package",
        PACKAGE,
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    // Cargo's progress and diagnostics go to stderr: show them; stdout carries the JSON.
    build.stderr(Stdio::inherit());
    let messages = cmd::output(&mut build)?;
    let mut binaries = Vec::new();
    for line in messages.lines() {
        let message: Value =
            serde_json::from_str(line).with_context(|| format!("cargo printed `{line}`"))?;
        let is_test = message["profile"]["test"].as_bool() == Some(true);
        if let (true, Some(path)) = (is_test, message["executable"].as_str()) {
            binaries.push(PathBuf::from(OsString::from(path)));
        }
    }
    if binaries.is_empty() {
        bail!("cargo built no test binary for {PACKAGE}");
    }
    Ok(binaries)
}
