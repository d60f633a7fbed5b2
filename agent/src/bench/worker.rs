//! The storm process of `vigil bench connect` and `vigil bench open`: the bench re-runs its own
//! binary as `vigil bench storm-worker`, because the agent never captures the syscalls of its
//! own process (`syscall_ignore_tgid`), so a storm inside the bench process would be invisible
//! to Vigil.
//!
//! The protocol keeps process start-up out of the measurement: the worker sets up (listener,
//! file), prints `ready <port>`, waits for a line on stdin, runs the storm, prints
//! `done <wall ns> <cpu ns>` (the storm's wall time, and the CPU time its thread used, user +
//! system, which other load on the machine does not inflate) and exits. The bench reads BPF statistics between
//! `ready` and `done`, and starts a peer tracer that needs the worker's pid or port before
//! saying go.

use std::{
    ffi::CString,
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    os::{fd::IntoRawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::Timing;

/// What a worker storms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `count` x (connect to a 127.0.0.1 listener, accept, close both ends).
    Connect,
    /// `count` x (open a file read-only, close it).
    Open,
}

impl Kind {
    fn arg(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Open => "open",
        }
    }
}

/// How long and how fast a worker storms: up to `count` iterations, and at most `seconds`
/// (when given) at most `rate` iterations per second (when given; else as fast as it can).
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub count: u64,
    pub seconds: Option<f64>,
    pub rate: Option<u32>,
}

impl Pace {
    pub fn count(count: u32) -> Self {
        Self {
            count: u64::from(count),
            seconds: None,
            rate: None,
        }
    }
}

/// Keeps a timed or paced storm to its plan: checks the clock every 64 iterations.
struct Pacer {
    start: Instant,
    pace: Pace,
}

impl Pacer {
    /// False once the storm should stop before iteration `i`; sleeps when ahead of the rate.
    fn go_on(&self, i: u64) -> bool {
        if i >= self.pace.count {
            return false;
        }
        if !i.is_multiple_of(64) || (self.pace.seconds.is_none() && self.pace.rate.is_none()) {
            return true;
        }
        let elapsed = self.start.elapsed();
        if self
            .pace
            .seconds
            .is_some_and(|s| elapsed.as_secs_f64() >= s)
        {
            return false;
        }
        if let Some(rate) = self.pace.rate {
            let due = Duration::from_secs_f64(i as f64 / f64::from(rate.max(1)));
            if let Some(ahead) = due.checked_sub(elapsed) {
                std::thread::sleep(ahead);
            }
        }
        true
    }
}

/// The worker's side: set up, say ready, storm on a line from stdin, say done.
pub fn serve(kind: Kind, pace: Pace, file: Option<&Path>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut go = String::new();
    // ((wall clock, thread CPU) when the storm started, iterations done).
    let (start, iterations) = match kind {
        Kind::Connect => {
            let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
            let addr = listener.local_addr().context("listener address")?;
            writeln!(out, "ready {}", addr.port())?;
            out.flush()?;
            if std::io::stdin().read_line(&mut go)? == 0 {
                // The bench dropped its handle (it failed): no storm.
                return Ok(());
            }
            let start = (Instant::now(), super::cpu_time(libc::RUSAGE_THREAD));
            let pacer = Pacer {
                start: start.0,
                pace,
            };
            let mut i = 0;
            while pacer.go_on(i) {
                let client = TcpStream::connect(addr).with_context(|| format!("connect {i}"))?;
                let (server, _) = listener.accept().with_context(|| format!("accept {i}"))?;
                // The server closes first: its side ends in TIME_WAIT, the client's ephemeral
                // port is free again at once (no port exhaustion over many runs).
                close(server.into_raw_fd()).with_context(|| format!("close accepted {i}"))?;
                close(client.into_raw_fd()).with_context(|| format!("close client {i}"))?;
                i += 1;
            }
            (start, i)
        }
        Kind::Open => {
            let file = file.context("the open storm needs --file")?;
            std::fs::write(file, b"vigil bench\n")
                .with_context(|| format!("creating {}", file.display()))?;
            let path = CString::new(file.as_os_str().as_bytes()).context("path with a NUL")?;
            writeln!(out, "ready 0")?;
            out.flush()?;
            if std::io::stdin().read_line(&mut go)? == 0 {
                return Ok(());
            }
            let start = (Instant::now(), super::cpu_time(libc::RUSAGE_THREAD));
            let pacer = Pacer {
                start: start.0,
                pace,
            };
            let mut i = 0;
            while pacer.go_on(i) {
                // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error())
                        .with_context(|| format!("open {i} of {}", file.display()));
                }
                close(fd).with_context(|| format!("close {i}"))?;
                i += 1;
            }
            (start, i)
        }
    };
    let (wall, cpu) = (
        start.0.elapsed(),
        super::cpu_time(libc::RUSAGE_THREAD).saturating_sub(start.1),
    );
    writeln!(
        out,
        "done {} {} {iterations}",
        wall.as_nanos(),
        cpu.as_nanos()
    )?;
    out.flush()?;
    Ok(())
}

