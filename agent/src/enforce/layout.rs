//! Where enforcement lives on the node: pins in bpffs, the rule record in /run.

use std::path::{Path, PathBuf};

use vigil_common::maps::{
    ENFORCE_CONTROL, ENFORCE_EVENTS, ENFORCE_STATS, EXEC_DENY, NET_DENY_V4, NET_DENY_V6,
    NET_POLICY, OPEN_DENY,
};

/// Every map the enforcement programs share with userspace; all pinned.
pub const PINNED_MAPS: &[&str] = &[
    EXEC_DENY,
    OPEN_DENY,
    NET_POLICY,
    NET_DENY_V4,
    NET_DENY_V6,
    ENFORCE_CONTROL,
    ENFORCE_EVENTS,
    ENFORCE_STATS,
];

/// Paths of the pinned objects and of the rule record.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `/sys/fs/bpf/vigil`: `maps/<MAP NAME>`, `links/<program name>`.
    pub bpffs_dir: PathBuf,
    /// `/run/vigil`: `enforcement.json` (the rules) and `enforcement.lock`.
    pub state_dir: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            bpffs_dir: PathBuf::from("/sys/fs/bpf/vigil"),
            state_dir: PathBuf::from("/run/vigil"),
        }
    }
}

impl Layout {
    pub fn maps_dir(&self) -> PathBuf {
        self.bpffs_dir.join("maps")
    }

    pub fn links_dir(&self) -> PathBuf {
        self.bpffs_dir.join("links")
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }

    pub fn link(&self, program: &str) -> PathBuf {
        self.links_dir().join(program)
    }

    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("enforcement.json")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.state_dir.join("enforcement.lock")
    }

    /// The bpffs mount that holds `bpffs_dir` (its parent), e.g. `/sys/fs/bpf`.
    pub fn bpffs_mount(&self) -> &Path {
        self.bpffs_dir.parent().unwrap_or(Path::new("/sys/fs/bpf"))
    }
}
