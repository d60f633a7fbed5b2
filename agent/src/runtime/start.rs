//! The optional parts the supervisor starts beside the sensor: policies and their reloads,
//! the flight recorder with its SIGUSR1 and the API's dumps, the metrics endpoint.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::{PipelineTask, StartError};
use crate::{config::Config, pipeline::Pipeline};

/// Loads the policies `config` asks for into `pipeline` and starts their reload task. An
/// invalid set fails the start (the operator must fix it); later, an invalid reload keeps the
/// set in force.
pub(super) fn start_policies(
    config: &Config,
    pipeline: &mut Pipeline,
) -> Result<Option<mpsc::Receiver<Arc<crate::policy::PolicySet>>>, StartError> {
    if !config.policy.enabled {
        return Ok(None);
    }
    let set = crate::policy::load::load(&config.policy)?;
    tracing::info!(
        rules = set.rules().len(),
        files = set.sources().len(),
        "Loaded policies."
    );
    pipeline.set_policy(crate::policy::PolicyStage::new(
        Arc::new(set),
        crate::node::node_name(&config.node_name),
    ));
    crate::policy::reload::start(&config.policy)
        .map(Some)
        .map_err(StartError::PolicyReload)
}

/// The flight recorder and its SIGUSR1 trigger, when `[recorder]` is on.
pub(super) fn start_recorder(
    config: &Config,
) -> Result<
    (
        Option<crate::forensics::stage::RecorderStage>,
        Option<tokio::signal::unix::Signal>,
    ),
    StartError,
> {
    if !config.recorder.enabled {
        return Ok((None, None));
    }
    let writer = crate::forensics::dump::DumpWriter {
        dir: config.recorder.dir.clone(),
        node: crate::node::node_name(&config.node_name),
        clock: crate::clock::BootClock::now(),
    };
    let stage = crate::forensics::stage::RecorderStage::start(&config.recorder, writer)
        .map_err(StartError::Recorder)?;
    let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .map_err(StartError::Recorder)?;
    Ok((Some(stage), Some(signal)))
}

/// Dumps asked for through the API wait here for the pipeline task.
const DUMP_ASKS: usize = 8;

/// Connects the API's `DumpRecorder` to the recorder stage (when both run), or tells the API
/// that the recorder is off.
pub(super) fn connect_recorder(
    api: Option<&crate::api::Shared>,
    recorder_on: bool,
) -> Option<mpsc::Receiver<crate::forensics::stage::Ask>> {
    let api = api?;
    if !recorder_on {
        api.set_recorder(None);
        return None;
    }
    let (tx, rx) = mpsc::channel(DUMP_ASKS);
    api.set_recorder(Some(tx));
    Some(rx)
}

/// The next dump asked for through the API, or never when the API or the recorder is off.
pub(super) async fn next_ask(
    asks: &mut Option<mpsc::Receiver<crate::forensics::stage::Ask>>,
) -> Option<crate::forensics::stage::Ask> {
    match asks {
        Some(asks) => asks.recv().await,
        None => std::future::pending().await,
    }
}

/// The next SIGUSR1, or never when there is no handler.
pub(super) async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Binds the metrics endpoint when an address is configured and connects it to `task`.
pub(super) fn start_metrics(
    mut task: PipelineTask,
    address: &str,
    shutdown: &watch::Sender<bool>,
) -> Result<(PipelineTask, Option<std::net::SocketAddr>), StartError> {
    if address.is_empty() {
        return Ok((task, None));
    }
    let bind = |address: &str| -> std::io::Result<tokio::net::TcpListener> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(listener)
    };
    let listener = bind(address).map_err(|source| StartError::Metrics {
        address: address.to_owned(),
        source,
    })?;
    let bound = listener.local_addr().ok();
    let (tx, rx) = watch::channel(None);
    task.metrics = Some(tx);
    tokio::spawn(crate::export::metrics_http::serve(
        listener,
        rx,
        crate::export::metrics_http::stall_limit(task.loss_interval),
        shutdown.subscribe(),
    ));
    tracing::info!(address = ?bound, "Serving metrics at /metrics, probes at /healthz and /readyz.");
    Ok((task, bound))
}
