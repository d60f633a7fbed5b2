//! The record of enforcement rules: what `vigil enforcement list` shows, and the source of
//! truth the kernel entries are rebuilt from. A JSON file on tmpfs next to a lock file; every
//! change holds the lock (the CLI and the agent may both write).

use std::{
    fs::File,
    io::Write as _,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{EnforceError, Layout};

/// A cgroup v2, by path below the root (as in `/proc/PID/cgroup`) and id (inode number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupRef {
    pub path: String,
    pub id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleKind {
    /// Kill-on-exec of a file (or every file below a directory), by kernel identity.
    DenyExec {
        path: PathBuf,
        dir: bool,
        dev: u32,
        ino: u64,
        /// `None`: node-wide.
        cgroup: Option<CgroupRef>,
    },
    /// Open deny (BPF-LSM `file_open`) of a file, or of every file below a directory, by
    /// kernel identity.
    DenyOpen {
        path: PathBuf,
        dir: bool,
        dev: u32,
        ino: u64,
        /// `None`: node-wide.
        cgroup: Option<CgroupRef>,
    },
    /// Connect/sendmsg deny of a cgroup to a CIDR (and ports; empty: every port).
    DenyConnect {
        cgroup: CgroupRef,
        cidr: String,
        ports: Vec<u16>,
    },
    /// Every connect/sendmsg of a cgroup denied.
    Isolate { cgroup: CgroupRef },
    /// A frozen cgroup (userspace: cgroup freezer); released by thawing.
    Freeze { cgroup: PathBuf, mode: String },
    /// A one-shot kill, kept as a record.
    Kill { pid: i32, tree: bool, killed: usize },
}

impl RuleKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::DenyExec { .. } => "deny_exec",
            Self::DenyOpen { .. } => "deny_open",
            Self::DenyConnect { .. } => "deny_connect",
            Self::Isolate { .. } => "isolate",
            Self::Freeze { .. } => "freeze",
            Self::Kill { .. } => "kill",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: u32,
    /// Seconds since the epoch.
    pub created: u64,
    /// Who asked: `cli`, or a policy rule's name.
    pub origin: String,
    #[serde(flatten)]
    pub kind: RuleKind,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RuleSet {
    pub next_id: u32,
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn add(&mut self, origin: &str, kind: RuleKind) -> u32 {
        self.next_id = self.next_id.max(1);
        let id = self.next_id;
        self.next_id += 1;
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        self.rules.push(Rule {
            id,
            created,
            origin: origin.to_owned(),
            kind,
        });
        id
    }

    pub fn remove(&mut self, id: u32) -> Option<Rule> {
        let at = self.rules.iter().position(|r| r.id == id)?;
        Some(self.rules.remove(at))
    }
}

/// The rule record, locked for the lifetime of this value.
pub struct Locked {
    _lock: File,
    path: PathBuf,
    pub set: RuleSet,
}

impl Locked {
    /// Takes the lock (waits for another writer) and reads the record (empty when absent).
    pub fn open(layout: &Layout) -> Result<Self, EnforceError> {
        std::fs::create_dir_all(&layout.state_dir)
            .map_err(EnforceError::io("creating", &layout.state_dir))?;
        let lock_path = layout.lock_file();
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(EnforceError::io("opening", &lock_path))?;
        // SAFETY: flock on an open descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(EnforceError::io("locking", &lock_path)(
                std::io::Error::last_os_error(),
            ));
        }
        let path = layout.state_file();
        let set = read(&path)?;
        Ok(Self {
            _lock: lock,
            path,
            set,
        })
    }

    /// Writes the record (atomically: a temporary file renamed over it).
    pub fn save(&self) -> Result<(), EnforceError> {
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&self.set).map_err(|source| EnforceError::State {
            path: self.path.clone(),
            source,
        })?;
        let mut file = File::create(&tmp).map_err(EnforceError::io("writing", &tmp))?;
        file.write_all(&text)
            .map_err(EnforceError::io("writing", &tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(EnforceError::io("renaming", &tmp))
    }
}

/// Reads the record without the lock (for listing).
pub fn read(path: &Path) -> Result<RuleSet, EnforceError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| EnforceError::State {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RuleSet::default()),
        Err(e) => Err(EnforceError::io("reading", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_and_the_record_round_trips() {
        let mut set = RuleSet::default();
        let a = set.add(
            "cli",
            RuleKind::Isolate {
                cgroup: CgroupRef {
                    path: "/t".into(),
                    id: 7,
                },
            },
        );
        set.remove(a);
        let b = set.add(
            "cli",
            RuleKind::Kill {
                pid: 3,
                tree: true,
                killed: 2,
            },
        );
        assert_ne!(a, b);
        let text = serde_json::to_string(&set).expect("serialises");
        let back: RuleSet = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.rules, set.rules);
        assert!(text.contains("\"kind\":\"kill\""), "{text}");
    }
}
