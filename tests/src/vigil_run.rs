//! `vigil run` as an operator starts it: the real binary, a config file written by the test,
//! JSON events to a file and the log to another; the lines of one process read back from the
//! file while it grows.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;

use crate::{
    EVENT_TIMEOUT,
    binary::vigil_binary,
    daemon::{Daemon, json_lines, wait_until},
    gate,
    spawn::TempDir,
};

/// How long `vigil run` may take to load and attach (a debug build, on a busy machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What `vigil run` logs once it is ready.
pub const READY: &str = "Vigil is running.";

/// The `vigil` binary and a fresh directory with an empty `policies/` in it; `None` (after
/// [`gate::skip`]) when the agent cannot run here.
pub fn setup(label: &str) -> Option<(PathBuf, TempDir)> {
    if !gate::privileged() {
        gate::skip("`vigil run` needs root or CAP_BPF + CAP_PERFMON");
        return None;
    }
    let vigil = vigil_binary()?;
    let dir = TempDir::new(label);
    std::fs::create_dir(dir.path().join("policies")).expect("policy directory");
    Some((vigil, dir))
}

/// A running `vigil run`.
pub struct VigilRun {
    pub daemon: Daemon,
    /// The JSON-lines output file.
    pub output: PathBuf,
}

impl VigilRun {
    /// Starts `vigil run` with only `dir/policies`, no API socket and no enforcement pins
    /// (nothing shared with an agent running beside), and the TOML sections `extra`; events
    /// to `dir/events.jsonl`, the INFO log to `dir/agent.log`. Returns once it is ready.
    pub fn start(vigil: &Path, dir: &Path, extra: &str) -> Self {
        Self::start_with(vigil, dir, "[enforcement]\nenabled = false\n", extra)
    }

    /// As [`VigilRun::start`], with `enforcement` as the config's `[enforcement]` section
    /// (a private layout's, [`crate::enforcement::PrivateLayout::toml`]).
    pub fn start_with(vigil: &Path, dir: &Path, enforcement: &str, extra: &str) -> Self {
        std::fs::write(
            dir.join("vigil.toml"),
            format!(
                "[policy]\ndefault_pack = false\ndirectory = \"{}\"\nreload_interval_ms = 0\n\n\
                 [api]\nenabled = false\n\n{enforcement}\n{extra}",
                dir.join("policies").display()
            ),
        )
        .expect("writing the config");
        Self::restart(vigil, dir)
    }

    /// Starts `vigil run` again with the config, output and log of an earlier start in `dir`
    /// (after a crash, say); returns once this run is ready.
    pub fn restart(vigil: &Path, dir: &Path) -> Self {
        let output = dir.join("events.jsonl");
        let log = dir.join("agent.log");
        // Counted before the start: earlier runs' lines are in the same log.
        let starts = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(READY)
            .count()
            + 1;
        let mut daemon = Daemon::start(
            Command::new(vigil)
                .arg("run")
                .arg("--config")
                .arg(dir.join("vigil.toml"))
                .arg("--output")
                .arg(&output)
                .env("VIGIL_LOG", "info"),
            &log,
        );
        daemon.wait_for_log(READY, starts, START_TIMEOUT);
        Self { daemon, output }
    }

    /// The line of `kind` about `pid`, once it is in the file.
    #[track_caller]
    pub fn line(&self, kind: &str, pid: u32) -> Value {
        self.line_where(&format!("{kind} line of pid {pid}"), EVENT_TIMEOUT, |l| {
            l["kind"] == kind && l["process"]["pid"] == pid
        })
    }

    /// The first line that `matches`, once it is in the file (within `timeout`).
    #[track_caller]
    pub fn line_where(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut found = None;
        wait_until(timeout, what, || {
            found = json_lines(&self.output).into_iter().find(&matches);
            found.is_some()
        });
        found.expect("found")
    }

    /// Stops the agent cleanly and checks the whole file: whole lines, each one JSON object,
    /// no raw control byte but the line ends.
    pub fn stop_and_check_output(self) -> Vec<Value> {
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
