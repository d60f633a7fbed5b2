//! A destination's life: sessions, retried with exponential backoff until the forwarder
//! stops. Failures are logged when the state changes, not on every attempt.

use std::{future::Future, sync::atomic::Ordering::Relaxed, time::Duration};

use super::writer::Shared;

const FIRST: Duration = Duration::from_millis(200);
const MAX: Duration = Duration::from_secs(10);

pub async fn run<F, Fut, E>(name: &'static str, mut shared: Shared, mut session: F)
where
    F: FnMut(Shared) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    let mut backoff = FIRST;
    let mut failing = false;
    loop {
        if *shared.stop.borrow() {
            return;
        }
        let stats = shared.stats.destination(name);
        let result = session(shared.clone()).await;
        if stats.connected.swap(0, Relaxed) == 1 {
            // The session got going: start the backoff over, and say when it fails again.
            backoff = FIRST;
            failing = false;
        }
        match result {
            Ok(()) => return,
            Err(error) => {
                stats.errors_total.fetch_add(1, Relaxed);
                if !failing {
                    tracing::warn!(
                        destination = name,
                        error = %crate::telemetry::chain(&error),
                        "Forwarding destination unavailable; records wait in the spool."
                    );
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shared.stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX);
    }
}
