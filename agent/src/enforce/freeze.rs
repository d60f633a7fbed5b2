//! Freezing a cgroup for forensics: its processes stop where they are (no signal they could
//! observe) until thawed. cgroup v2 (`cgroup.freeze`, Linux 5.2+) or the v1 freezer
//! controller (`freezer.state`).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::EnforceError;
use crate::cgroup::CgroupFs;

/// How long a freeze may take to settle.
const SETTLE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezeMode {
    V2,
    V1,
}

impl FreezeMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::V2 => "cgroup2",
            Self::V1 => "freezer_v1",
        }
    }
}

/// Resolves `cgroup` to a directory: an absolute path under a cgroup mount is taken as it
/// is; otherwise it is a path below the cgroup v2 root (as in `/proc/PID/cgroup`), or, when
/// that does not exist, below the v1 freezer mount.
pub fn resolve(cgroup: &Path) -> Result<(PathBuf, FreezeMode), EnforceError> {
    if cgroup.join("cgroup.freeze").exists() {
        return Ok((cgroup.to_owned(), FreezeMode::V2));
    }
    if cgroup.join("freezer.state").exists() {
        return Ok((cgroup.to_owned(), FreezeMode::V1));
    }
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    if let Some(root) = CgroupFs::discover().v2_root {
        let dir = root.join(rel);
        if dir.join("cgroup.freeze").exists() {
            return Ok((dir, FreezeMode::V2));
        }
    }
    if let Some(root) = freezer_v1_mount() {
        let dir = root.join(rel);
        if dir.join("freezer.state").exists() {
            return Ok((dir, FreezeMode::V1));
        }
    }
    Err(EnforceError::Freeze {
        path: cgroup.to_owned(),
        what: "neither a cgroup v2 directory with cgroup.freeze nor a v1 freezer cgroup".into(),
    })
}

/// The v1 freezer hierarchy's mount point, if any.
fn freezer_v1_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut fields = right.split_whitespace();
        let (fstype, _source, options) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup" && options.split(',').any(|o| o == "freezer"))
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// Freezes the cgroup and waits until it is frozen. Returns the directory and mode used.
pub fn freeze(cgroup: &Path) -> Result<(PathBuf, FreezeMode), EnforceError> {
    set(cgroup, true)
}

/// Thaws the cgroup.
pub fn thaw(cgroup: &Path) -> Result<(PathBuf, FreezeMode), EnforceError> {
    set(cgroup, false)
}

fn set(cgroup: &Path, frozen: bool) -> Result<(PathBuf, FreezeMode), EnforceError> {
    let (dir, mode) = resolve(cgroup)?;
    let (file, value, done): (_, &str, fn(&str) -> bool) = match (mode, frozen) {
        (FreezeMode::V2, true) => ("cgroup.freeze", "1", |events| {
            events.lines().any(|l| l == "frozen 1")
        }),
        (FreezeMode::V2, false) => ("cgroup.freeze", "0", |events| {
            !events.lines().any(|l| l == "frozen 1")
        }),
        (FreezeMode::V1, true) => ("freezer.state", "FROZEN", |state| state.trim() == "FROZEN"),
        (FreezeMode::V1, false) => ("freezer.state", "THAWED", |state| state.trim() == "THAWED"),
    };
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(EnforceError::io("writing", &path))?;
    let status = match mode {
        FreezeMode::V2 => dir.join("cgroup.events"),
        FreezeMode::V1 => path.clone(),
    };
    let deadline = Instant::now() + SETTLE;
    loop {
        let text =
            std::fs::read_to_string(&status).map_err(EnforceError::io("reading", &status))?;
        if done(&text) {
            return Ok((dir, mode));
        }
        if Instant::now() > deadline {
            return Err(EnforceError::Freeze {
                path: dir,
                what: format!(
                    "did not settle within {SETTLE:?} (last state: {})",
                    text.trim()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
