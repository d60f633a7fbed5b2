use std::time::{Duration, Instant};

use super::*;
use crate::enrich::cri::tests::{Hostile, listen_hostile};

const TIMEOUT_MS: u64 = 200;

/// A lookup task on `socket`, running; its request and result ends.
fn start(socket: &std::path::Path) -> (mpsc::Sender<ContainerId>, mpsc::Receiver<LookupResult>) {
    let config = EnrichConfig {
        cri_socket: socket.display().to_string(),
        lookup_timeout_ms: TIMEOUT_MS,
        ..EnrichConfig::default()
    };
    let (task, requests, results) = LookupTask::new(&config, 4);
    tokio::spawn(task.run());
    (requests, results)
}

/// Asks about `id` and returns the answer and how long it took.
async fn ask(
    requests: &mpsc::Sender<ContainerId>,
    results: &mut mpsc::Receiver<LookupResult>,
    id: &ContainerId,
) -> (Outcome, Duration) {
    let started = Instant::now();
    requests
        .send(id.clone())
        .await
        .expect("the task takes requests");
    let result = tokio::time::timeout(Duration::from_secs(5), results.recv())
        .await
        .expect("an answer within 5 s")
        .expect("the task is running");
    assert_eq!(&result.id, id);
    (result.outcome, started.elapsed())
}

fn id(c: char) -> ContainerId {
    ContainerId(std::iter::repeat_n(c, 64).collect())
}

#[tokio::test]
async fn a_silent_runtime_fails_each_lookup_within_the_timeout() {
    let path = listen_hostile("lookup-silent", Hostile::Silent);
    let (requests, mut results) = start(&path);
    let timeout = Duration::from_millis(TIMEOUT_MS);
    // Connecting gets no answer to `Version`: at most the connect's and the call's timeouts.
    let (outcome, took) = ask(&requests, &mut results, &id('a')).await;
    assert_eq!(outcome, Outcome::Failed("timeout"));
    assert!(took >= timeout && took < 3 * timeout, "{took:?}");
    // Within the back-off the next container fails at once, for the same cause.
    let (outcome, took) = ask(&requests, &mut results, &id('b')).await;
    assert_eq!(outcome, Outcome::Failed("timeout"));
    assert!(took < timeout, "{took:?}");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_socket_answering_garbage_fails_lookups_at_once() {
    let path = listen_hostile("lookup-garbage", Hostile::RandomBytes);
    let (requests, mut results) = start(&path);
    for c in ['a', 'b'] {
        let (outcome, took) = ask(&requests, &mut results, &id(c)).await;
        assert_eq!(outcome, Outcome::Failed("transport"));
        assert!(took < Duration::from_millis(TIMEOUT_MS), "{took:?}");
    }
    let _ = std::fs::remove_file(path);
}
