//! The recorder in the pipeline task: it records every exported batch, starts dumps (a
//! capture finding, SIGUSR1, an API request) and hands finished dumps to the writer thread
//! through a bounded queue, so that writing never stalls the pipeline.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
    mpsc::{Receiver, SyncSender, TrySendError},
};

use super::{
    Dump, DumpRequest, Recorder, RecorderConfig, Scope,
    dump::{DumpWriter, Written},
};
use crate::{
    event::{Detail, Event},
    policy::{Action, Mode},
};

/// Dumps written, dropped, failed; gauges of the ring.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub dumps_written: AtomicU64,
    pub dumps_dropped: AtomicU64,
    pub dumps_failed: AtomicU64,
}

/// A dump asked for from outside the pipeline, with where to say where it went.
pub struct Ask {
    pub request: DumpRequest,
    pub reply: Option<Reply>,
}

/// Why an asked-for dump was not written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error("the dump writer is behind (its queue is full); the dump was dropped")]
    Dropped,
    #[error("writing the dump failed: {0}")]
    Write(String),
}

pub struct RecorderStage {
    recorder: Recorder,
    config: RecorderConfig,
    dumps: Option<SyncSender<(Dump, Option<Reply>)>>,
    writer: Option<std::thread::JoinHandle<()>>,
    stats: Arc<RecorderStats>,
    done: Vec<Dump>,
    /// Replies waiting for dumps still collecting their post-trigger window, by dump id.
    replies: Vec<(u64, Reply)>,
    next_id: u64,
}

pub type Reply = tokio::sync::oneshot::Sender<Result<Written, AskError>>;

impl RecorderStage {
    pub fn start(config: &RecorderConfig, writer: DumpWriter) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let stats = Arc::new(RecorderStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-dump".into())
            .spawn(move || write_dumps(&writer, &rx, &thread_stats))?;
        Ok(Self {
            recorder: Recorder::new(config.limits()),
            config: config.clone(),
            dumps: Some(tx),
            writer: Some(thread),
            stats,
            done: Vec::new(),
            replies: Vec::new(),
            next_id: 1,
        })
    }

    pub fn stats(&self) -> Arc<RecorderStats> {
        self.stats.clone()
    }

    /// Records an exported batch and starts a dump for each capture finding in it.
    pub fn after_flush(&mut self, events: &[Arc<Event>], now_ns: u64) {
        self.recorder.record(events, now_ns, &mut self.done);
        for event in events {
            if let Detail::Finding(finding) = &event.detail
                && finding.action == Action::Capture
                && finding.mode == Mode::Enforce
            {
                let request = DumpRequest {
                    id: self.take_id(),
                    reason: format!("rule:{}", finding.rule.name),
                    pre_ns: self.pre_ns(),
                    post_ns: self.config.post_trigger_s * 1_000_000_000,
                    scope: Scope::tree_of(event),
                    metadata: Vec::new(),
                };
                self.recorder.trigger(request, now_ns, &mut self.done);
            }
        }
        self.send_done();
    }

    /// A dump asked for by a signal or the API; its pre-trigger window is at most what the
    /// ring keeps.
    pub fn ask(&mut self, ask: Ask, now_ns: u64) {
        let request = DumpRequest {
            id: self.take_id(),
            pre_ns: ask.request.pre_ns.min(self.pre_ns()),
            ..ask.request
        };
        if let Some(reply) = ask.reply {
            self.replies.push((request.id, reply));
        }
        self.recorder.trigger(request, now_ns, &mut self.done);
        self.send_done();
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// The window kept before a trigger: all the ring holds.
    pub fn pre_ns(&self) -> u64 {
        self.config.max_age_s * 1_000_000_000
    }

    pub fn post_ns(&self) -> u64 {
        self.config.post_trigger_s * 1_000_000_000
    }

    pub fn tick(&mut self, now_ns: u64) {
        self.recorder.expire(now_ns, &mut self.done);
        self.send_done();
        self.stats.events.store(self.recorder.len() as u64, Relaxed);
        self.stats
            .bytes
            .store(self.recorder.bytes() as u64, Relaxed);
    }

    /// Writes the dumps still collecting, and waits for the writer.
    pub fn stop(mut self) {
        self.recorder.flush(&mut self.done);
        self.send_done();
        drop(self.dumps.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }

    fn send_done(&mut self) {
        let Some(tx) = &self.dumps else { return };
        for dump in self.done.drain(..) {
            let reply = self
                .replies
                .iter()
                .position(|(id, _)| *id == dump.request.id)
                .map(|i| self.replies.swap_remove(i).1);
            match tx.try_send((dump, reply)) {
                Ok(()) => {}
                Err(
                    TrySendError::Full((dump, reply)) | TrySendError::Disconnected((dump, reply)),
                ) => {
                    self.stats.dumps_dropped.fetch_add(1, Relaxed);
                    tracing::error!(reason = %dump.request.reason, events = dump.events.len(), "A flight-recorder dump was dropped: the writer is behind.");
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(AskError::Dropped));
                    }
                }
            }
        }
    }
}

fn write_dumps(writer: &DumpWriter, rx: &Receiver<(Dump, Option<Reply>)>, stats: &RecorderStats) {
    for (dump, reply) in rx {
        let result = writer.write(&dump);
        match &result {
            Ok(written) => {
                stats.dumps_written.fetch_add(1, Relaxed);
                tracing::info!(path = %written.path.display(), events = written.events, reason = %dump.request.reason, "Wrote a flight-recorder dump.");
            }
            Err(error) => {
                stats.dumps_failed.fetch_add(1, Relaxed);
                tracing::error!(error = %crate::telemetry::chain(error), reason = %dump.request.reason, "Writing a flight-recorder dump failed.");
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(result.map_err(|e| AskError::Write(crate::telemetry::chain(&e))));
        }
    }
}
