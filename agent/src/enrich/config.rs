//! The `[enrich]` section: container and pod metadata.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

/// Sockets tried, in order, when `cri_socket` is empty.
pub const AUTO_SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
];

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichConfig {
    pub enabled: bool,
    /// Path of the runtime's CRI socket; empty: the first of [`AUTO_SOCKETS`] that exists.
    pub cri_socket: String,
    pub lookup_timeout_ms: u64,
    pub pending_timeout_ms: u64,
    pub pending_max_events: usize,
    pub pending_max_events_per_container: usize,
    pub cache_max_entries: usize,
    pub resync_interval_ms: u64,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cri_socket: String::new(),
            lookup_timeout_ms: 1_000,
            pending_timeout_ms: 500,
            pending_max_events: 4_096,
            pending_max_events_per_container: 256,
            cache_max_entries: 8_192,
            resync_interval_ms: 30_000,
        }
    }
}

impl EnrichConfig {
    /// The configured socket, or `None` for auto-detection.
    pub fn socket(&self) -> Option<PathBuf> {
        (!self.cri_socket.is_empty()).then(|| PathBuf::from(&self.cri_socket))
    }

    pub fn lookup_timeout(&self) -> Duration {
        Duration::from_millis(self.lookup_timeout_ms)
    }

    pub fn pending_timeout_ns(&self) -> u64 {
        self.pending_timeout_ms.saturating_mul(1_000_000)
    }

    pub fn resync_interval(&self) -> Duration {
        Duration::from_millis(self.resync_interval_ms)
    }

    /// The first invalid field (its name under `[enrich]`) and why.
    pub fn invalid_field(&self) -> Option<(&'static str, String)> {
        if self.lookup_timeout_ms == 0 || self.lookup_timeout_ms > 60_000 {
            return Some((
                "enrich.lookup_timeout_ms",
                "must be between 1 and 60000".into(),
            ));
        }
        if self.pending_timeout_ms > 60_000 {
            return Some(("enrich.pending_timeout_ms", "must be at most 60000".into()));
        }
        if self.pending_max_events_per_container > self.pending_max_events {
            return Some((
                "enrich.pending_max_events_per_container",
                "must be at most enrich.pending_max_events".into(),
            ));
        }
        if self.cache_max_entries == 0 {
            return Some(("enrich.cache_max_entries", "must be at least 1".into()));
        }
        if self.resync_interval_ms < 100 {
            return Some(("enrich.resync_interval_ms", "must be at least 100".into()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn enrich_section_parses_and_is_checked() {
        let config = Config::parse(
            "[enrich]\ncri_socket = \"/run/k3s/containerd/containerd.sock\"\npending_timeout_ms = 0\n",
            "c.toml",
        )
        .expect("valid");
        assert_eq!(
            config.enrich.socket().as_deref(),
            Some(std::path::Path::new("/run/k3s/containerd/containerd.sock"))
        );
        assert_eq!(config.enrich.pending_timeout_ns(), 0);
        assert_eq!(Config::default().enrich.socket(), None, "auto-detect");

        let err = Config::parse("[enrich]\ncri_sock = \"x\"\n", "c.toml").expect_err("unknown");
        assert!(err.to_string().contains("cri_sock"), "{err}");
        let err = Config::parse(
            "[enrich]\npending_max_events = 10\npending_max_events_per_container = 20\n",
            "c.toml",
        )
        .expect_err("per container above total");
        assert_eq!(
            err.to_string(),
            "c.toml: line 3: `enrich.pending_max_events_per_container` must be at most enrich.pending_max_events"
        );
    }
}
