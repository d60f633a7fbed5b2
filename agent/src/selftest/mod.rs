//! `vigil selftest` (hidden): the suite that `cargo xtask test-kernels` runs inside each guest
//! kernel, as root in a bare initramfs. One machine-readable line per check (`report`):
//!
//! - `probe.*`: what the kernel allows, from the same probe as `vigil probe`;
//! - `load.*`: every program Vigil ships loads and attaches, or is reported unsupported
//!   with what is used instead (`programs`);
//! - `capture.*`: fork/exec/exit of a busybox command with its exact argv, a loopback
//!   connect, an open in a watched folder (`capture`);
//! - `enforce.*`: kill-on-exec and the cgroup connect deny (the fallbacks, installed as such
//!   on every kernel), each next to a process that must be left alone (`enforce`);
//! - `lsm.*`: exec, open and connect denied by the BPF-LSM variants, or `unsupported` with
//!   the install's reason and the fallback in force (`lsm`).
//!
//! It loads programs and changes cgroups: run it in a throw-away guest, not on a node.

mod capture;
mod enforce;
mod lsm;
mod programs;
mod report;
mod trigger;

use std::path::PathBuf;

pub use report::{Outcome, PREFIX};
pub use trigger::{ThreadsExit, connect as trigger_connect, threads_exit as trigger_threads_exit};

use crate::bpf::probe;

/// The busybox the triggers run (Debian's busybox-static puts it here; so does the guest).
pub const BUSYBOX: &str = "/bin/busybox";

/// Where the suite keeps its files.
const WORKDIR: &str = "/tmp/vigil-selftest";

/// Runs every check and prints its line; true when none failed.
pub fn run() -> bool {
    let mut reporter = report::Reporter::new();
    reporter.begin();
    let probe = probe::probe();
    reporter.record_all(programs::probe_rows(&probe));
    let workdir = PathBuf::from(WORKDIR);
    if let Err(e) = std::fs::create_dir_all(&workdir) {
        reporter.record("setup", Outcome::Fail(format!("creating {WORKDIR}: {e}")));
        return reporter.end();
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            reporter.record("setup", Outcome::Fail(format!("a tokio runtime: {e}")));
            return reporter.end();
        }
    };
    let started = {
        let _context = runtime.enter();
        capture::Capture::start(&workdir)
    };
    match started {
        Ok(mut capture) => {
            if let Some(agent) = capture.agent() {
                reporter.record_all(programs::sensor_rows(Ok(agent)));
            }
            for (check, outcome) in capture.exec_fork_exit() {
                reporter.record(check, outcome);
            }
            for (check, outcome) in capture.group_exits() {
                reporter.record(check, outcome);
            }
            reporter.record("capture.connect", capture.connect());
            reporter.record("capture.file_open", capture.file_open());
            runtime.block_on(capture.stop());
        }
        Err(why) => {
            reporter.record_all(programs::sensor_rows(Err(&why)));
            // The whole reason is on the load rows; here only its first line.
            let why = why.lines().next().unwrap_or_default().to_owned();
            for check in [
                "capture.fork",
                "capture.exec",
                "capture.exit",
                "capture.exit_by_thread",
                "capture.exit_once",
                "capture.connect",
                "capture.file_open",
            ] {
                reporter.record(
                    check,
                    Outcome::Fail(format!("the sensor did not load: {why}")),
                );
            }
        }
    }

    // The fallbacks, on every kernel (what a kernel without BPF-LSM enforces with), then the
    // BPF-LSM variants where this kernel runs them; one install at a time, each cleared.
    match enforce::install(&workdir, false) {
        Ok((mut installed, _)) => {
            reporter.record(
                "enforce.kill_on_exec",
                enforce::kill_on_exec(&mut installed, &workdir),
            );
            reporter.record(
                "enforce.connect_deny",
                enforce::connect_deny(&mut installed),
            );
        }
        Err(why) => {
            for check in ["enforce.kill_on_exec", "enforce.connect_deny"] {
                reporter.record(check, Outcome::Fail(format!("install failed: {why}")));
            }
        }
    }
    match enforce::install(&workdir, true) {
        Ok((mut installed, report)) => {
            reporter.record_all(programs::enforcement_rows(Ok(&report)));
            reporter.record_all(lsm::rows(Ok((&mut installed, &report)), &workdir));
        }
        Err(why) => {
            reporter.record_all(programs::enforcement_rows(Err(&why)));
            reporter.record_all(lsm::rows(Err(&why), &workdir));
        }
    }
    reporter.end()
}
