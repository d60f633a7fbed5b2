//! The async edge of enrichment: takes container ids from the pipeline, asks the CRI socket,
//! and hands back what it said (or why it could not). Also tells the pipeline when a
//! container it asked about is gone from the runtime, so its metadata can be dropped.
//!
//! Trouble with the socket is logged at WARN at most once a minute per cause; the pipeline
//! counts every failed lookup from the results.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use tokio::{sync::mpsc, task::JoinSet};

use super::{
    cgroup_path::ContainerId,
    config::EnrichConfig,
    cri::{CriClient, CriError, find_socket},
    workload::Metadata,
};

/// Lookups running at once.
const MAX_IN_FLIGHT: usize = 16;
/// After a failed connect, requests fail at once for this long before the next try.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(5);
/// Repeated warnings of one cause are held back for this long.
const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// First wait before asking again about a container the runtime does not know yet (a pod
/// sandbox is registered only once its pause container runs); doubled each time.
const NOT_FOUND_RETRY: Duration = Duration::from_millis(20);

/// What the lookup task answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupResult {
    pub id: ContainerId,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Found(Metadata),
    /// The lookup failed; the cause is one of [`CriError::cause`].
    Failed(&'static str),
    /// The runtime no longer has the container.
    Gone,
}

/// The lookup task, ready to run.
pub struct LookupTask {
    socket: Option<PathBuf>,
    timeout: Duration,
    /// How long a lookup keeps asking about a container the runtime does not know yet.
    not_found_budget: Duration,
    resync: Duration,
    max_known: usize,
    requests: mpsc::Receiver<ContainerId>,
    results: mpsc::Sender<LookupResult>,
    client: Option<CriClient>,
    /// The socket last connected to or tried (auto-detection may find none), for the logs.
    tried: Option<PathBuf>,
    /// Until when connecting is not tried again, and why the last try failed.
    backoff: Option<(Instant, &'static str)>,
    /// Containers found, to tell the pipeline when they go.
    known: HashSet<ContainerId>,
    /// Per cause: when it was last logged, and how many were held back since.
    warned: HashMap<&'static str, (Option<Instant>, u64)>,
}

impl LookupTask {
    /// The task and the pipeline's ends of its channels (requests in, results out), both
    /// bounded by `capacity`.
    pub fn new(
        config: &EnrichConfig,
        capacity: usize,
    ) -> (
        Self,
        mpsc::Sender<ContainerId>,
        mpsc::Receiver<LookupResult>,
    ) {
        let (request_tx, requests) = mpsc::channel(capacity);
        let (results, result_rx) = mpsc::channel(capacity);
        let task = Self {
            socket: config.socket(),
            timeout: config.lookup_timeout(),
            not_found_budget: Duration::from_millis(config.pending_timeout_ms)
                .max(Duration::from_millis(500)),
            resync: config.resync_interval(),
            max_known: config.cache_max_entries,
            requests,
            results,
            client: None,
            tried: None,
            backoff: None,
            known: HashSet::new(),
            warned: HashMap::new(),
        };
        (task, request_tx, result_rx)
    }

    /// Serves requests until the pipeline drops its sender.
    pub async fn run(mut self) {
        let mut in_flight: JoinSet<(ContainerId, Result<Metadata, CriError>)> = JoinSet::new();
        let mut resync = tokio::time::interval(self.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.reset();
        loop {
            tokio::select! {
                request = self.requests.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                    let Some(id) = request else { break };
                    match self.client().await {
                        Ok(client) => {
                            let budget = self.not_found_budget;
                            in_flight.spawn(async move {
                                let result = lookup_with_retry(&client, &id, budget).await;
                                (id, result)
                            });
                        }
                        Err(cause) => self.send(id, Outcome::Failed(cause)).await,
                    }
                }
                Some(done) = in_flight.join_next() => {
                    // A lookup task cannot panic short of a bug; nothing to answer then.
                    let Ok((id, result)) = done else { continue };
                    let outcome = match result {
                        Ok(metadata) => {
                            if self.known.len() >= self.max_known {
                                self.known.clear();
                            }
                            self.known.insert(id.clone());
                            Outcome::Found(metadata)
                        }
                        Err(error) => {
                            self.warn(&error, &id);
                            Outcome::Failed(error.cause())
                        }
                    };
                    self.send(id, outcome).await;
                }
                _ = resync.tick() => self.resync().await,
            }
        }
        in_flight.abort_all();
    }

    /// The client, connecting first if needed (at most once per [`RECONNECT_BACKOFF`]).
    async fn client(&mut self) -> Result<CriClient, &'static str> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        if let Some((until, cause)) = self.backoff
            && Instant::now() < until
        {
            return Err(cause);
        }
        let connected = match find_socket(self.socket.as_deref()) {
            Ok(path) => {
                self.tried = Some(path.clone());
                CriClient::connect(&path, self.timeout).await
            }
            Err(error) => Err(error),
        };
        match connected {
            Ok(client) => {
                tracing::info!(
                    socket = %client.socket().display(),
                    runtime = client.version(),
                    "Connected to the container runtime for pod metadata."
                );
                self.backoff = None;
                self.client = Some(client.clone());
                Ok(client)
            }
            Err(error) => {
                self.warn(&error, &ContainerId(String::new()));
                self.backoff = Some((Instant::now() + RECONNECT_BACKOFF, error.cause()));
                Err(error.cause())
            }
        }
    }

    /// Tells the pipeline about known containers that the runtime no longer has.
    async fn resync(&mut self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        if self.known.is_empty() {
            return;
        }
        let present = match client.list_ids().await {
            Ok(ids) => ids,
            Err(error) => {
                self.warn(&error, &ContainerId(String::new()));
                return;
            }
        };
        let gone: Vec<ContainerId> = self
            .known
            .iter()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.known.remove(&id);
            self.send(id, Outcome::Gone).await;
        }
    }

    async fn send(&self, id: ContainerId, outcome: Outcome) {
        // Fails only when the pipeline is gone, and then nobody needs the answer.
        let _ = self.results.send(LookupResult { id, outcome }).await;
    }

    /// A WARN line per cause, at most once per [`WARN_INTERVAL`], with how many were held back.
    fn warn(&mut self, error: &CriError, id: &ContainerId) {
        let now = Instant::now();
        let entry = self.warned.entry(error.cause()).or_insert((None, 0));
        if entry
            .0
            .is_some_and(|last| now.duration_since(last) < WARN_INTERVAL)
        {
            entry.1 += 1;
            return;
        }
        let suppressed = std::mem::take(&mut entry.1);
        entry.0 = Some(now);
        let socket = self
            .tried
            .as_deref()
            .map_or_else(|| "(none found)".into(), |p| p.display().to_string());
        tracing::warn!(
            socket = %socket,
            cause = %error.cause(),
            container_id = %id,
            error = %super::cri::error_chain(error),
            suppressed,
            "Container metadata lookup failed; events carry the container id only."
        );
    }
}

/// One lookup; a container the runtime does not know yet is asked about again, with
/// doubling waits, within `budget`.
async fn lookup_with_retry(
    client: &CriClient,
    id: &ContainerId,
    budget: Duration,
) -> Result<Metadata, CriError> {
    let started = Instant::now();
    let mut wait = NOT_FOUND_RETRY;
    loop {
        match client.lookup(id).await {
            Err(CriError::NotFound { .. }) if started.elapsed() + wait < budget => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
#[path = "lookup_tests.rs"]
mod tests;
