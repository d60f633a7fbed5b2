//! The forwarder's thread: a single-threaded runtime that owns the spool. The writer numbers
//! and appends what the pipeline hands over; each destination's link runs beside it, reading
//! the spool. Disk I/O blocks only this thread, never the pipeline.

use std::{
    cell::RefCell,
    rc::Rc,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, SystemTime},
};

use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tonic::transport::Endpoint;

use super::{
    ForwardConfig, ForwardStats,
    spool::{Dropped, Spool},
};
use crate::{
    api::{convert, proto},
    clock::BootClock,
    event::Event,
    telemetry::{Counters, Drop},
};

/// A destination and how to reach it.
pub enum Link {
    /// With its window: records sent and not yet acknowledged, at most.
    Collector(Endpoint, usize),
    /// With its batch size: log records per export call.
    Otlp(Endpoint, usize),
}

impl Link {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Collector(..) => "collector",
            Self::Otlp(..) => "otlp",
        }
    }
}

/// What a link shares with the writer.
#[derive(Clone)]
pub struct Shared {
    pub spool: Rc<RefCell<Spool>>,
    /// The next sequence number to be written: changes when records were appended.
    pub appended: watch::Receiver<u64>,
    /// True when the forwarder stops.
    pub stop: watch::Receiver<bool>,
    pub stats: Arc<ForwardStats>,
    pub node: String,
}

pub struct Writer {
    pub spool: Spool,
    pub rx: mpsc::Receiver<Vec<Event>>,
    pub links: Vec<Link>,
    pub config: ForwardConfig,
    pub node: String,
    pub clock: BootClock,
    pub counters: Arc<Counters>,
    pub stats: Arc<ForwardStats>,
}

