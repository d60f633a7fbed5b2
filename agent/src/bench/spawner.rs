//! The process that spawns the children of `vigil bench response`: the bench re-runs its own
//! binary as `vigil bench response-worker`, so that the children are a stranger's, as they
//! would be on a node (the agent never acts on itself), and the worker's `waitpid` times what
//! a child's parent sees.
//!
//! The worker spawns `binary ARGS` `count` times for each of its binaries, one child at a
//! time, the binaries in turn (so that the machine's other load falls on each alike), after a
//! random pause of up to `max_gap` (so that the children's execs fall at random points of the
//! agent's ring-buffer and drain timers, as real events do, not just after a tick). For each
//! child it prints `child <binary index> <pid> <spawn ns> <reaped ns> <how>`: CLOCK_BOOTTIME
//! (the clock of kernel event times) just before the spawn and just after the child was
//! reaped, and `signal:N`, `exit:N` or `survived` (still alive after the timeout: the worker
//! killed it and stops there). Then `done`.

use std::{
    io::{BufRead, BufReader, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::ExitStatusExt,
    },
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use crate::clock::boot_now_ns;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Signal(i32),
    Exit(i32),
    /// Alive at the timeout.
    Survived,
}

/// One child, as the worker saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Child {
    /// Which of the worker's binaries it ran.
    pub which: usize,
    pub pid: u32,
    pub spawn_ns: u64,
    pub reaped_ns: u64,
    pub end: End,
}

/// How the worker spawns.
pub struct Plan<'a> {
    pub binaries: &'a [PathBuf],
    pub args: &'a [String],
    /// Children of each binary.
    pub count: u32,
    pub timeout: Duration,
    pub max_gap: Duration,
}

/// The worker's side.
pub fn serve(plan: &Plan<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut random = SplitMix(boot_now_ns());
    let total = plan.count as usize * plan.binaries.len();
    for i in 0..total {
        let which = i % plan.binaries.len();
        let binary = &plan.binaries[which];
        let gap_ns = u64::try_from(plan.max_gap.as_nanos()).unwrap_or(u64::MAX);
        std::thread::sleep(Duration::from_nanos(random.below(gap_ns)));
        let spawn_ns = boot_now_ns();
        let mut child = Command::new(binary)
            .args(plan.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {i} of {}", binary.display()))?;
        let mut end = None;
        if !exits_within(child.id(), plan.timeout) {
            end = Some(End::Survived);
            let _ = child.kill();
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for child {i}"))?;
        let reaped_ns = boot_now_ns();
        let end = end.unwrap_or_else(|| match status.signal() {
            Some(signal) => End::Signal(signal),
            None => End::Exit(status.code().unwrap_or(-1)),
        });
        let line = format_child(&Child {
            which,
            pid: child.id(),
            spawn_ns,
            reaped_ns,
            end,
        });
        writeln!(out, "{line}")?;
        out.flush()?;
        if end == End::Survived {
            break;
        }
    }
    writeln!(out, "done")?;
    out.flush()?;
    Ok(())
}

/// Waits on a pidfd, which is readable once the process has exited (woken by the exit
/// itself, not polled); true when it exited within `timeout`, or when there is no pidfd.
fn exits_within(pid: u32, timeout: Duration) -> bool {
    // SAFETY: a syscall with integer arguments; the returned descriptor is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return true;
    }
    // SAFETY: `fd` is a new descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    loop {
        // SAFETY: one valid pollfd, for the duration of the call.
        match unsafe { libc::poll(&mut poll, 1, ms) } {
            0 => return false,
            n if n > 0 => return true,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return true,
        }
    }
}

/// splitmix64: enough randomness for pauses, without a dependency.
struct SplitMix(u64);

impl SplitMix {
    /// Uniform enough in `0..bound` (0 when `bound` is 0).
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).checked_rem(bound).unwrap_or(0)
    }
}

fn format_child(child: &Child) -> String {
    let end = match child.end {
        End::Signal(n) => format!("signal:{n}"),
        End::Exit(n) => format!("exit:{n}"),
        End::Survived => "survived".into(),
    };
    format!(
        "child {} {} {} {} {end}",
        child.which, child.pid, child.spawn_ns, child.reaped_ns
    )
}

fn parse_child(line: &str) -> Option<Child> {
    let mut fields = line.trim().strip_prefix("child ")?.split(' ');
    let which = fields.next()?.parse().ok()?;
    let pid = fields.next()?.parse().ok()?;
    let spawn_ns = fields.next()?.parse().ok()?;
    let reaped_ns = fields.next()?.parse().ok()?;
    let end = match fields.next()? {
        "survived" => End::Survived,
        end => match end.split_once(':')? {
            ("signal", n) => End::Signal(n.parse().ok()?),
            ("exit", n) => End::Exit(n.parse().ok()?),
            _ => return None,
        },
    };
    Some(Child {
        which,
        pid,
        spawn_ns,
        reaped_ns,
        end,
    })
}

/// The bench's side: runs a worker to the end (blocking) and returns its children.
pub fn run(plan: &Plan<'_>) -> anyhow::Result<Vec<Child>> {
    let exe = std::env::current_exe().context("finding the vigil binary")?;
    let mut command = Command::new(exe);
    command.args(["bench", "response-worker"]);
    for binary in plan.binaries {
        command.arg("--binary").arg(binary);
    }
    let mut worker = command
        .arg("--count")
        .arg(plan.count.to_string())
        .arg("--timeout-ms")
        .arg(plan.timeout.as_millis().to_string())
        .arg("--max-gap-ms")
        .arg(plan.max_gap.as_millis().to_string())
        .arg("--")
        .args(plan.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the response worker")?;
    let stdout = BufReader::new(worker.stdout.take().context("worker stdout")?);
    let mut children = Vec::new();
    let mut done = false;
    for line in stdout.lines() {
        let line = line.context("reading the worker's output")?;
        if line.trim() == "done" {
            done = true;
            break;
        }
        children.push(parse_child(&line).with_context(|| format!("the worker said {line:?}"))?);
    }
    let status = worker.wait().context("waiting for the response worker")?;
    anyhow::ensure!(
        done && status.success(),
        "the response worker failed: {status}"
    );
    Ok(children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_lines_round_trip() {
        for end in [End::Signal(9), End::Exit(0), End::Survived] {
            let child = Child {
                which: 1,
                pid: 4242,
                spawn_ns: 1_000,
                reaped_ns: 2_500,
                end,
            };
            assert_eq!(parse_child(&format_child(&child)), Some(child));
        }
        assert_eq!(
            parse_child("child 0 7 10 20 signal:9\n").map(|c| (c.which, c.pid, c.end)),
            Some((0, 7, End::Signal(9)))
        );
        assert!(parse_child("child 0 7 10 signal:9").is_none());
        assert!(parse_child("child 0 7 10 20 bogus").is_none());
        assert!(parse_child("done").is_none());
    }

    #[test]
    fn pauses_stay_below_the_bound() {
        let mut random = SplitMix(42);
        let pauses: Vec<u64> = (0..1000).map(|_| random.below(50)).collect();
        assert!(pauses.iter().all(|&p| p < 50));
        // Spread over the range, not stuck.
        assert!(pauses.iter().any(|&p| p < 10) && pauses.iter().any(|&p| p >= 40));
        assert_eq!(random.below(0), 0);
    }
}
