//! Triggers that run in a child process: Vigil never captures its own process (the syscall
//! programs skip the agent's tgid), so what the suite wants to see happen must happen in
//! another one. The child is this same binary (`vigil selftest --connect ADDR`), so the
//! suite needs nothing in the guest but itself and busybox.

use std::{
    io::ErrorKind,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// Exit status of the child: connected.
pub const CONNECTED: i32 = 0;
/// Exit status of the child: the connect failed with EPERM (a deny rule).
pub const DENIED: i32 = 10;
/// Exit status of the child: anything else went wrong (printed on its stderr).
pub const OTHER: i32 = 11;

/// The child's side: join `cgroup` (a cgroup v2 directory) if given, then connect to `addr`.
pub fn connect(addr: SocketAddr, cgroup: Option<&Path>) -> i32 {
    if let Some(dir) = cgroup {
        let procs = dir.join("cgroup.procs");
        if let Err(error) = std::fs::write(&procs, std::process::id().to_string()) {
            eprintln!("vigil selftest: joining {}: {error}", procs.display());
            return OTHER;
        }
    }
    // A blocking connect: one connect(2) whose return value is the outcome (a connect with a
    // timeout is non-blocking, EINPROGRESS, and the capture check wants the plain case).
    match TcpStream::connect(addr) {
        Ok(_) => CONNECTED,
        Err(error) if error.kind() == ErrorKind::PermissionDenied => DENIED,
        Err(error) => {
            eprintln!("vigil selftest: connect {addr}: {error}");
            OTHER
        }
    }
}

/// How the threads of a `--threads-exit` child end their group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ThreadsExit {
    /// The main thread leaves alone (`exit`, not `exit_group`); a second thread ends the
    /// group later with `exit_group(7)`: the group's end is another thread's than the pid's.
    LeaderFirst,
    /// Four threads leave alone (`exit`) at the moment the main thread calls
    /// `exit_group(5)`: several threads are in `do_exit` at once, the race a group's end
    /// must be reported once through.
    Together,
}

impl ThreadsExit {
    /// The status `wait` gives for the group.
    pub fn status(self) -> i32 {
        match self {
            Self::LeaderFirst => 7,
            Self::Together => 5,
        }
    }
}

/// The child's side of `--threads-exit`: never returns.
pub fn threads_exit(how: ThreadsExit) -> ! {
    let status = how.status();
    match how {
        ThreadsExit::LeaderFirst => {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                // SAFETY: ends the process at once, as `exit_group` does.
                unsafe { libc::_exit(status) }
            });
            exit_thread()
        }
        ThreadsExit::Together => {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(5));
            for _ in 0..4 {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    exit_thread()
                });
            }
            barrier.wait();
            // SAFETY: as above.
            unsafe { libc::_exit(status) }
        }
    }
}

/// Ends the calling thread only (the `exit` system call, which libc's `exit` is not); the
/// rest of the process runs on. Nothing is unwound or freed: the process ends soon after.
fn exit_thread() -> ! {
    // SAFETY: the thread owns no lock and nothing refers to its stack, which stays mapped.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    unreachable!("the exit system call returned")
}

/// A child whose threads end it as `how` says.
pub fn threads_exit_command(how: ThreadsExit) -> Command {
    let mut command = Command::new(self_exe());
    command.arg("selftest").arg("--threads-exit").arg(
        clap::ValueEnum::to_possible_value(&how)
            .expect("no variant is skipped")
            .get_name(),
    );
    command
}

/// Where this binary is, for re-running it as a trigger.
fn self_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
}

/// A child that connects to `addr` (from inside `cgroup` when given).
pub fn connect_command(addr: SocketAddr, cgroup: Option<&Path>) -> Command {
    let mut command = Command::new(self_exe());
    command
        .arg("selftest")
        .arg("--connect")
        .arg(addr.to_string());
    if let Some(dir) = cgroup {
        command.arg("--cgroup").arg(dir);
    }
    command
}

/// A started child, waited for with a deadline.
pub struct Child {
    pub pid: u32,
    child: std::process::Child,
}

impl Child {
    /// Starts `command` with no stdin and stdout, stderr inherited (it reaches the console).
    pub fn spawn(command: &mut Command) -> std::io::Result<Self> {
        let child = command.stdin(Stdio::null()).stdout(Stdio::null()).spawn()?;
        Ok(Self {
            pid: child.id(),
            child,
        })
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its end, or `None` (after killing it) when it outlived `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return None;
                }
            }
        }
    }
}
