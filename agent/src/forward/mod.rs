//! Forwarding that loses nothing silently: the pipeline hands the selected events to the
//! forwarder's thread, which numbers them and appends them to the on-disk spool
//! ([`spool`]); one task per destination reads the spool from its last acknowledged
//! sequence number and delivers: a Vigil collector over `vigil.v1.Collector/Publish`
//! ([`collector`]), an OpenTelemetry collector over OTLP/gRPC logs ([`otlp`]).
//!
//! Delivery is at least once, in order, per node and spool stream. Where records can go:
//! - the pipeline -> forwarder queue is full (disk stuck): counted `forward_queue_full`;
//! - the spool reaches its size or age limit: the oldest records are dropped, counted
//!   (`forward_spool_full`, `forward_spool_age`) and a loss record takes their place in the
//!   stream.
//!
//! Both are also in the local loss events.

pub mod channel;
pub mod collect;
pub mod collector;
pub mod config;
pub mod otlp;
mod retry;
pub mod spool;
mod stats;
mod writer;

use std::sync::Arc;

pub use config::{Destination, ForwardConfig, Select};
pub use stats::{DestinationStats, ForwardStats};

use crate::{
    clock::BootClock,
    event::{Detail, Event},
    telemetry::{Counters, Drop},
};

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("opening the forwarding spool (forward.spool_dir)")]
    Spool(#[from] spool::SpoolError),
    #[error(transparent)]
    Channel(#[from] channel::ChannelError),
    #[error("starting the forwarder thread")]
    Thread(#[source] std::io::Error),
}

/// The pipeline's handle on the forwarder.
pub struct Forwarder {
    tx: Option<tokio::sync::mpsc::Sender<Vec<Event>>>,
    select: Select,
    counters: Arc<Counters>,
    stats: Arc<ForwardStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    /// Opens the spool and starts delivering; `None` when no destination is configured.
    pub fn start(
        config: &ForwardConfig,
        node: String,
        counters: Arc<Counters>,
    ) -> Result<Option<Self>, ForwardError> {
        if !config.enabled() {
            return Ok(None);
        }
        let mut destinations = Vec::new();
        if !config.collector.endpoint.is_empty() {
            destinations.push(writer::Link::Collector(
                channel::endpoint("collector", &config.collector)?,
                config.collector.window,
            ));
        }
        if !config.otlp.endpoint.is_empty() {
            destinations.push(writer::Link::Otlp(
                channel::endpoint("otlp", &config.otlp)?,
                config.otlp.window,
            ));
        }
        let names: Vec<&str> = destinations.iter().map(writer::Link::name).collect();
        let spool = spool::Spool::open(&config.spool_dir, config.limits(), &names)?;
        let stats = Arc::new(ForwardStats::default());
        tracing::info!(
            dir = %config.spool_dir.display(),
            stream = spool.stream(),
            next_seq = spool.next_seq(),
            destinations = ?names,
            "Forwarding through the spool."
        );
        let (tx, rx) = tokio::sync::mpsc::channel(config.queue_batches.max(1));
        let work = writer::Writer {
            spool,
            rx,
            links: destinations,
            config: config.clone(),
            node,
            clock: BootClock::now(),
            counters: counters.clone(),
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("vigil-forward".into())
            .spawn(move || work.run())
            .map_err(ForwardError::Thread)?;
        Ok(Some(Self {
            tx: Some(tx),
            select: config.select,
            counters,
            stats,
            thread: Some(thread),
        }))
    }

    /// Hands over the events of `batch` the configuration selects; never blocks.
    pub fn offer(&self, batch: &[Event]) {
        let Some(tx) = &self.tx else { return };
        let selected: Vec<Event> = batch
            .iter()
            .filter(|e| selected(self.select, e))
            .cloned()
            .collect();
        if selected.is_empty() {
            return;
        }
        let n = selected.len();
        if tx.try_send(selected).is_err() {
            self.counters.count_n(Drop::ForwardQueueFull, n as u64);
        }
    }

    pub fn stats(&self) -> &ForwardStats {
        &self.stats
    }

    /// Writes what was handed over to the spool, gives the destinations a moment to deliver
    /// what is in flight, and closes the spool. Undelivered records stay for the next start.
    pub fn stop(mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests;

fn selected(select: Select, event: &Event) -> bool {
    match select {
        Select::All => true,
        Select::Findings => matches!(
            event.detail,
            Detail::Finding(_) | Detail::Enforcement(_) | Detail::Loss(_)
        ),
    }
}
