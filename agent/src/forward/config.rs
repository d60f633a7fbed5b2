//! `[forward]`: where findings go besides the local output, and the spool that keeps them
//! while a destination is away.

use std::path::PathBuf;

use super::spool::Fsync;

/// What the forwarder takes from the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// Findings, containment actions and loss reports.
    Findings,
    /// Every event.
    All,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Default `findings`.
    pub select: Select,
    /// Default `/var/lib/vigil/spool`. Survives agent restarts: keep it on a persistent disk.
    pub spool_dir: PathBuf,
    /// Default 256 MiB. Past it the oldest records are dropped, counted and reported.
    pub spool_max_bytes: u64,
    /// Default 7 days. Older undelivered records are dropped, counted and reported.
    pub spool_max_age_s: u64,
    /// Default 4 MiB: the unit in which the spool grows and is deleted.
    pub segment_bytes: u64,
    /// Default `interval`: `always` (after each batch), `interval`, or `never`.
    pub fsync: Fsync,
    /// Default 1000.
    pub fsync_interval_ms: u64,
    /// Batches waiting between the pipeline and the spool writer; default 1024. Full: the
    /// batch is dropped and counted (`forward_queue_full`).
    pub queue_batches: usize,
    /// A Vigil collector (`vigil collect`, or any server of `vigil.v1.Collector`).
    pub collector: Destination,
    /// An OpenTelemetry collector's OTLP/gRPC logs endpoint.
    pub otlp: Destination,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            select: Select::Findings,
            spool_dir: PathBuf::from("/var/lib/vigil/spool"),
            spool_max_bytes: 256 << 20,
            spool_max_age_s: 7 * 24 * 3600,
            segment_bytes: 4 << 20,
            fsync: Fsync::Interval,
            fsync_interval_ms: 1000,
            queue_batches: 1024,
            collector: Destination::default(),
            otlp: Destination::default(),
        }
    }
}

impl ForwardConfig {
    /// On when a destination is configured.
    pub fn enabled(&self) -> bool {
        !self.collector.endpoint.is_empty() || !self.otlp.endpoint.is_empty()
    }

    /// The first invalid setting, named as in the config file.
    pub fn invalid_field(&self) -> Option<(&'static str, String)> {
        if self.spool_max_bytes < 1 << 20 {
            return Some(("forward.spool_max_bytes", "must be at least 1 MiB".into()));
        }
        if self.fsync_interval_ms == 0 {
            return Some(("forward.fsync_interval_ms", "must be at least 1".into()));
        }
        if self.queue_batches == 0 {
            return Some(("forward.queue_batches", "must be at least 1".into()));
        }
        if self.enabled() && self.spool_dir.as_os_str().is_empty() {
            return Some((
                "forward.spool_dir",
                "must be a directory when forwarding".into(),
            ));
        }
        for (name, dest) in [("collector", &self.collector), ("otlp", &self.otlp)] {
            if let Some((field, problem)) = dest.invalid_field() {
                let field = match (name, field) {
                    ("collector", "endpoint") => "forward.collector.endpoint",
                    ("collector", "window") => "forward.collector.window",
                    ("collector", _) => "forward.collector.tls_ca",
                    (_, "endpoint") => "forward.otlp.endpoint",
                    (_, "window") => "forward.otlp.window",
                    _ => "forward.otlp.tls_ca",
                };
                return Some((field, problem));
            }
        }
        None
    }

    pub fn limits(&self) -> super::spool::Limits {
        super::spool::Limits {
            max_bytes: self.spool_max_bytes,
            max_age: std::time::Duration::from_secs(self.spool_max_age_s),
            // At least four segments fit, so a full spool drops a quarter at most at once.
            segment_bytes: self
                .segment_bytes
                .clamp(4096, (self.spool_max_bytes / 4).max(4096)),
            fsync: self.fsync,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Destination {
    /// `http://host:port` (loopback or a trusted network only) or `https://host:port`;
    /// empty: off (the default).
    pub endpoint: String,
    /// For `https`: the CA that signed the server's certificate (required).
    pub tls_ca: PathBuf,
    /// For mutual TLS: this agent's certificate and key (both or neither).
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// The name to check in the server's certificate; default: the endpoint's host.
    pub tls_server_name: String,
    /// Records sent and not yet acknowledged (collector), or per export call (OTLP); default
    /// 512.
    pub window: usize,
    /// Per connect and per OTLP export call; default 10000.
    pub timeout_ms: u64,
}

impl Destination {
    fn invalid_field(&self) -> Option<(&'static str, String)> {
        if self.endpoint.is_empty() {
            return None;
        }
        let https = self.endpoint.starts_with("https://");
        if !https && !self.endpoint.starts_with("http://") {
            return Some((
                "endpoint",
                format!("`{}` must start with http:// or https://", self.endpoint),
            ));
        }
        if https && self.tls_ca.as_os_str().is_empty() {
            return Some(("tls_ca", "must be set for an https endpoint".into()));
        }
        if self.window == 0 {
            return Some(("window", "must be at least 1".into()));
        }
        None
    }
}

impl Default for Destination {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            tls_ca: PathBuf::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            tls_server_name: String::new(),
            window: 512,
            timeout_ms: 10_000,
        }
    }
}
