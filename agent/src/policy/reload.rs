//! Reload on SIGHUP and when a file of the policy directory changes (a cheap mtime poll):
//! the new set is compiled off the pipeline task and handed over whole; an invalid set is
//! reported (every error, with its position) and the set in force stays.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;

use super::{PolicySet, config::PolicyConfig, load};

/// Starts the reload task on the current tokio runtime; the pipeline takes new sets from the
/// receiver. The task ends when the receiver is dropped.
pub fn start(config: &PolicyConfig) -> std::io::Result<mpsc::Receiver<Arc<PolicySet>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let hangup = signal(SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(run(config.clone(), hangup, tx));
    Ok(rx)
}

async fn run(
    config: PolicyConfig,
    mut hangup: tokio::signal::unix::Signal,
    tx: mpsc::Sender<Arc<PolicySet>>,
) {
    let dir = config.directory();
    let mut seen = dir.as_deref().map(load::fingerprint).unwrap_or_default();
    let poll = (config.reload_interval_ms > 0 && dir.is_some())
        .then(|| Duration::from_millis(config.reload_interval_ms));
    let mut tick = tokio::time::interval(poll.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let cause = tokio::select! {
            () = tx.closed() => return,
            signal = hangup.recv() => {
                if signal.is_none() {
                    return;
                }
                "SIGHUP"
            }
            _ = tick.tick(), if poll.is_some() => {
                let now = dir.as_deref().map(load::fingerprint).unwrap_or_default();
                if now == seen {
                    continue;
                }
                seen = now;
                "a policy file changed"
            }
        };
        match load::load(&config) {
            Ok(set) => {
                tracing::info!(
                    cause,
                    rules = set.rules().len(),
                    files = set.sources().len(),
                    "Reloaded policies."
                );
                if tx.send(Arc::new(set)).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::error!(cause, %error, "Policy reload failed; the previous policies stay in force.");
            }
        }
    }
}

/// The next reloaded set; never resolves when there is no reload task.
pub async fn next(updates: &mut Option<mpsc::Receiver<Arc<PolicySet>>>) -> Arc<PolicySet> {
    if let Some(rx) = updates {
        if let Some(set) = rx.recv().await {
            return set;
        }
        *updates = None;
    }
    std::future::pending().await
}
