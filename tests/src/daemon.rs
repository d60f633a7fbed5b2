//! Long-running `vigil` processes (`vigil run`, `vigil collect`) that a test starts, kills
//! with SIGKILL or stops with SIGINT, and whose stderr it can wait on; and JSON-lines files
//! read back while they grow.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A child with its stderr in a file; killed when dropped.
pub struct Daemon {
    child: Child,
    stderr: PathBuf,
}

impl Daemon {
    /// Starts `command` with stderr to `stderr` (appended, so restarts keep earlier logs).
    #[track_caller]
    pub fn start(command: &mut Command, stderr: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr)
            .expect("the daemon's log file");
        let child = command
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
        Self {
            child,
            stderr: stderr.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the log has `count` lines containing `text` (counting earlier runs'). On
    /// a timeout the panic shows the log and where the process is in the kernel, so that a
    /// daemon that hangs says where.
    #[track_caller]
    pub fn wait_for_log(&mut self, text: &str, count: usize, timeout: Duration) {
        let stderr = self.stderr.clone();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the daemon exited with {status}:\n{}", self.log());
            }
            if self.log().lines().filter(|l| l.contains(text)).count() >= count {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no `{text}` in {} within {timeout:?}; the daemon is alive ({}); its log:\n{}",
                    stderr.display(),
                    self.kernel_state(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process's state, wait channel and the threads' kernel stacks, from /proc.
    fn kernel_state(&self) -> String {
        let proc = PathBuf::from(format!("/proc/{}", self.child.id()));
        let read = |name: &str| std::fs::read_to_string(proc.join(name)).unwrap_or_default();
        let state = read("status")
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("State: unknown")
            .to_owned();
        let mut stacks = String::new();
        for task in std::fs::read_dir(proc.join("task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = task.path();
            let wchan = std::fs::read_to_string(path.join("wchan")).unwrap_or_default();
            let stack = std::fs::read_to_string(path.join("stack")).unwrap_or_default();
            stacks.push_str(&format!(
                "\n  thread {}: wchan {wchan}\n{stack}",
                task.file_name().to_string_lossy()
            ));
        }
        format!("{state}; threads:{stacks}")
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT, then waits for a clean exit.
    #[track_caller]
    pub fn interrupt(mut self, timeout: Duration) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "exited with {status}:\n{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "no exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` every 50 ms; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The whole lines of a JSON-lines file that parse (a torn last line is skipped).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A loopback TCP port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The value of `field=` in a log line.
pub fn log_field<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {field}="))? + field.len() + 2;
    line[start..].split_whitespace().next()
}
