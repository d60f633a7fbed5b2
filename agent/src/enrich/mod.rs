//! Enrichment: which container and which Kubernetes pod each event comes from.
//!
//! In the order an event meets them:
//! - [`enricher`]: the pipeline stage (cgroup id -> container -> pod), holding the first
//!   events of a new container in [`pending`] while its metadata is looked up;
//! - [`cgroup_path`]: container id and runtime from a cgroup path, for every runtime and
//!   cgroup driver;
//! - [`lookup`]: the async task that asks the runtime's CRI socket, through [`cri`];
//! - [`workload`]: what events carry (`Container`, `Pod`); [`stats`]: the counters.

pub mod cgroup_path;
pub mod config;
pub mod cri;
mod enricher;
pub mod lookup;
pub mod pending;
pub mod stats;
mod workload;

pub use cgroup_path::{ContainerId, ContainerRef, Runtime};
pub use config::EnrichConfig;
pub use enricher::Enricher;
pub use lookup::LookupResult;
pub use stats::{EnrichCounter, EnrichStats};
pub use workload::{Container, Metadata, Pod, image_digest};

use tokio::sync::mpsc;

use crate::cgroup::CgroupFs;

/// Requests and results queued between the pipeline and the lookup task, each way.
const LOOKUP_QUEUE: usize = 1_024;

/// Starts enrichment as configured: the lookup task runs on the current tokio runtime until
/// the returned [`Enricher`] is dropped; the pipeline task takes the results from the
/// receiver and hands them to [`Enricher::on_result`]. `None` when disabled.
pub fn start(config: &EnrichConfig) -> Option<(Enricher, mpsc::Receiver<LookupResult>)> {
    if !config.enabled {
        return None;
    }
    let (task, requests, results) = lookup::LookupTask::new(config, LOOKUP_QUEUE);
    tokio::spawn(task.run());
    let enricher = Enricher::new(config, Some(requests), Some(CgroupFs::discover()));
    Some((enricher, results))
}

/// For `vigil probe`: whether the runtime's CRI socket answers (with its name, version and
/// path), or why not.
pub fn probe_runtime(config: &EnrichConfig) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start an async runtime: {e}"))?;
    runtime.block_on(async {
        let path = cri::find_socket(config.socket().as_deref()).map_err(|e| e.to_string())?;
        match cri::CriClient::connect(&path, config.lookup_timeout()).await {
            Ok(client) => Ok(format!("{} at {}", client.version(), path.display())),
            Err(error) => Err(cri::error_chain(&error)),
        }
    })
}

/// The next lookup result; never resolves when there are none to come (no enrichment, or
/// the lookup task ended).
pub async fn next_result(results: &mut Option<mpsc::Receiver<LookupResult>>) -> LookupResult {
    if let Some(rx) = results {
        if let Some(result) = rx.recv().await {
            return result;
        }
        *results = None;
    }
    std::future::pending().await
}

/// Resolves at `deadline_ns` (CLOCK_BOOTTIME); never when `None`.
pub async fn sleep_until(deadline_ns: Option<u64>) {
    match deadline_ns {
        Some(deadline) => {
            let left = deadline.saturating_sub(crate::clock::boot_now_ns());
            tokio::time::sleep(std::time::Duration::from_nanos(left)).await;
        }
        None => std::future::pending().await,
    }
}
