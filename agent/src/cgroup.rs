//! Where the cgroup v2 hierarchy is mounted, and cgroup ids (the inode number of a cgroup2
//! directory, which is what `bpf_get_current_cgroup_id()` returns).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// The cgroup2 mount of this node, found from /proc/self/mountinfo (it is `/sys/fs/cgroup` on
/// pure-v2 nodes and e.g. `/sys/fs/cgroup/unified` on hybrid ones: never assumed).
#[derive(Clone, Debug, Default)]
pub struct CgroupFs {
    pub v2_root: Option<PathBuf>,
}

impl CgroupFs {
    pub fn discover() -> Self {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self {
            v2_root: cgroup2_mount(&mountinfo),
        }
    }

    /// The cgroup v2 path of a process from `<proc>/<pid>/cgroup` (the `0::` line).
    pub fn v2_path_of_pid(&self, proc_pid_dir: &Path) -> Option<String> {
        let text = std::fs::read_to_string(proc_pid_dir.join("cgroup")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned)
    }

    /// The cgroup id of the v2 cgroup at `path` (as in /proc/PID/cgroup).
    pub fn cgroup_id(&self, path: &str) -> Option<u64> {
        let root = self.v2_root.as_ref()?;
        let dir = root.join(path.trim_start_matches('/'));
        std::fs::metadata(dir).ok().map(|m| m.ino())
    }

    pub fn cgroup_id_of_pid(&self, proc_pid_dir: &Path) -> Option<u64> {
        self.cgroup_id(&self.v2_path_of_pid(proc_pid_dir)?)
    }
}

/// The mount point of the first cgroup2 filesystem in a mountinfo text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // Fields: id parent major:minor root mount-point options [optional...] - fstype source ...
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        (fstype == "cgroup2").then(|| left.split_whitespace().nth(4).map(unescape_octal))?
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&out),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_and_pure_v2_mounts() {
        let hybrid = "25 20 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n\
                      27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let v2 = "30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_mount(v2), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(cgroup2_mount("31 1 0:27 / /proc rw - proc proc rw\n"), None);
        let escaped = "30 1 0:26 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(escaped), Some(PathBuf::from("/mnt/cg two")));
    }

    #[test]
    fn this_process_cgroup_id_matches_its_directory() {
        let fs = CgroupFs::discover();
        let Some(root) = fs.v2_root.clone() else {
            eprintln!("skipped: no cgroup2 mount on this machine");
            return;
        };
        let me = Path::new("/proc/self");
        let path = fs.v2_path_of_pid(me).expect("0:: line");
        let id = fs.cgroup_id(&path).expect("cgroup directory exists");
        let direct = std::fs::metadata(root.join(path.trim_start_matches('/')))
            .expect("stat")
            .ino();
        assert_eq!(id, direct);
    }
}
