//! Errors of the enforcement module.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error("loading the eBPF object for enforcement")]
    Load(#[source] crate::bpf::BpfError),
    #[error("loading the eBPF object for enforcement")]
    Object(#[source] aya::EbpfError),
    #[error("program `{name}` ({hook})")]
    Program {
        name: &'static str,
        hook: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("reading the kernel's BTF (/sys/kernel/btf/vmlinux) for BPF-LSM hooks")]
    KernelBtf {
        #[source]
        source: aya::BtfError,
    },
    #[error("program `{name}` was not attached with a bpf link (kernel older than 5.7?)")]
    Link {
        name: &'static str,
        #[source]
        source: aya::programs::links::LinkError,
    },
    #[error("pinning {what} at {path}")]
    Pin {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("opening pinned map {path}")]
    OpenMap {
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the enforcement record {path}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no cgroup v2 hierarchy is mounted (see /proc/self/mountinfo)")]
    NoCgroup2,
    #[error("cgroup {path} does not exist under the cgroup v2 root")]
    NoSuchCgroup { path: String },
    #[error("no cgroup of container {id} was found under the cgroup v2 root")]
    NoSuchContainer { id: String },
    #[error("container id {id} matches {count} cgroups; give more of it")]
    AmbiguousContainer { id: String, count: usize },
    #[error("refused: {reason}")]
    Refused { reason: String },
    #[error("rate limit reached: {what} refused")]
    RateLimited { what: &'static str },
    #[error("no enforcement rule with id {id}")]
    NoSuchRule { id: u32 },
    #[error("{what}: more than {max} in one kernel entry")]
    TooMany { what: &'static str, max: usize },
    #[error("invalid CIDR {text}")]
    Cidr { text: String },
    #[error("process {pid} {what}")]
    Process {
        pid: i32,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("process {pid} is not the expected one (its start time differs): pid reused")]
    PidReused { pid: i32 },
    #[error("cgroup {path}: {what}")]
    Freeze { path: PathBuf, what: String },
}

impl EnforceError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
