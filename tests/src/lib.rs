//! Helpers for Vigil's privileged tests (tier 4): the real embedded eBPF object loaded into
//! this kernel, real processes spawned with known arguments, exact fields asserted.
//!
//! - [`binary`]: the `vigil` executable, for tests of the command line.
//! - [`cgroup`]: a cgroup v2 made for one test, to scope rules to.
//! - [`collect`]: `vigil collect` as a test's collector, and checks of what it wrote.
//! - [`daemon`]: `vigil run` and `vigil collect` as processes (SIGKILL, SIGINT, their logs).
//! - [`enforcement`]: the enforcement programs installed under a layout private to one test.
//! - [`gate`]: whether these tests may run here, and what a test that cannot run does
//!   (skip with a reason, or fail under `VIGIL_REQUIRE_BPF=1`).
//! - [`harness`]: an in-process [`vigil::runtime::Agent`] whose events are collected with a
//!   timeout.
//! - [`json`]: events rendered as `vigil run` writes them, and read back.
//! - [`spawn`]: temporary directories, children that are killed if a test fails, and what
//!   `/proc` and `stat` say about them, to compare with what the kernel programs report.
//! - [`repeat`]: work repeated on a thread until stopped, as a storm of short-lived processes.
//! - [`pki`]: CAs and certificates for the mutual-TLS tests.
//! - [`scrape`]: the agent's `/metrics` endpoint.
//! - [`select`]: picking one's own events out of everything the machine does.
//! - [`tree`]: a long-lived shell and its child, for process-tree checks.
//! - [`vigil_run`]: the real `vigil run` with a config the test writes, its JSON output and
//!   its log.
//! - [`hostile_socket`], [`fake_pod`]: a runtime socket that hangs or answers garbage, and a
//!   pod-shaped cgroup with no runtime behind it.
//! - [`containerd`], [`pod`], [`image`]: a private containerd started by the test, pods and
//!   containers created through its CRI API, images built from busybox-static.
//!
//! The machine is shared: events of other processes arrive too, so tests select their own
//! events by process identity (pid and start time), never by global counts.

pub mod binary;
pub mod cgroup;
pub mod collect;
pub mod containerd;
pub mod daemon;
pub mod enforcement;
pub mod fake_pod;
pub mod gate;
pub mod harness;
pub mod hostile_socket;
pub mod image;
pub mod json;
pub mod pki;
pub mod pod;
pub mod repeat;
pub mod scrape;
pub mod select;
pub mod spawn;
pub mod tree;
pub mod vigil_run;

use std::time::Duration;

pub use gate::{bpf_required, skip};
pub use harness::Harness;

/// How long a test waits for an event that should arrive within milliseconds.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
