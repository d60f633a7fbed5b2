//! The agent's configuration: one TOML file, every section optional, defaults embedded
//! (`config/default.toml`, which is also the documentation of every key).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// More rotated output files than this is a typo: each rotation renames every one of them.
const MAX_BACKUPS: usize = 1000;

/// The embedded default configuration, as shipped.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Untrusted(#[from] crate::secure::TrustError),
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}{}: `{field}` {problem}", line.map(|l| format!(": line {l}")).unwrap_or_default())]
    Invalid {
        origin: String,
        line: Option<usize>,
        field: &'static str,
        problem: String,
    },
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node_name: String,
    pub output: OutputConfig,
    pub process: ProcessConfig,
    pub ring_buffer: RingBufferConfig,
    pub pipeline: PipelineConfig,
    pub telemetry: TelemetryConfig,
    pub enrich: crate::enrich::EnrichConfig,
    pub syscalls: crate::syscall::SyscallsConfig,
    pub network: crate::network::NetworkConfig,
    pub files: crate::files::FilesConfig,
    pub credentials: crate::credentials::CredentialsConfig,
    pub policy: crate::policy::PolicyConfig,
    pub enforcement: crate::response::EnforcementConfig,
    pub api: crate::api::ApiConfig,
    pub forward: crate::forward::ForwardConfig,
    pub recorder: crate::forensics::RecorderConfig,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    pub target: String,
    /// File targets only: rotate before the file would pass this many bytes; 0: never.
    pub max_bytes: u64,
    /// File targets only: rotate before writing to a file older than this, s; 0: never.
    pub max_age_s: u64,
    /// Rotated files kept (`<target>.1` newest).
    pub backups: usize,
    /// Gzip rotated files (`<target>.N.gz`), off the pipeline thread.
    pub compress: bool,
}

impl OutputConfig {
    /// How the file target rotates.
    pub fn rotation(&self) -> crate::export::file::Rotation {
        crate::export::file::Rotation {
            max_bytes: self.max_bytes,
            max_age: (self.max_age_s > 0).then(|| std::time::Duration::from_secs(self.max_age_s)),
            backups: self.backups,
            compress: self.compress,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessConfig {
    pub trace_threads: bool,
    pub snapshot: bool,
    pub cache_max_entries: usize,
    pub cache_max_bytes: usize,
    pub exit_grace_ms: u64,
    pub ancestors: usize,
    pub hooks: crate::bpf::Hooks,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RingBufferConfig {
    pub size_bytes: u32,
    pub poll_interval_ms: u64,
    pub wakeup_threshold_bytes: u32,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub queue_capacity: usize,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub loss_report_interval_ms: u64,
    pub metrics_address: String,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            target: "stdout".into(),
            max_bytes: 100 * 1024 * 1024,
            max_age_s: 0,
            backups: 5,
            compress: false,
        }
    }
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            trace_threads: false,
            snapshot: true,
            cache_max_entries: 65_536,
            cache_max_bytes: 64 * 1024 * 1024,
            exit_grace_ms: 5_000,
            ancestors: 0,
            hooks: crate::bpf::Hooks::Auto,
        }
    }
}

impl Default for RingBufferConfig {
    fn default() -> Self {
        Self {
            size_bytes: 8 * 1024 * 1024,
            poll_interval_ms: 10,
            wakeup_threshold_bytes: 256 * 1024,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            loss_report_interval_ms: 1_000,
            metrics_address: String::new(),
        }
    }
}

