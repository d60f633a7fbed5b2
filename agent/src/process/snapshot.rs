//! The start-up walk of /proc: processes that started before Vigil, so that their events are
//! enriched like any other.
//!
//! /proc gives the start time in clock ticks (10 ms at USER_HZ=100), the kernel records give it
//! in ns; the cache matches the two by tgid within one tick (see `ProcessCache::seed`).

use std::{
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

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

/// Reads every process under `proc_root` (normally `/proc`). A process that vanishes or cannot
/// be read mid-walk is skipped and counted; returns the entries and the number skipped.
pub fn read_proc(proc_root: &Path, cgroups: &CgroupFs) -> (Vec<ProcEntry>, usize) {
    let tick = tick_ns();
    let mut entries = Vec::new();
    let mut skipped = 0;
    let Ok(all) = procfs::process::all_processes_with_root(proc_root) else {
        return (entries, 0);
    };
    for process in all {
        match process
            .ok()
            .and_then(|p| read_one(&p, proc_root, tick, cgroups))
        {
            Some(entry) => entries.push(entry),
            None => skipped += 1,
        }
    }
    (entries, skipped)
}

fn read_one(
    process: &procfs::process::Process,
    proc_root: &Path,
    tick: u64,
    cgroups: &CgroupFs,
) -> Option<ProcEntry> {
    let stat = process.stat().ok()?;
    let status = process.status().ok()?;
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
    Some(ProcEntry {
        tgid: u32::try_from(status.tgid).ok()?,
        ppid: u32::try_from(stat.ppid).unwrap_or(0),
        start_time_ns: stat.starttime.saturating_mul(tick),
        binary: link("exe"),
        args,
        cwd: link("cwd"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let cgroups = CgroupFs::discover();
        let (entries, _) = read_proc(Path::new("/proc"), &cgroups);
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
}
