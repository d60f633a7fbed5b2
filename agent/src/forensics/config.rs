//! `[recorder]`: the flight recorder and where its dumps go.

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecorderConfig {
    /// Keep the last events in memory; default on.
    pub enabled: bool,
    /// Memory bound of the ring (estimated); default 64 MiB.
    pub max_bytes: usize,
    /// Time bound of the ring, and the default pre-trigger window; default 60 s.
    pub max_age_s: u64,
    /// How long a dump keeps collecting after its trigger; default 10 s.
    pub post_trigger_s: u64,
    /// Where dumps are written (capture files, 0600); default `/var/lib/vigil/captures`.
    pub dir: PathBuf,
    /// Dumps waiting for the writer thread; a dump past this is dropped and counted.
    pub queue: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: 64 << 20,
            max_age_s: 60,
            post_trigger_s: 10,
            dir: PathBuf::from("/var/lib/vigil/captures"),
            queue: 8,
        }
    }
}

impl RecorderConfig {
    /// The first invalid setting, named as in the config file.
    pub fn invalid_field(&self) -> Option<(&'static str, String)> {
        if self.enabled && self.max_bytes < 1 << 20 {
            return Some(("recorder.max_bytes", "must be at least 1 MiB".into()));
        }
        if self.enabled && self.max_age_s == 0 {
            return Some(("recorder.max_age_s", "must be at least 1".into()));
        }
        if self.queue == 0 {
            return Some(("recorder.queue", "must be at least 1".into()));
        }
        None
    }

    pub fn limits(&self) -> super::recorder::RecorderLimits {
        super::recorder::RecorderLimits {
            max_bytes: self.max_bytes,
            max_age_ns: self.max_age_s * 1_000_000_000,
        }
    }
}
