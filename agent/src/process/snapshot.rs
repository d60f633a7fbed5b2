//! The start-up walk of /proc: processes that started before Vigil, so that their events are
//! enriched like any other.
//!
//! /proc gives the start time in clock ticks (10 ms at USER_HZ=100), the kernel records give it
//! in ns; the cache matches the two by tgid within one tick (see `ProcessCache::seed`).

use std::{
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use procfs::{ProcError, ProcResult};

use crate::{
    cgroup::CgroupFs,
    event::{Creds, WalkedPath},
};

/// One process read from /proc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcEntry {
    pub tgid: u32,
    pub ppid: u32,
    /// Start time since boot, rounded down to a clock tick, in ns.
    pub start_time_ns: u64,
    pub binary: WalkedPath,
    pub args: Vec<Vec<u8>>,
    pub cwd: WalkedPath,
    pub creds: Creds,
    pub comm: Vec<u8>,
    pub cgroup_id: u64,
    pub cgroup_path: Vec<u8>,
}

/// Length of one clock tick in ns (the precision of /proc start times).
pub fn tick_ns() -> u64 {
    1_000_000_000 / procfs::ticks_per_second().max(1)
}

/// Processes the walk left out, by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Exited while the walk read them, or exited and not reaped yet: normal on a busy node,
    /// where short-lived processes come and go all the time. Their exit is not in the cache's
    /// future, so leaving them out is right.
    pub vanished: usize,
    /// Present but not readable (permissions, `hidepid`, a damaged file): the cache misses them.
    pub unreadable: usize,
}

/// Why one process was left out.
enum Skip {
    Vanished,
    Unreadable,
}

impl From<ProcError> for Skip {
    fn from(error: ProcError) -> Self {
        match error {
            // procfs also maps ESRCH (the process went while its file was read) here.
            ProcError::NotFound(_) => Self::Vanished,
            _ => Self::Unreadable,
        }
    }
}

/// Reads every process under `proc_root` (normally `/proc`). A process that vanishes or cannot
/// be read mid-walk is skipped and counted, never an error; fails only when `proc_root`
/// cannot be listed.
pub fn read_proc(proc_root: &Path, cgroups: &CgroupFs) -> ProcResult<(Vec<ProcEntry>, Skipped)> {
    let tick = tick_ns();
    let mut entries = Vec::new();
    let mut skipped = Skipped::default();
    for process in procfs::process::all_processes_with_root(proc_root)? {
        let read = process
            .map_err(Skip::from)
            .and_then(|p| read_one(&p, proc_root, tick, cgroups));
        match read {
            Ok(entry) => entries.push(entry),
            Err(Skip::Vanished) => skipped.vanished += 1,
            Err(Skip::Unreadable) => skipped.unreadable += 1,
        }
    }
    Ok((entries, skipped))
}

fn read_one(
    process: &procfs::process::Process,
    proc_root: &Path,
    tick: u64,
    cgroups: &CgroupFs,
) -> Result<ProcEntry, Skip> {
    let stat = process.stat()?;
    if exited(&stat) {
        return Err(Skip::Vanished);
    }
    let status = process.status()?;
    let dir: PathBuf = proc_root.join(process.pid().to_string());
    let link = |name: &str| {
        std::fs::read_link(dir.join(name))
            .map(|p| WalkedPath {
                path: p.as_os_str().as_bytes().to_vec(),
                truncated: false,
            })
            .unwrap_or_default()
    };
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let (args, _) = crate::decode::split_args(&cmdline);
    let loginuid = process.loginuid().ok().filter(|&uid| uid != u32::MAX);
    let cgroup_path = cgroups.v2_path_of_pid(&dir);
    let binary = link("exe");
    let cwd = link("cwd");
    // Read again through the handle of the process's own directory, which never names
    // another process: still there and not exited, it was there all along, so the reads by
    // path above were of it (not of a process that took its pid) and saw it whole (an exe
    // or argv left empty by its exit would be a false entry).
    let again = process.stat()?;
    if exited(&again) || again.starttime != stat.starttime {
        return Err(Skip::Vanished);
    }
    Ok(ProcEntry {
        tgid: u32::try_from(status.tgid).map_err(|_| Skip::Unreadable)?,
        ppid: u32::try_from(stat.ppid).unwrap_or(0),
        start_time_ns: stat.starttime.saturating_mul(tick),
        binary,
        args,
        cwd,
        creds: Creds {
            uid: status.ruid,
            gid: status.rgid,
            euid: status.euid,
            egid: status.egid,
            loginuid,
        },
        comm: stat.comm.into_bytes(),
        cgroup_id: cgroup_path
            .as_deref()
            .and_then(|path| cgroups.cgroup_id(path))
            .unwrap_or(0),
        cgroup_path: cgroup_path.map(String::into_bytes).unwrap_or_default(),
    })
}

/// A zombie (exited, not reaped yet) or dead process.
fn exited(stat: &procfs::process::Stat) -> bool {
    matches!(stat.state, 'Z' | 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let cgroups = CgroupFs::discover();
        let (entries, _) = read_proc(Path::new("/proc"), &cgroups).expect("/proc is listed");
        let me = entries
            .iter()
            .find(|e| e.tgid == std::process::id())
            .expect("this test process is in /proc");
        let exe = std::env::current_exe().expect("current exe");
        assert_eq!(me.binary.path, exe.as_os_str().as_bytes());
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(me.cwd.path, cwd.as_os_str().as_bytes());
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(!me.args.is_empty());
        assert!(me.start_time_ns > 0);
    }

    #[test]
    fn an_exited_process_is_counted_as_vanished_not_read() {
        let mut child = std::process::Command::new("/bin/true")
            .spawn()
            .expect("spawn /bin/true");
        let pid = child.id();
        // Not reaped yet: a zombie in /proc.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, r)| r.starts_with(" Z"))
        }) {
            assert!(std::time::Instant::now() < deadline, "{pid} did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (entries, skipped) =
            read_proc(Path::new("/proc"), &CgroupFs::discover()).expect("/proc is listed");
        child.wait().expect("reap");
        assert!(entries.iter().all(|e| e.tgid != pid), "no entry for {pid}");
        assert!(skipped.vanished >= 1, "{skipped:?}");
    }

    #[test]
    fn vanished_and_unreadable_processes_are_counted_apart() {
        let root = std::env::temp_dir().join(format!("vigil-proc-{}", std::process::id()));
        // Listed, then gone before its files were read.
        std::fs::create_dir_all(root.join("4242")).expect("a pid directory");
        // There, with a file that does not parse.
        std::fs::create_dir_all(root.join("4243")).expect("a pid directory");
        std::fs::write(root.join("4243/stat"), "garbage").expect("a stat file");
        let (entries, skipped) =
            read_proc(&root, &CgroupFs::discover()).expect("the directory is listed");
        let _ = std::fs::remove_dir_all(&root);
        assert!(entries.is_empty());
        assert_eq!(
            skipped,
            Skipped {
                vanished: 1,
                unreadable: 1
            }
        );
        let error = read_proc(&root, &CgroupFs::discover()).expect_err("no such directory");
        assert!(matches!(error, ProcError::NotFound(_)), "{error:?}");
    }
}
