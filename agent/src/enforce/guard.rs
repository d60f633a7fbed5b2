//! What containment must never hit, and how often automated actions may run.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use vigil_common::enforce::FileKey;

use super::{EnforceError, devno::file_key_of, process::is_ancestor};
use crate::cgroup::CgroupFs;

/// Never the agent itself (its process, its ancestors for tree kills, its cgroup and the
/// cgroups above it, its executable), never the cgroup root, never an allow-listed
/// executable or cgroup.
#[derive(Clone, Debug)]
pub struct Guard {
    self_pid: i32,
    self_cgroup: Option<String>,
    self_exe: Option<FileKey>,
    allow_exes: Vec<(PathBuf, FileKey)>,
    allow_cgroups: Vec<String>,
}

impl Guard {
    /// The agent's own identity, and the allow-lists (executables by path, cgroups by v2 path).
    pub fn new(allow_exes: &[PathBuf], allow_cgroups: &[String]) -> Self {
        let fs = CgroupFs::discover();
        Self {
            self_pid: std::process::id() as i32,
            self_cgroup: fs.v2_path_of_pid(Path::new("/proc/self")),
            self_exe: file_key_of(Path::new("/proc/self/exe")).ok(),
            allow_exes: allow_exes
                .iter()
                .filter_map(|p| Some((p.clone(), file_key_of(p).ok()?)))
                .collect(),
            allow_cgroups: allow_cgroups.iter().map(|c| normalise(c)).collect(),
        }
    }

    fn refuse(reason: String) -> Result<(), EnforceError> {
        Err(EnforceError::Refused { reason })
    }

    /// A process may be killed.
    pub fn check_pid(&self, pid: i32) -> Result<(), EnforceError> {
        if pid <= 1 {
            return Self::refuse(format!("pid {pid} is init or invalid"));
        }
        if pid == self.self_pid {
            return Self::refuse("that is the agent itself".into());
        }
        if let Ok(key) = file_key_of(Path::new(&format!("/proc/{pid}/exe"))) {
            if let Some((path, _)) = self.allow_exes.iter().find(|(_, k)| *k == key) {
                return Self::refuse(format!("pid {pid} runs allow-listed {}", path.display()));
            }
        }
        Ok(())
    }

    /// A process tree may be killed: also, the agent is not in it.
    pub fn check_tree(&self, pid: i32) -> Result<(), EnforceError> {
        self.check_pid(pid)?;
        if is_ancestor(pid, self.self_pid) {
            return Self::refuse(format!("the agent runs below pid {pid}"));
        }
        Ok(())
    }

    /// A cgroup (v2 path) may be isolated or frozen.
    pub fn check_cgroup(&self, path: &str) -> Result<(), EnforceError> {
        let path = normalise(path);
        if path == "/" {
            return Self::refuse("the cgroup root is the whole node".into());
        }
        if let Some(own) = &self.self_cgroup {
            let own = normalise(own);
            if own == path || own.starts_with(&format!("{path}/")) {
                return Self::refuse(format!("the agent runs in {own}, at or below {path}"));
            }
        }
        if self.allow_cgroups.contains(&path) {
            return Self::refuse(format!("cgroup {path} is allow-listed"));
        }
        Ok(())
    }

    /// An executable may be denied.
    pub fn check_exec(&self, key: FileKey) -> Result<(), EnforceError> {
        if self.self_exe == Some(key) {
            return Self::refuse("that is the agent's own executable".into());
        }
        if let Some((path, _)) = self.allow_exes.iter().find(|(_, k)| *k == key) {
            return Self::refuse(format!("{} is allow-listed", path.display()));
        }
        Ok(())
    }
}

fn normalise(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else if trimmed.starts_with('/') {
        trimmed.into()
    } else {
        format!("/{trimmed}")
    }
}

/// A token bucket: `burst` actions at once, refilled at `per_minute`.
#[derive(Clone, Debug)]
pub struct RateLimit {
    capacity: f64,
    tokens: f64,
    per_second: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            capacity: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            per_second: f64::from(per_minute) / 60.0,
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; false when none is left.
    pub fn try_acquire_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn try_acquire(&mut self) -> bool {
        self.try_acquire_at(Instant::now())
    }
}

impl Default for RateLimit {
    /// 30 actions a minute, 10 at once.
    fn default() -> Self {
        Self::new(30, 10)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rate_limit_allows_a_burst_then_refills() {
        let mut limit = RateLimit::new(60, 2);
        let t0 = Instant::now();
        assert!(limit.try_acquire_at(t0));
        assert!(limit.try_acquire_at(t0));
        assert!(!limit.try_acquire_at(t0));
        assert!(limit.try_acquire_at(t0 + Duration::from_millis(1100)));
    }

    #[test]
    fn never_the_agent_nor_the_root() {
        let guard = Guard::new(&[], &["/allowed".into()]);
        assert!(guard.check_pid(std::process::id() as i32).is_err());
        assert!(guard.check_pid(1).is_err());
        assert!(guard.check_tree(1).is_err());
        assert!(guard.check_cgroup("/").is_err());
        assert!(guard.check_cgroup("/allowed/").is_err());
        if let Some(own) = &guard.self_cgroup {
            assert!(guard.check_cgroup(own).is_err());
        }
        if let Some(key) = guard.self_exe {
            assert!(guard.check_exec(key).is_err());
        }
    }
}
