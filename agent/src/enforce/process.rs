//! Killing a process, or its whole tree, through pidfds: once a pidfd is open it names that
//! process and no other, so a pid reused in between cannot be hit. The identity is checked
//! once, after the pidfd is open, against the start time the caller knows (the
//! `ProcessKey`'s), when given.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use super::{EnforceError, Guard};

/// Rounds of "find the children, stop them" before the tree is killed: each round catches
/// what forked during the previous one; a stopped process forks no more.
const TREE_ROUNDS: usize = 8;

fn pidfd_open(pid: i32) -> Result<OwnedFd, EnforceError> {
    // SAFETY: a syscall with integer arguments; the returned descriptor is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(EnforceError::Process {
            pid,
            what: "cannot be opened (pidfd_open)",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` is a new descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_signal(pid: i32, fd: &OwnedFd, signal: i32) -> Result<(), EnforceError> {
    // SAFETY: a syscall on a descriptor we own; no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc != 0 {
        let source = std::io::Error::last_os_error();
        // Already gone: nothing left to kill.
        if source.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(EnforceError::Process {
            pid,
            what: "cannot be signalled (pidfd_send_signal)",
            source,
        });
    }
    Ok(())
}

/// Start time of `pid` in ns since boot, from `/proc/PID/stat` (clock ticks).
fn start_time_ns(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    // Field 22 overall; the text after comm starts at field 3.
    let ticks: u64 = after_comm.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000_000 / hz)
}

/// What /proc says of a process before it is acted on: its start time (tick-precise), its
/// command name and its cgroup v2 id, for the action's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessFacts {
    pub start_time_ns: u64,
    pub comm: String,
    pub cgroup_id: u64,
}

/// [`ProcessFacts`] of `pid`, when it exists.
pub fn facts(pid: i32) -> Option<ProcessFacts> {
    let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
    Some(ProcessFacts {
        start_time_ns: start_time_ns(pid)?,
        comm: comm.trim_end_matches('\n').to_owned(),
        cgroup_id: crate::cgroup::CgroupFs::discover()
            .cgroup_id_of_pid(&dir)
            .unwrap_or(0),
    })
}

/// Parent pid of `pid`, from `/proc/PID/stat`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Opens `pid` and, when `start_time_ns` is given, checks it is still that process.
fn open_checked(pid: i32, start_time_ns_expected: Option<u64>) -> Result<OwnedFd, EnforceError> {
    let fd = pidfd_open(pid)?;
    if let Some(expected) = start_time_ns_expected {
        // /proc has clock-tick resolution: 10 ms at 100 Hz.
        // SAFETY: sysconf has no memory arguments.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let tick = 1_000_000_000 / hz;
        match start_time_ns(pid) {
            Some(actual) if actual.abs_diff(expected) <= tick => {}
            _ => return Err(EnforceError::PidReused { pid }),
        }
    }
    Ok(fd)
}

/// SIGKILLs one process (through a pidfd).
pub fn kill_process(
    guard: &Guard,
    pid: i32,
    start_time_ns: Option<u64>,
) -> Result<(), EnforceError> {
    guard.check_pid(pid)?;
    let fd = open_checked(pid, start_time_ns)?;
    pidfd_signal(pid, &fd, libc::SIGKILL)
}

/// SIGKILLs `pid` and every process below it. Each member is opened as a pidfd and stopped
/// (SIGSTOP) as it is found, so the tree cannot grow while it is collected; then all are
/// killed. Members the guard protects are left alone. Returns how many were killed.
pub fn kill_tree(
    guard: &Guard,
    pid: i32,
    start_time_ns: Option<u64>,
) -> Result<usize, EnforceError> {
    guard.check_tree(pid)?;
    let root = open_checked(pid, start_time_ns)?;
    pidfd_signal(pid, &root, libc::SIGSTOP)?;
    let mut members: BTreeMap<i32, OwnedFd> = BTreeMap::new();
    members.insert(pid, root);
    for _ in 0..TREE_ROUNDS {
        let found = descendants(&members.keys().copied().collect());
        let new: Vec<i32> = found
            .into_iter()
            .filter(|p| !members.contains_key(p))
            .collect();
        if new.is_empty() {
            break;
        }
        for child in new {
            if guard.check_pid(child).is_err() {
                continue;
            }
            // A child that exited in between has nothing left to kill.
            if let Ok(fd) = pidfd_open(child) {
                let _ = pidfd_signal(child, &fd, libc::SIGSTOP);
                members.insert(child, fd);
            }
        }
    }
    for (member, fd) in &members {
        pidfd_signal(*member, fd, libc::SIGKILL)?;
    }
    Ok(members.len())
}

/// Every process whose parent is in `parents`, transitively (one /proc scan).
fn descendants(parents: &BTreeSet<i32>) -> BTreeSet<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = parent_of(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = BTreeSet::new();
    let mut queue: Vec<i32> = parents.iter().copied().collect();
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if out.insert(c) {
                queue.push(c);
            }
        }
    }
    out
}

/// Whether `ancestor` is `pid` or one of its ancestors.
pub(crate) fn is_ancestor(ancestor: i32, pid: i32) -> bool {
    let mut current = pid;
    for _ in 0..4096 {
        if current == ancestor {
            return true;
        }
        match parent_of(current) {
            Some(parent) if parent > 0 && parent != current => current = parent,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_start_time_and_ancestry() {
        let me = std::process::id() as i32;
        assert!(start_time_ns(me).is_some());
        let own = facts(me).expect("facts of this process");
        assert_eq!(Some(own.start_time_ns), start_time_ns(me));
        assert!(!own.comm.is_empty() && !own.comm.ends_with('\n'));
        assert!(is_ancestor(1, me));
        assert!(is_ancestor(me, me));
        assert!(!is_ancestor(me, 1));
    }
}