impl Writer {
    pub fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "Cannot start the forwarder's runtime; nothing is forwarded.");
                return;
            }
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, self.serve());
    }

    async fn serve(mut self) {
        let stream = self.spool.stream().to_owned();
        let (appended_tx, appended) = watch::channel(self.spool.next_seq());
        let (stop_tx, stop) = watch::channel(false);
        self.stats
            .last_seq
            .store(self.spool.next_seq() - 1, Relaxed);
        let spool = Rc::new(RefCell::new(self.spool));
        let shared = Shared {
            spool: spool.clone(),
            appended,
            stop,
            stats: self.stats.clone(),
            node: self.node.clone(),
        };
        let mut tasks = Vec::new();
        for link in self.links {
            let stats = self.stats.destination(link.name());
            stats.configured.store(1, Relaxed);
            stats
                .acked_seq
                .store(spool.borrow().acked(link.name()), Relaxed);
            let shared = shared.clone();
            tasks.push(tokio::task::spawn_local(async move {
                match link {
                    Link::Collector(endpoint, window) => {
                        super::collector::run(endpoint, window, shared).await;
                    }
                    Link::Otlp(endpoint, batch) => super::otlp::run(endpoint, batch, shared).await,
                }
            }));
        }
        let mut tick =
            tokio::time::interval(Duration::from_millis(self.config.fsync_interval_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = State {
            stream,
            node: self.node,
            clock: self.clock,
            counters: self.counters,
            stats: self.stats,
            losses: std::collections::BTreeMap::new(),
        };
        loop {
            tokio::select! {
                batch = self.rx.recv() => {
                    let Some(batch) = batch else { break };
                    let n = batch.len() as u64;
                    let result = spool.borrow_mut().append(batch, |seq, event| state.record(seq, &event));
                    state.after_append(&spool, result, n);
                    let _ = appended_tx.send(spool.borrow().next_seq());
                }
                _ = tick.tick() => {
                    let result = spool.borrow_mut().tick(SystemTime::now());
                    state.after_append(&spool, result, 0);
                    let _ = appended_tx.send(spool.borrow().next_seq());
                }
            }
        }
        // The pipeline has stopped: let the links deliver what is in flight, briefly.
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), futures_join(tasks)).await;
        drop(shared);
        match Rc::try_unwrap(spool) {
            Ok(spool) => {
                if let Err(error) = spool.into_inner().close() {
                    tracing::error!(error = %crate::telemetry::chain(&error), "Closing the forwarding spool failed.");
                }
            }
            Err(_) => tracing::warn!(
                "A forwarding link outlived the stop; the spool closes with the process."
            ),
        }
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

struct State {
    stream: String,
    node: String,
    clock: BootClock,
    counters: Arc<Counters>,
    stats: Arc<ForwardStats>,
    /// Loss records in the spool: sequence number -> (first sequence number, events) they
    /// report. (Not rebuilt after a restart: a loss record dropped then counts as one record
    /// and its range is not carried.)
    losses: std::collections::BTreeMap<u64, (u64, u64)>,
}

impl State {
    fn record(&self, seq: u64, event: &Event) -> Vec<u8> {
        proto::Record {
            node: self.node.clone(),
            stream: self.stream.clone(),
            seq,
            body: Some(proto::record::Body::Event(convert::event(
                event,
                &self.node,
                &self.clock,
            ))),
        }
        .encode_to_vec()
    }

    /// Counts what a limit dropped and appends a loss record saying so. A loss record that
    /// is itself dropped before delivery passes its count on to the next one, so the counts
    /// that reach a destination add up to every event lost.
    fn report_dropped(&mut self, spool: &RefCell<Spool>, mut dropped: Dropped) {
        loop {
            let unacked_from = dropped.last_seq + 1 - dropped.count;
            let mut carried = 0;
            let mut loss_records = 0;
            let mut first_seq = dropped.first_seq;
            let gone: Vec<u64> = self
                .losses
                .range(..=dropped.last_seq)
                .map(|(s, _)| *s)
                .collect();
            for seq in gone {
                let Some((first, count)) = self.losses.remove(&seq) else {
                    continue;
                };
                if seq >= unacked_from {
                    carried += count;
                    loss_records += 1;
                    first_seq = first_seq.min(first);
                }
            }
            let events = dropped.count - loss_records;
            let cause = match dropped.cause {
                super::spool::DropCause::Full => Drop::ForwardSpoolFull,
                super::spool::DropCause::Age => Drop::ForwardSpoolAge,
            };
            self.counters.count_n(cause, events);
            tracing::error!(
                first_seq = dropped.first_seq,
                last_seq = dropped.last_seq,
                undelivered = events,
                cause = dropped.cause.name(),
                "The forwarding spool dropped its oldest records."
            );
            let report = Dropped {
                first_seq,
                count: events + carried,
                ..dropped
            };
            let mut at = 0;
            let result = spool.borrow_mut().append([report], |seq, d| {
                at = seq;
                loss_record(&self.node, &self.stream, seq, d)
            });
            match result {
                Ok(next) => {
                    self.losses.insert(at, (report.first_seq, report.count));
                    // The loss record's frame can tip the spool over its limit again.
                    match next {
                        Some(next) => dropped = next,
                        None => return,
                    }
                }
                Err(error) => {
                    tracing::error!(error = %crate::telemetry::chain(&error), "Writing a loss record to the spool failed.");
                    return;
                }
            }
        }
    }

    /// Counts and reports what a limit dropped, and publishes the spool's gauges.
    fn after_append(
        &mut self,
        spool: &RefCell<Spool>,
        result: Result<Option<Dropped>, super::spool::SpoolError>,
        batch: u64,
    ) {
        match result {
            Ok(None) => {}
            Ok(Some(dropped)) => self.report_dropped(spool, dropped),
            Err(error) => {
                self.counters.count_n(Drop::ForwardSpoolError, batch);
                tracing::error!(error = %crate::telemetry::chain(&error), "Writing the forwarding spool failed; records of this batch are lost.");
            }
        }
        let spool = spool.borrow();
        self.stats.last_seq.store(spool.next_seq() - 1, Relaxed);
        self.stats.spool_bytes.store(spool.bytes(), Relaxed);
    }
}

fn loss_record(node: &str, stream: &str, seq: u64, dropped: Dropped) -> Vec<u8> {
    proto::Record {
        node: node.to_owned(),
        stream: stream.to_owned(),
        seq,
        body: Some(proto::record::Body::Loss(proto::SpoolLoss {
            first_seq: dropped.first_seq,
            last_seq: dropped.last_seq,
            count: dropped.count,
            cause: dropped.cause.name().to_owned(),
        })),
    }
    .encode_to_vec()
}
