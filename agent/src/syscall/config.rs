//! `[syscalls]`: which syscalls are captured, and where.

use serde::Deserialize;

use super::{Arch, DEFAULT_SET, KernelFilter};

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SyscallsConfig {
    /// Capture syscalls at all.
    pub enabled: bool,
    /// Syscall names (this architecture's); empty: none.
    pub names: Vec<String>,
    /// cgroup v2 paths (relative to the cgroup2 mount) whose syscalls are captured; empty:
    /// every cgroup.
    pub cgroups: Vec<String>,
    /// How the `sys_enter`/`sys_exit` programs attach, which every syscall sensor shares.
    pub hooks: crate::bpf::Hooks,
}

impl Default for SyscallsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            names: DEFAULT_SET.iter().map(|&n| n.to_owned()).collect(),
            cgroups: Vec::new(),
            hooks: crate::bpf::Hooks::Auto,
        }
    }
}

impl SyscallsConfig {
    /// The kernel filter this asks for on `arch` (empty when disabled).
    pub fn filter(&self, arch: Arch) -> Result<KernelFilter, String> {
        if !self.enabled {
            return Ok(KernelFilter::default());
        }
        KernelFilter::new(arch, self.names.iter().map(String::as_str))
            .map_err(|name| format!("names an unknown syscall `{name}` (for {arch:?})"))
    }

    /// The first invalid field and why, for config validation.
    pub fn invalid_field(&self) -> Option<(&'static str, String)> {
        // Names are checked even when disabled, so that switching on never fails later.
        if let Err(name) = KernelFilter::new(Arch::NATIVE, self.names.iter().map(String::as_str)) {
            return Some((
                "syscalls.names",
                format!("names an unknown syscall `{name}` (for {:?})", Arch::NATIVE),
            ));
        }
        if let Some(name) = self
            .names
            .iter()
            .find(|n| crate::network::SYSCALLS.contains(&n.as_str()))
        {
            return Some((
                "syscalls.names",
                format!("names `{name}`, which the [network] section captures"),
            ));
        }
        if let Some(name) = self
            .names
            .iter()
            .find(|n| crate::files::SYSCALLS.contains(&n.as_str()))
        {
            return Some((
                "syscalls.names",
                format!("names `{name}`, which the [files] section captures"),
            ));
        }
        if self.cgroups.iter().any(|c| c.is_empty()) {
            return Some(("syscalls.cgroups", "must not contain an empty path".into()));
        }
        None
    }
}

/// What the kernel is told for a [`SyscallsConfig`]: the filter, and the allowed cgroup ids
/// (`None`: every cgroup).
pub struct Selection {
    pub filter: KernelFilter,
    pub cgroups: Option<Vec<u64>>,
}

impl SyscallsConfig {
    /// Resolves the names for this architecture and the cgroup paths to ids. A path that
    /// does not exist (yet) is skipped with a warning; with no path left, nothing is captured.
    pub fn selection(&self) -> Selection {
        let filter = self.filter(Arch::NATIVE).unwrap_or_else(|problem| {
            // Validation rejects this before start; a config built in code may still do it.
            tracing::error!(%problem, "The syscall filter is invalid; no syscall is captured.");
            KernelFilter::default()
        });
        if self.cgroups.is_empty() {
            return Selection {
                filter,
                cgroups: None,
            };
        }
        let fs = crate::cgroup::CgroupFs::discover();
        let ids = self
            .cgroups
            .iter()
            .filter_map(|path| {
                let id = fs.cgroup_id(path);
                if id.is_none() {
                    tracing::warn!(cgroup = %path, "A cgroup in syscalls.cgroups does not exist; it is skipped.");
                }
                id
            })
            .collect();
        Selection {
            filter,
            cgroups: Some(ids),
        }
    }
}
