//! Children to observe, and what the system says about them, to compare with what the kernel
//! programs report.

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc::{self, Receiver},
    },
    time::{Duration, Instant},
};

use vigil::{clock::boot_now_ns, event::Creds};

/// A directory removed (with its contents) when dropped. Its path is canonical, so it can
/// be compared with paths the kernel walked.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new directory in the system's temporary directory.
    pub fn new(label: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), label)
    }

    /// A new directory in `parent`.
    pub fn new_in(parent: &Path, label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "vigil-test-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = parent.join(name);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        let path = path.canonicalize().expect("canonical temp dir");
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Copies the executable `source` to `dir/name` and returns the copy's path: a binary with a
/// name and an inode that only this test uses.
pub fn install_executable(source: &Path, dir: &Path, name: &str) -> PathBuf {
    let target = dir.join(name);
    std::fs::copy(source, &target)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", source.display(), target.display()));
    target
}

/// The path as bytes, as the kernel sees it.
pub fn bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_bytes().to_vec()
}

/// The canonical path of `path`, as bytes.
pub fn canonical_bytes(path: &Path) -> Vec<u8> {
    let canonical = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("canonicalizing {}: {e}", path.display()));
    bytes(&canonical)
}

/// A spawned child, killed and reaped if the test ends before it does.
pub struct Spawned {
    pub child: Child,
    pub pid: u32,
    /// CLOCK_BOOTTIME just before the spawn: the child's start time is at least this.
    pub since_ns: u64,
    status: Option<ExitStatus>,
}

/// Spawns `command`. A freshly copied executable can briefly be "text file busy" when
/// another thread of this process forked while the copy was open for writing: retried.
#[track_caller]
pub fn spawn(command: &mut Command) -> Spawned {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let since_ns = boot_now_ns();
        match command.spawn() {
            Ok(child) => {
                return Spawned {
                    pid: child.id(),
                    child,
                    since_ns,
                    status: None,
                };
            }
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("spawning {command:?}: {e}"),
        }
    }
}

/// Spawns `command` and waits (at most `timeout`) for it to exit with success.
#[track_caller]
pub fn run_to_end(command: &mut Command, timeout: Duration) -> Spawned {
    let mut child = spawn(command);
    let status = child.wait(timeout);
    assert!(status.success(), "{command:?} exited with {status}");
    child
}

/// `program` followed by `args`: the argv that the kernel sees for a `Command`.
pub fn argv<A: AsRef<std::ffi::OsStr>>(program: &Path, args: &[A]) -> Vec<Vec<u8>> {
    std::iter::once(bytes(program))
        .chain(args.iter().map(|a| a.as_ref().as_bytes().to_vec()))
        .collect()
}

impl Spawned {
    /// Waits for the child to exit, for at most `timeout`.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitpid") {
                self.status = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child {} still running after {timeout:?}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the child is not reaped yet
        // (`status` is None until waited), so the pid still names it.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// A reader of the child's piped stdout, a line at a time (see [`lines`]).
    pub fn stdout_lines(&mut self) -> Receiver<String> {
        lines(self.child.stdout.take().expect("stdout was piped"))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `reader` line by line on a thread, so that lines can be awaited with a timeout.
pub fn lines(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next line from `lines`, within `timeout`.
#[track_caller]
pub fn next_line(lines: &Receiver<String>, timeout: Duration, what: &str) -> String {
    lines
        .recv_timeout(timeout)
        .unwrap_or_else(|e| panic!("no {what} within {timeout:?}: {e}"))
}

/// Every line until `lines` ends (the writer closed its end), waiting at most `timeout`.
#[track_caller]
pub fn all_lines(lines: &Receiver<String>, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut all = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => all.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return all,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "output still open after {timeout:?}; so far:\n{}",
                    all.join("\n")
                )
            }
        }
    }
}

/// Clock ticks per second, the unit of start times in `/proc/PID/stat`.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|&t| t > 0)
        .expect("_SC_CLK_TCK")
}

/// The start time of process `pid` in clock ticks since boot (`/proc/PID/stat` field 22),
/// which the kernel derives from the same `start_boottime` that Vigil's process keys hold.
pub fn proc_start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/stat: {e}"));
    // Fields after the command name, which may hold spaces and parentheses.
    let after_comm = &stat[stat.rfind(')').expect("stat has a comm") + 1..];
    // `after_comm` starts with field 3 (state); the start time is field 22.
    after_comm
        .split_whitespace()
        .nth(22 - 3)
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("no start time in /proc/{pid}/stat: {stat}"))
}

/// A process start time in ns since boot, converted to the clock ticks of `/proc`.
pub fn ns_to_ticks(ns: u64) -> u64 {
    ns / (1_000_000_000 / clock_ticks_per_second())
}

/// The kernel's `dev_t` (major << 20 | minor) of the filesystem holding `path`.
pub fn kernel_dev(path: &Path) -> u32 {
    let dev = std::fs::metadata(path).expect("stat").dev();
    (libc::major(dev) << 20) | libc::minor(dev)
}

/// The inode number of `path`.
pub fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").ino()
}

/// The credentials of this process, which its children inherit.
pub fn own_creds() -> Creds {
    // SAFETY: these getters cannot fail and have no preconditions.
    let (uid, gid, euid, egid) = unsafe {
        (
            libc::getuid(),
            libc::getgid(),
            libc::geteuid(),
            libc::getegid(),
        )
    };
    Creds {
        uid,
        gid,
        euid,
        egid,
        loginuid: own_loginuid(),
    }
}

/// This process's audit login uid, as Vigil reports it: `None` when unset or unsupported.
pub fn own_loginuid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&uid| uid != u32::MAX)
}

/// The cgroup v2 id of this process (the inode of its cgroup directory), when a cgroup2
/// hierarchy is mounted.
pub fn own_cgroup_id() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount_point = mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let fields: Vec<&str> = mount.split_whitespace().collect();
        // Only a mount of the hierarchy's root maps `/proc/self/cgroup` paths directly.
        (fs.starts_with("cgroup2 ") && fields.get(3) == Some(&"/"))
            .then(|| fields.get(4).map(|&p| p.to_owned()))
            .flatten()
    })?;
    let dir = Path::new(&mount_point).join(relative.trim_start_matches('/'));
    std::fs::metadata(dir).ok().map(|m| m.ino())
}

/// A Python 3 interpreter run directly (not through a wrapper script such as a pyenv shim,
/// which would exec more than once).
pub fn python3() -> PathBuf {
    let system = Path::new("/usr/bin/python3");
    if system.exists() {
        return system.to_owned();
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable))",
        ])
        .output()
        .expect("python3 is needed by this test");
    assert!(output.status.success(), "python3 failed: {output:?}");
    PathBuf::from(String::from_utf8(output.stdout).expect("utf-8 path").trim())
}

/// Runs `script` with `args` in python3 and returns its pid, its start-time bound and the JSON
/// objects it printed (one a line), once it has exited successfully.
#[track_caller]
pub fn run_python_facts(script: &str, args: &[&str]) -> (u32, u64, Vec<serde_json::Value>) {
    let mut child = spawn(
        Command::new(python3())
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(std::process::Stdio::piped()),
    );
    let lines = all_lines(&child.stdout_lines(), crate::EVENT_TIMEOUT);
    let status = child.wait(crate::EVENT_TIMEOUT);
    assert!(status.success(), "python exited with {status}: {lines:?}");
    let facts = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (child.pid, child.since_ns, facts)
}
