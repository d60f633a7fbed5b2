//! The response stage's machinery: what rules in `mode: enforce` do.
//!
//! In the order an action meets it: [`plan`] (which kernel rules a policy set asks for) ->
//! [`worker`] (the responder thread: installs them when the set is put in force, carries out
//! userspace actions, drains the kernel's enforcement records) <- [`responder`] (called by the
//! policy stage on the pipeline task: never blocks, queues) -> [`correlate`] (holds each
//! `pending` finding until its outcome, emits it with an [`Enforcement`] event). Operators'
//! requests from the API ([`operator`]) go to the same thread through the same queue; their
//! events get their process and workload from the pipeline ([`context`]). The containment
//! primitives themselves are in [`crate::enforce`].

pub mod config;
pub mod context;
pub mod correlate;
pub mod operator;
pub mod plan;
pub mod record;
pub mod responder;
pub mod worker;

use std::sync::{Arc, mpsc::sync_channel};

use tokio::sync::{mpsc, watch};

pub use config::EnforcementConfig;
pub use correlate::Correlator;
pub use operator::OperatorHandle;
pub use record::{By, Enforcement, Operator};
pub use responder::{DisabledResponder, EnforceResponder};
pub use worker::{ORIGIN_API, ORIGIN_PREFIX, Report};

use crate::{event::Event, pipeline::Pipeline, policy::PolicySet};

/// Reports from the responder thread waiting for the pipeline task.
const REPORTS: usize = 1024;

/// What the pipeline task holds of the response stage.
pub struct Response {
    pub reports: mpsc::Receiver<Report>,
    /// Each policy set put in force, for the thread to reconcile the kernel rules with.
    pub policies: watch::Sender<Arc<PolicySet>>,
    pub correlator: Correlator,
    /// For the API: operators' requests to the responder thread.
    pub operator: OperatorHandle,
}

impl Response {
    /// A report of the responder thread: the events it makes go to `out`.
    pub fn on_report(
        &mut self,
        report: Report,
        pipeline: &Pipeline,
        now_ns: u64,
        out: &mut Vec<Event>,
    ) {
        match report {
            Report::Operator(enforcement) => {
                let event = context::operator_event(enforcement, pipeline, now_ns);
                self.correlator.emit(event, out);
            }
            other => self.correlator.on_report(other, now_ns, out),
        }
    }
}

/// Plugs the responder into `stage` (when policies are on) and starts the responder thread
/// (after installing the kernel rules of the stage's set, on this thread), which also serves
/// operators' requests from the API. `None` when enforcement is disabled: enforce-mode
/// findings then say `disabled`, operators' requests are refused.
pub fn start(
    config: &EnforcementConfig,
    stage: Option<&mut crate::policy::PolicyStage>,
    node: String,
) -> std::io::Result<Option<Response>> {
    if !config.enabled {
        if let Some(stage) = stage {
            stage.set_responder(Box::new(DisabledResponder));
        }
        return Ok(None);
    }
    let set = stage.as_ref().map(|s| s.set().clone()).unwrap_or_default();
    let (worker, installed) = worker::Worker::new(config, node, &set);
    let (jobs_tx, jobs_rx) = sync_channel(config.queue_capacity);
    let (reports_tx, reports) = mpsc::channel(REPORTS);
    let (policies, policies_rx) = watch::channel(set);
    std::thread::Builder::new()
        .name("vigil-responder".into())
        .spawn(move || worker.run(jobs_rx, policies_rx, reports_tx))?;
    let drops = Arc::new(operator::QueueDrops::default());
    let operator = OperatorHandle::new(Some(jobs_tx.clone()), config.layout(), drops.clone());
    if let Some(stage) = stage {
        stage.set_responder(Box::new(EnforceResponder::new(jobs_tx, installed)));
    }
    Ok(Some(Response {
        reports,
        policies,
        correlator: Correlator::new(config.result_timeout_ms * 1_000_000).with_queue_drops(drops),
        operator,
    }))
}

/// The handle the API uses for operators' requests: the responder thread's when it runs, else
/// one that refuses them (enforcement disabled) but can still list the pinned rules.
pub fn operator_handle(config: &EnforcementConfig, response: Option<&Response>) -> OperatorHandle {
    response.map_or_else(
        || OperatorHandle::disabled(config.layout()),
        |r| r.operator.clone(),
    )
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
