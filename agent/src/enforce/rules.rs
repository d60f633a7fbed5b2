//! The record of enforcement rules: what `vigil enforcement list` shows, and the source of
//! truth the kernel entries are rebuilt from. A JSON file on tmpfs next to a lock file; every
//! change holds the lock (the CLI and the agent may both write).

use std::{
    fs::File,
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
        crate::secure::write::private_dir(&layout.state_dir)
            .map_err(EnforceError::io("creating", &layout.state_dir))?;
        let lock_path = layout.lock_file();
        let lock = crate::secure::write::open(
            &lock_path,
            File::options().create(true).truncate(false).write(true),
        )
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
        crate::secure::write::replace(&self.path, &tmp, &text)
            .map_err(EnforceError::io("writing", &self.path))
    }
}

/// Reads the record without the lock (for listing).
pub fn read(path: &Path) -> Result<RuleSet, EnforceError> {
    let bytes = crate::secure::write::open(path, File::options().read(true)).and_then(|mut f| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut bytes).map(|_| bytes)
    });
    match bytes {
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

    #[test]
    fn the_record_is_never_written_through_a_planted_link() {
        let dir = crate::secure::scratch::Scratch::new("enforce-links");
        let victim = dir.file("victim", "precious", 0o644);
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("state dir");
        let linked = Layout {
            bpffs_dir: dir.path().join("bpf"),
            state_dir: dir.path().join("state"),
        };
        std::os::unix::fs::symlink(&real, &linked.state_dir).expect("directory link");
        let Err(error) = Locked::open(&linked) else {
            panic!("opened state through a directory link");
        };
        assert!(error.to_string().contains("state"), "{error}");
        assert!(
            crate::telemetry::chain(&error).contains("is a symbolic link"),
            "{error}"
        );

        let layout = Layout {
            state_dir: real,
            ..linked
        };
        std::os::unix::fs::symlink(&victim, layout.state_file()).expect("record link");
        let Err(error) = Locked::open(&layout) else {
            panic!("read the record through a link");
        };
        assert!(
            crate::telemetry::chain(&error).contains("is a symbolic link"),
            "{error}"
        );
        std::fs::remove_file(layout.state_file()).expect("remove the link");

        let tmp = layout.state_file().with_extension("json.tmp");
        std::os::unix::fs::symlink(&victim, &tmp).expect("temporary link");
        let mut locked = Locked::open(&layout).expect("open");
        locked.set.add(
            "test",
            RuleKind::Kill {
                pid: 1,
                tree: false,
                killed: 0,
            },
        );
        locked.save().expect("saved without following the link");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        assert!(read(&layout.state_file()).expect("read back").rules.len() == 1);
    }
}
