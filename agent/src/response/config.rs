//! `[enforcement]` of the agent's config: whether rules in `mode: enforce` act, and the
//! limits that containment never crosses.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EnforcementConfig {
    /// Rules in `mode: enforce` act; false: their findings say `disabled`.
    pub enabled: bool,
    /// Executables (absolute paths) never killed or denied.
    pub allow_executables: Vec<PathBuf>,
    /// cgroup v2 paths (as in /proc/PID/cgroup) never frozen, isolated or denied.
    pub allow_cgroups: Vec<String>,
    /// Rule-driven userspace actions allowed per minute (token bucket refill).
    pub rate_limit_per_minute: u32,
    /// Rule-driven userspace actions allowed at once (token bucket size).
    pub rate_limit_burst: u32,
    /// Actions waiting for the responder thread; a full queue drops the action.
    pub queue_capacity: usize,
    /// How long a finding waits for its action's outcome, ms.
    pub result_timeout_ms: u64,
    /// Where the enforcement programs and maps are pinned.
    pub bpffs_dir: PathBuf,
    /// Where the enforcement rule record is kept.
    pub state_dir: PathBuf,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        let layout = crate::enforce::Layout::default();
        Self {
            enabled: true,
            allow_executables: Vec::new(),
            allow_cgroups: Vec::new(),
            rate_limit_per_minute: 30,
            rate_limit_burst: 10,
            queue_capacity: 256,
            result_timeout_ms: 2_000,
            bpffs_dir: layout.bpffs_dir,
            state_dir: layout.state_dir,
        }
    }
}

impl EnforcementConfig {
    pub fn layout(&self) -> crate::enforce::Layout {
        crate::enforce::Layout {
            bpffs_dir: self.bpffs_dir.clone(),
            state_dir: self.state_dir.clone(),
        }
    }

    /// The first invalid field and why, for `Config::validate`.
    pub fn invalid_field(&self) -> Option<(&'static str, String)> {
        if let Some(p) = self.allow_executables.iter().find(|p| !p.is_absolute()) {
            return Some((
                "enforcement.allow_executables",
                format!("`{}` is not an absolute path", p.display()),
            ));
        }
        if let Some(c) = self.allow_cgroups.iter().find(|c| !c.starts_with('/')) {
            return Some((
                "enforcement.allow_cgroups",
                format!("`{c}` is not a cgroup v2 path starting with `/`"),
            ));
        }
        if self.rate_limit_burst == 0 {
            return Some(("enforcement.rate_limit_burst", "must be at least 1".into()));
        }
        if self.queue_capacity == 0 {
            return Some(("enforcement.queue_capacity", "must be at least 1".into()));
        }
        if self.result_timeout_ms < 100 {
            return Some((
                "enforcement.result_timeout_ms",
                "must be at least 100".into(),
            ));
        }
        if !self.bpffs_dir.is_absolute() || !self.state_dir.is_absolute() {
            return Some((
                "enforcement.bpffs_dir",
                "bpffs_dir and state_dir must be absolute paths".into(),
            ));
        }
        None
    }
}
