//! A cgroup shaped like a Kubernetes pod's container (`/kubepods/besteffort/pod<uid>/<64
//! hex>`, the cgroupfs driver's layout) with no runtime behind it: what the agent sees of a
//! container whose runtime is broken. Removed when dropped (its processes must be gone).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use vigil::cgroup::CgroupFs;

use crate::gate;

pub struct FakePod {
    /// The pod's uid, as the kubelet names the pod cgroup.
    pub uid: String,
    /// The container id: 64 hex digits.
    pub id: String,
    /// The container's cgroup directory.
    pub dir: PathBuf,
    /// Directories this made, deepest first, to remove.
    made: Vec<PathBuf>,
}

impl FakePod {
    /// A new pod cgroup below the cgroup v2 root; `None` (after [`gate::skip`]) when
    /// there is no v2 hierarchy.
    pub fn new(label: &str) -> Option<Self> {
        let Some(root) = CgroupFs::discover().v2_root else {
            gate::skip("no cgroup v2 hierarchy is mounted");
            return None;
        };
        let seed = u64::from(std::process::id()) << 32
            | u64::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("time after 1970")
                    .subsec_nanos(),
            );
        let hash = |salt: &str| {
            use std::hash::{BuildHasher as _, Hasher as _};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(seed);
            h.write(label.as_bytes());
            h.write(salt.as_bytes());
            h.finish()
        };
        let id: String = (0..4)
            .map(|i| format!("{:016x}", hash(&i.to_string())))
            .collect();
        let u = format!("{:016x}{:016x}", hash("uid-a"), hash("uid-b"));
        let uid = format!(
            "{}-{}-{}-{}-{}",
            &u[..8],
            &u[8..12],
            &u[12..16],
            &u[16..20],
            &u[20..]
        );
        let mut made = Vec::new();
        let mut dir = root.clone();
        for part in ["kubepods", "besteffort", &format!("pod{uid}"), &id] {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
                made.insert(0, dir.clone());
            }
        }
        Some(Self { uid, id, dir, made })
    }

    /// The cgroup path as `/proc/PID/cgroup` shows it.
    pub fn cgroup_path(&self) -> String {
        format!("/kubepods/besteffort/pod{}/{}", self.uid, self.id)
    }

    /// A command that moves itself into the container's cgroup, then execs `program` with
    /// `args` (no fork in between: the exec is the container's first event).
    pub fn exec(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
                self.dir.display()
            ))
            .arg(program)
            .args(args);
        command
    }
}

impl Drop for FakePod {
    fn drop(&mut self) {
        for dir in &self.made {
            // The last process may still be leaving; a parent someone else uses stays.
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(dir).is_err() && *dir == self.dir && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
