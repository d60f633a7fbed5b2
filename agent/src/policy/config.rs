//! `[policy]` of the agent's config.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Evaluate rules and emit findings.
    pub enabled: bool,
    /// Load the embedded default pack.
    pub default_pack: bool,
    /// A directory of policy files (`*.yaml`, `*.yml`), loaded after the pack; empty: none.
    pub directory: String,
    /// How often the directory is checked for changes, ms; 0: only on SIGHUP.
    pub reload_interval_ms: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            default_pack: true,
            directory: String::new(),
            reload_interval_ms: 2_000,
        }
    }
}

impl PolicyConfig {
    pub fn directory(&self) -> Option<PathBuf> {
        (!self.directory.is_empty()).then(|| PathBuf::from(&self.directory))
    }

    /// The first invalid field and why, for `Config::validate`.
    pub fn invalid_field(&self) -> Option<(&'static str, String)> {
        if self.reload_interval_ms != 0 && self.reload_interval_ms < 100 {
            return Some((
                "policy.reload_interval_ms",
                "must be 0 (reload on SIGHUP only) or at least 100".into(),
            ));
        }
        if !self.directory.is_empty() && !self.directory.starts_with('/') {
            return Some((
                "policy.directory",
                "must be an absolute path or empty".into(),
            ));
        }
        None
    }
}
