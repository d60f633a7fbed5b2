//! Vigil's userspace agent, as a library so that the privileged tests and benchmarks drive
//! the same code as the `vigil` binary.
//!
//! One direction of flow: `bpf` (load, attach) -> `source` (ring-buffer reader, batches) ->
//! `pipeline` (`decode` -> `process` cache) -> `export` (JSON lines), with `telemetry`
//! accounting for every loss and `runtime` supervising it all.

pub mod api;
pub mod bench;
pub mod bpf;
pub mod cgroup;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod decode;
pub mod enforce;
pub mod enrich;
pub mod event;
pub mod export;
pub mod files;
pub mod forensics;
pub mod forward;
pub mod network;
pub mod node;
pub mod pipeline;
pub mod policy;
pub mod process;
pub mod response;
pub mod runtime;
pub mod secure;
pub mod selftest;
pub mod source;
pub mod syscall;
pub mod telemetry;