fn close(fd: i32) -> std::io::Result<()> {
    // SAFETY: `fd` was just taken from an owner (into_raw_fd) or returned by open; it is
    // closed exactly once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The bench's handle on a worker that said ready.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub pid: u32,
    /// The listener's port (connect storm), 0 otherwise.
    pub port: u16,
}

impl Worker {
    /// Starts a worker and waits until it is ready.
    pub fn spawn(kind: Kind, count: u32, file: Option<&PathBuf>) -> anyhow::Result<Self> {
        Self::spawn_paced(kind, Pace::count(count), file)
    }

    /// Starts a worker with a time bound or a rate, and waits until it is ready.
    pub fn spawn_paced(kind: Kind, pace: Pace, file: Option<&PathBuf>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the vigil binary")?;
        let mut command = Command::new(exe);
        command.args(["bench", "storm-worker", "--kind", kind.arg(), "--count"]);
        command.arg(pace.count.to_string());
        if let Some(seconds) = pace.seconds {
            command.arg("--seconds").arg(seconds.to_string());
        }
        if let Some(rate) = pace.rate {
            command.arg("--rate").arg(rate.to_string());
        }
        if let Some(file) = file {
            command.arg("--file").arg(file);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the storm worker")?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("worker stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Some(port) = parse_ready(&line) else {
            let status = child.wait()?;
            anyhow::bail!("storm worker did not say ready ({status}): {line:?}");
        };
        Ok(Self {
            pid: child.id(),
            child,
            stdin,
            stdout,
            port,
        })
    }

    /// Runs the storm; returns its times once the worker has exited cleanly.
    pub fn go(self) -> anyhow::Result<Timing> {
        Ok(self.go_counted()?.0)
    }

    /// Runs the storm; returns its times and its iterations once the worker has exited
    /// cleanly.
    pub fn go_counted(mut self) -> anyhow::Result<(Timing, u64)> {
        self.stdin.write_all(b"go\n")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let status = self.child.wait().context("waiting for the storm worker")?;
        anyhow::ensure!(status.success(), "storm worker failed: {status}");
        parse_done(&line).with_context(|| format!("storm worker said {line:?}, not done"))
    }
}

fn parse_ready(line: &str) -> Option<u16> {
    line.trim().strip_prefix("ready ")?.parse().ok()
}

/// `done WALL_NS CPU_NS ITERATIONS`.
fn parse_done(line: &str) -> Option<(Timing, u64)> {
    let mut fields = line.trim().strip_prefix("done ")?.split(' ');
    let mut next = || fields.next()?.parse::<u64>().ok();
    let timing = Timing {
        wall: Duration::from_nanos(next()?),
        cpu: Some(Duration::from_nanos(next()?)),
    };
    Some((timing, next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lines() {
        assert_eq!(parse_ready("ready 40321\n"), Some(40321));
        assert_eq!(parse_ready("ready 0"), Some(0));
        assert_eq!(parse_ready("Error: boom"), None);
        let (done, iterations) = parse_done("done 1500 700 42\n").expect("a done line");
        assert_eq!(done.wall, Duration::from_nanos(1500));
        assert_eq!(done.cpu, Some(Duration::from_nanos(700)));
        assert_eq!(iterations, 42);
        assert!(parse_done("done 1500 700").is_none());
        assert!(parse_done("ready 1").is_none());
        assert!(parse_done("").is_none());
    }
}