impl Config {
    /// Loads `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::parse(DEFAULT_TOML, "embedded default config"),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::parse(&text, &path.display().to_string())
            }
        }
    }

    /// [`Config::load`] for the daemon: a file must be one only root could have written
    /// (see [`crate::secure::trust`]).
    pub fn load_trusted(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::load(None),
            Some(path) => {
                let text = crate::secure::trust::read_to_string(path)?;
                Self::parse(&text, &path.display().to_string())
            }
        }
    }

    /// Parses and validates TOML text; `origin` names it in errors (a file path).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: describe_toml_error(text, &e),
        })?;
        config.validate(origin, text)?;
        Ok(config)
    }

    fn validate(&self, origin: &str, text: &str) -> Result<(), ConfigError> {
        let invalid = |field, problem: &str| ConfigError::Invalid {
            origin: origin.to_owned(),
            line: line_of(text, field),
            field,
            problem: problem.to_owned(),
        };
        let rb = &self.ring_buffer;
        if rb.size_bytes < 4096 || !rb.size_bytes.is_power_of_two() {
            return Err(invalid(
                "ring_buffer.size_bytes",
                &format!(
                    "must be a power of two of at least 4096, not {}",
                    rb.size_bytes
                ),
            ));
        }
        if rb.wakeup_threshold_bytes == 0 || rb.wakeup_threshold_bytes > rb.size_bytes {
            return Err(invalid(
                "ring_buffer.wakeup_threshold_bytes",
                "must be between 1 and ring_buffer.size_bytes",
            ));
        }
        if rb.poll_interval_ms == 0 || rb.poll_interval_ms > 1_000 {
            return Err(invalid(
                "ring_buffer.poll_interval_ms",
                "must be between 1 and 1000",
            ));
        }
        if self.api.buffer == 0 {
            return Err(invalid("api.buffer", "must be at least 1"));
        }
        if self.api.enabled && self.api.socket.as_os_str().is_empty() {
            return Err(invalid(
                "api.socket",
                "must be a path when api.enabled is true",
            ));
        }
        if !self.api.tcp_address.is_empty() {
            for (field, path) in [
                ("api.tls_cert", &self.api.tls_cert),
                ("api.tls_key", &self.api.tls_key),
                ("api.tls_client_ca", &self.api.tls_client_ca),
            ] {
                if path.as_os_str().is_empty() {
                    return Err(invalid(
                        field,
                        "must be set when api.tcp_address is (TCP is mutual TLS only)",
                    ));
                }
            }
        }
        if self.pipeline.queue_capacity == 0 {
            return Err(invalid("pipeline.queue_capacity", "must be at least 1"));
        }
        if self.process.ancestors > 64 {
            return Err(invalid("process.ancestors", "must be at most 64"));
        }
        if self.process.cache_max_bytes < 1024 * 1024 {
            return Err(invalid("process.cache_max_bytes", "must be at least 1 MiB"));
        }
        if self.process.cache_max_entries == 0 {
            return Err(invalid("process.cache_max_entries", "must be at least 1"));
        }
        if self.telemetry.loss_report_interval_ms == 0 {
            return Err(invalid(
                "telemetry.loss_report_interval_ms",
                "must be at least 1",
            ));
        }
        if let Some((field, problem)) = self.enrich.invalid_field() {
            return Err(invalid(field, &problem));
        }
        if let Some((field, problem)) = self.syscalls.invalid_field() {
            return Err(invalid(field, &problem));
        }
        if let Some((field, problem)) = self.recorder.invalid_field() {
            return Err(invalid(field, &problem));
        }
        if let Some((field, problem)) = self.forward.invalid_field() {
            return Err(invalid(field, &problem));
        }
        if let Some((field, problem)) = self.files.invalid_field() {
            return Err(invalid(field, &problem));
        }
        if let Some((field, problem)) = self.policy.invalid_field() {
            return Err(invalid(field, &problem));
        }
        if let Some((field, problem)) = self.enforcement.invalid_field() {
            return Err(invalid(field, &problem));
        }
        if !self.telemetry.metrics_address.is_empty()
            && self
                .telemetry
                .metrics_address
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(invalid(
                "telemetry.metrics_address",
                "must be empty (off) or an address and port such as 127.0.0.1:9464",
            ));
        }
        if self.output.target.is_empty() {
            return Err(invalid("output.target", "must be `stdout` or a file path"));
        }
        if self.output.backups > MAX_BACKUPS {
            return Err(invalid(
                "output.backups",
                &format!("must be at most {MAX_BACKUPS}"),
            ));
        }
        Ok(())
    }
}

/// The 1-based line where `section.key` is set in `text`, if it is.
fn line_of(text: &str, field: &str) -> Option<usize> {
    let (section, key) = field.rsplit_once('.').unwrap_or(("", field));
    let mut current = "";
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim();
        } else if current == section && line.split('=').next().is_some_and(|k| k.trim() == key) {
            return Some(i + 1);
        }
    }
    None
}

