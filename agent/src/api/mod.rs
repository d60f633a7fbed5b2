//! The gRPC API (`proto/vigil/v1/sensor.proto`): `GetEvents` streams, `GetHealth`,
//! `GetInfo`, on a unix socket (mode 0600). The pipeline feeds one `broadcast` channel, and
//! only while a client is subscribed; each stream filters and converts on its own task, so a
//! slow client loses events (counted in `vigil_api_dropped_total`, and told with a `loss`
//! event) while the pipeline and the other clients go on.
//!
//! The unix socket also serves `proto/vigil/v1/response.proto` (`response`): operators'
//! containment requests, handed to the responder thread, and dumps of the flight recorder
//! (`dump`), handed to the pipeline; TCP does only with `tcp_response`.

pub mod client;
pub mod convert;
mod dump;
pub mod filter;
pub mod response;
pub mod rules;
mod server;
pub mod status;
pub mod status_cli;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use serde::Deserialize;
use tokio::sync::{broadcast, mpsc, watch};

pub use server::{ApiError, ApiServer, start};

use crate::event::Event;

/// Generated from `proto/vigil/v1/sensor.proto`.
#[allow(
    clippy::all,
    unused_qualifications,
    reason = "generated code (tonic-prost-build): what it triggers varies with the proto"
)]
pub mod proto {
    tonic::include_proto!("vigil.v1");

    /// For server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("vigil_v1_descriptor");
}

/// `[api]` of the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub enabled: bool,
    pub socket: PathBuf,
    /// Events buffered for the streams; a client further behind loses the oldest.
    pub buffer: usize,
    /// Also serve on this TCP address, with mutual TLS only ("" = no TCP).
    pub tcp_address: String,
    /// PEM files: the server's certificate chain and key, and the CA that client
    /// certificates must chain to (all three required with `tcp_address`).
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub tls_client_ca: PathBuf,
    /// Also serve the `Response` service (containment) on `tcp_address`; off: TCP clients
    /// read events only, and containment needs the unix socket.
    pub tcp_response: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: PathBuf::from("/run/vigil/vigil.sock"),
            buffer: 4096,
            tcp_address: String::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            tls_client_ca: PathBuf::new(),
            tcp_response: false,
        }
    }
}

/// What the pipeline and the API share: the event channel and the counters the API reports.
#[derive(Debug)]
pub struct Shared {
    pub events_tx: broadcast::Sender<Arc<Event>>,
    pub started: Instant,
    pub node: String,
    pub hooks: Vec<String>,
    /// What runs degraded (`Info.fallbacks`).
    pub fallbacks: Vec<String>,
    /// Events exported and lost since start (kernel and pipeline losses).
    pub events: AtomicU64,
    pub losses: AtomicU64,
    /// Events dropped because a stream's client fell behind.
    pub dropped: AtomicU64,
    pub policies: AtomicU64,
    /// Events exported, by kind (refreshed on every loss-report tick).
    pub by_kind: Mutex<BTreeMap<&'static str, u64>>,
    /// Rate, drops, caches, exporters and rules (refreshed on every tick).
    pub status: Mutex<status::Status>,
    /// Turns true when the pipeline has delivered its last event: streams end, the server
    /// stops.
    closed: watch::Sender<bool>,
    /// Operators' requests to the responder thread; set once the thread runs.
    operator: OnceLock<crate::response::OperatorHandle>,
    /// Dumps asked of the pipeline's flight recorder; set at start, to `None` when the
    /// recorder is off.
    recorder: OnceLock<Option<mpsc::Sender<crate::forensics::stage::Ask>>>,
}

impl Shared {
    pub fn new(
        config: &ApiConfig,
        node: String,
        hooks: Vec<String>,
        fallbacks: Vec<String>,
    ) -> Arc<Self> {
        let (events_tx, _) = broadcast::channel(config.buffer.max(1));
        Arc::new(Self {
            events_tx,
            started: Instant::now(),
            node,
            hooks,
            fallbacks,
            events: AtomicU64::new(0),
            losses: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            policies: AtomicU64::new(0),
            by_kind: Mutex::new(BTreeMap::new()),
            status: Mutex::new(status::Status::default()),
            closed: watch::channel(false).0,
            operator: OnceLock::new(),
            recorder: OnceLock::new(),
        })
    }

    /// Connects the `Response` service to the responder thread (once; later calls are
    /// ignored).
    pub fn set_operator(&self, handle: crate::response::OperatorHandle) {
        let _ = self.operator.set(handle);
    }

    /// Connects `DumpRecorder` to the pipeline's flight recorder (`None`: it is off). Once;
    /// later calls are ignored.
    pub fn set_recorder(&self, asks: Option<mpsc::Sender<crate::forensics::stage::Ask>>) {
        let _ = self.recorder.set(asks);
    }

    /// `None` while the agent starts; `Some(None)` when the recorder is off.
    pub fn recorder(&self) -> Option<Option<&mpsc::Sender<crate::forensics::stage::Ask>>> {
        self.recorder.get().map(Option::as_ref)
    }

    /// The responder thread's handle, once the agent has started it.
    pub fn operator(&self) -> Option<&crate::response::OperatorHandle> {
        self.operator.get()
    }

    /// Hands a batch to the streams: a clone of each event only when someone listens.
    /// Never blocks.
    pub fn publish(&self, events: &[Event]) {
        self.events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        if self.events_tx.receiver_count() == 0 {
            return;
        }
        for event in events {
            // An error means the last subscriber left meanwhile: nothing to deliver.
            let _ = self.events_tx.send(Arc::new(event.clone()));
        }
    }

    /// [`Shared::publish`] for a batch already shared (with the flight recorder).
    pub fn publish_shared(&self, events: &[Arc<Event>]) {
        self.events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        if self.events_tx.receiver_count() == 0 {
            return;
        }
        for event in events {
            let _ = self.events_tx.send(event.clone());
        }
    }

    /// No more events will come: the streams end once they have sent what they hold.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
