//! A cgroup v2 made for one test, to scope rules to (connect deny, exec deny, freeze).

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use vigil::cgroup::CgroupFs;

use crate::gate;

/// A fresh cgroup v2 directly below the root, removed on drop (its processes must be gone:
/// the removal is retried for a few seconds while they exit).
pub struct TestCgroup {
    pub dir: PathBuf,
    /// Path below the v2 root, as in /proc/PID/cgroup.
    pub rel: String,
}

impl TestCgroup {
    /// `None` (after [`gate::skip`]) when no cgroup v2 hierarchy is mounted.
    pub fn new(label: &str) -> Option<Self> {
        let Some(root) = CgroupFs::discover().v2_root else {
            gate::skip("no cgroup v2 hierarchy is mounted");
            return None;
        };
        let rel = format!("/vigil-test-{}-{label}", std::process::id());
        let dir = root.join(rel.trim_start_matches('/'));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Some(Self { dir, rel })
    }

    /// `sh -c` that moves itself into this cgroup, then runs `script`.
    pub fn sh(&self, script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(format!(
            "echo $$ > {}/cgroup.procs && {script}",
            self.dir.display()
        ));
        command
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