/// A TOML error as "line L, column C: message".
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_equals_code_defaults() {
        let parsed = Config::load(None).expect("embedded default parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Config::parse("", "t").expect("parses"), Config::default());
    }

    #[test]
    fn unknown_field_names_line_column_and_field() {
        let err = Config::parse("[process]\ntrace_thread = true\n", "/etc/vigil/vigil.toml")
            .expect_err("unknown field");
        let text = err.to_string();
        assert!(
            text.starts_with("/etc/vigil/vigil.toml: line 2, column 1"),
            "{text}"
        );
        assert!(text.contains("trace_thread"), "{text}");
    }

    #[test]
    fn invalid_value_names_field() {
        let err = Config::parse("[ring_buffer]\nsize_bytes = 1000\n", "cfg.toml")
            .expect_err("not a power of two");
        assert_eq!(
            err.to_string(),
            "cfg.toml: line 2: `ring_buffer.size_bytes` must be a power of two of at least 4096, not 1000"
        );
    }

    #[test]
    fn unknown_syscall_name_is_named_with_its_line() {
        let err = Config::parse("[syscalls]\nnames = [\"ptrace\", \"ptrase\"]\n", "c.toml")
            .expect_err("unknown syscall");
        let text = err.to_string();
        assert!(
            text.starts_with("c.toml: line 2: `syscalls.names`"),
            "{text}"
        );
        assert!(text.contains("`ptrase`"), "{text}");
    }

    #[test]
    fn syscalls_default_to_the_security_set() {
        let config = Config::default();
        assert!(config.syscalls.enabled);
        assert!(config.syscalls.names.iter().any(|n| n == "unshare"));
        let off = Config::parse("[syscalls]\nenabled = false\n", "c.toml").expect("parses");
        let filter = off
            .syscalls
            .filter(crate::syscall::Arch::NATIVE)
            .expect("valid");
        assert!(filter.is_empty());
        let err = Config::parse("[syscalls]\nname = []\n", "c.toml").expect_err("unknown key");
        assert!(err.to_string().contains("name"), "{err}");
    }

    #[test]
    fn network_is_on_by_default_and_owns_its_syscalls() {
        assert!(Config::default().network.enabled);
        let err = Config::parse("[syscalls]\nnames = [\"connect\"]\n", "c.toml")
            .expect_err("connect belongs to [network]");
        assert_eq!(
            err.to_string(),
            "c.toml: line 2: `syscalls.names` names `connect`, which the [network] section captures"
        );
        let off = Config::parse("[network]\nenabled = false\n", "c.toml").expect("parses");
        assert!(off.network.filter(crate::syscall::Arch::NATIVE).is_empty());
    }

    #[test]
    fn files_are_on_by_default_and_a_long_prefix_is_named() {
        assert!(Config::default().files.enabled);
        let long = format!("/{}", "p".repeat(70));
        let err = Config::parse(&format!("[files]\nwatch = [\"{long}\"]\n"), "c.toml")
            .expect_err("too long");
        assert_eq!(
            err.to_string(),
            format!(
                "c.toml: line 2: `files.watch` prefix `{long}` is 71 bytes, longer than the kernel's limit of 64"
            )
        );
        let err = Config::parse("[syscalls]\nnames = [\"openat\"]\n", "c.toml")
            .expect_err("openat belongs to [files]");
        assert!(err.to_string().contains("[files]"), "{err}");
    }

    #[test]
    fn credentials_are_on_by_default_and_can_be_switched_off() {
        assert!(Config::default().credentials.enabled);
        let off = Config::parse("[credentials]\nenabled = false\n", "c.toml").expect("parses");
        assert!(
            off.credentials
                .filter(crate::syscall::Arch::NATIVE)
                .is_empty()
        );
        let err =
            Config::parse("[credentials]\nenable = true\n", "c.toml").expect_err("unknown key");
        assert!(err.to_string().contains("enable"), "{err}");
    }

    #[test]
    fn enforcement_is_on_by_default_and_checks_its_allow_lists() {
        let config = Config::default();
        assert!(config.enforcement.enabled);
        assert_eq!(
            config.enforcement.layout().state_dir,
            PathBuf::from("/run/vigil")
        );
        let err = Config::parse(
            "[enforcement]\nallow_cgroups = [\"system.slice\"]\n",
            "c.toml",
        )
        .expect_err("relative cgroup");
        assert!(
            err.to_string()
                .starts_with("c.toml: line 2: `enforcement.allow_cgroups`"),
            "{err}"
        );
    }

    #[test]
    fn output_rotation_defaults_and_overrides() {
        let rotation = Config::default().output.rotation();
        assert_eq!(rotation.max_bytes, 100 * 1024 * 1024);
        assert_eq!((rotation.max_age, rotation.backups), (None, 5));
        assert!(!rotation.compress);
        let text = "[output]\ntarget = \"/var/log/vigil.jsonl\"\nmax_bytes = 0\nmax_age_s = 3600\nbackups = 2\ncompress = true\n";
        let rotation = Config::parse(text, "c.toml")
            .expect("parses")
            .output
            .rotation();
        assert_eq!(rotation.max_bytes, 0);
        assert_eq!(rotation.max_age, Some(std::time::Duration::from_secs(3600)));
        assert_eq!(rotation.backups, 2);
        assert!(rotation.compress);
        let err = Config::parse("[output]\nbackups = 5000\n", "c.toml").expect_err("too many");
        assert_eq!(
            err.to_string(),
            "c.toml: line 2: `output.backups` must be at most 1000"
        );
    }

    #[test]
    fn wrong_type_is_reported_with_position() {
        let err = Config::parse("[pipeline]\nqueue_capacity = \"big\"\n", "c.toml")
            .expect_err("wrong type");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn the_daemon_refuses_a_config_others_could_write_and_config_check_reads_it() {
        let dir = crate::secure::scratch::Scratch::new("config-trust");
        let file = dir.file("vigil.toml", "node_name = \"n\"\n", 0o664);
        let error = Config::load_trusted(Some(&file)).expect_err("group-writable");
        let text = error.to_string();
        assert!(
            text.contains(&format!("refusing {}:", file.display())),
            "{text}"
        );
        assert!(
            text.contains(&format!("chmod go-w {}", file.display())),
            "{text}"
        );
        assert_eq!(
            Config::load(Some(&file)).expect("offline check").node_name,
            "n"
        );
        crate::secure::scratch::chmod(&file, 0o644);
        assert_eq!(
            Config::load_trusted(Some(&file))
                .expect("trusted")
                .node_name,
            "n"
        );
    }
}
