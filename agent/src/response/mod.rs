//! The response stage's machinery: what rules in `mode: enforce` do.
//!
//! In the order an action meets it: [`plan`] (which kernel rules a policy set asks for) ->
//! [`worker`] (the responder thread: installs them when the set is put in force, carries out
//! userspace actions, drains the kernel's enforcement records) <- [`responder`] (called by the
//! policy stage on the pipeline task: never blocks, queues) -> [`correlate`] (holds each
//! `pending` finding until its outcome, emits it with an [`Enforcement`] event). The
//! containment primitives themselves are in [`crate::enforce`].

pub mod config;
pub mod correlate;
pub mod plan;
pub mod record;
pub mod responder;
pub mod worker;

use std::sync::{Arc, mpsc::sync_channel};

use tokio::sync::{mpsc, watch};

pub use config::EnforcementConfig;
pub use correlate::Correlator;
pub use record::{By, Enforcement};
pub use responder::{DisabledResponder, EnforceResponder};
pub use worker::Report;

use crate::policy::PolicySet;

/// Reports from the responder thread waiting for the pipeline task.
const REPORTS: usize = 1024;

/// What the pipeline task holds of the response stage.
pub struct Response {
    pub reports: mpsc::Receiver<Report>,
    /// Each policy set put in force, for the thread to reconcile the kernel rules with.
    pub policies: watch::Sender<Arc<PolicySet>>,
    pub correlator: Correlator,
}

/// Plugs the responder into `stage` and starts the responder thread (after installing the
/// kernel rules of the stage's set, on this thread). `None` when enforcement is disabled:
/// enforce-mode findings then say `disabled`.
pub fn start(
    config: &EnforcementConfig,
    stage: &mut crate::policy::PolicyStage,
    node: String,
) -> std::io::Result<Option<Response>> {
    if !config.enabled {
        stage.set_responder(Box::new(DisabledResponder));
        return Ok(None);
    }
    let set = stage.set().clone();
    let (worker, installed) = worker::Worker::new(config, node, &set);
    let (jobs_tx, jobs_rx) = sync_channel(config.queue_capacity);
    let (reports_tx, reports) = mpsc::channel(REPORTS);
    let (policies, policies_rx) = watch::channel(set);
    std::thread::Builder::new()
        .name("vigil-responder".into())
        .spawn(move || worker.run(jobs_rx, policies_rx, reports_tx))?;
    stage.set_responder(Box::new(EnforceResponder::new(jobs_tx, installed)));
    Ok(Some(Response {
        reports,
        policies,
        correlator: Correlator::new(config.result_timeout_ms * 1_000_000),
    }))
}

/// The next report; never resolves without a response stage.
pub async fn next_report(response: &mut Option<Response>) -> Report {
    if let Some(r) = response {
        if let Some(report) = r.reports.recv().await {
            return report;
        }
        // The thread is gone: keep the correlator, stop polling.
        std::future::pending::<()>().await;
    }
    std::future::pending().await
}
