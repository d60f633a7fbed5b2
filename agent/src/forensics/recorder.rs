//! The flight recorder: the last `max_age` / `max_bytes` of enriched events, always on, so
//! that a dump holds what happened *before* a trigger as well as after it.
//!
//! The pipeline task owns it and calls [`Recorder::record`] with each exported batch, as the
//! `Arc`s the API's streams share (the batch is moved into them, not copied), with a size
//! estimate and no encoding. A dump ([`Recorder::trigger`]) copies the `Arc`s of the pre-trigger window,
//! keeps collecting for the post-trigger window, then hands the events to the dump writer's
//! thread: the pipeline never writes a file.

use std::{collections::VecDeque, sync::Arc};

use super::scope::Scope;
use crate::event::{Detail, Event};

#[derive(Clone, Copy, Debug)]
pub struct RecorderLimits {
    pub max_bytes: usize,
    pub max_age_ns: u64,
}

/// Why a dump was asked for, and what it keeps.
#[derive(Clone, Debug)]
pub struct DumpRequest {
    /// Set by the pipeline's recorder stage, to match replies.
    pub id: u64,
    /// What asked: `signal`, `api`, `rule:<name>`.
    pub reason: String,
    pub pre_ns: u64,
    pub post_ns: u64,
    pub scope: Scope,
    /// Written into the capture's header as they are (an operator's reason, who asked).
    pub metadata: Vec<(String, String)>,
}

/// A dump ready to be written: the events of its window that its scope keeps, in order.
#[derive(Debug)]
pub struct Dump {
    pub request: DumpRequest,
    /// CLOCK_BOOTTIME of the trigger.
    pub trigger_ns: u64,
    pub events: Vec<Arc<Event>>,
}

struct Pending {
    dump: Dump,
    until_ns: u64,
}

pub struct Recorder {
    limits: RecorderLimits,
    ring: VecDeque<(Arc<Event>, usize)>,
    bytes: usize,
    pending: Vec<Pending>,
    /// Events that left the ring by age or size, since start.
    evicted: u64,
}

impl Recorder {
    pub fn new(limits: RecorderLimits) -> Self {
        Self {
            limits,
            ring: VecDeque::new(),
            bytes: 0,
            pending: Vec::new(),
            evicted: 0,
        }
    }

    /// Keeps `events` (one exported batch, shared with the API's streams: no copy); returns
    /// the dumps whose post-trigger window ended.
    pub fn record(&mut self, events: &[Arc<Event>], now_ns: u64, done: &mut Vec<Dump>) {
        for event in events {
            for pending in &mut self.pending {
                if event.time_ns <= pending.until_ns
                    && pending.dump.request.scope.learn_and_keep(event)
                {
                    pending.dump.events.push(event.clone());
                }
            }
            let size = approx_bytes(event);
            self.bytes += size;
            self.ring.push_back((event.clone(), size));
        }
        self.expire(now_ns, done);
    }

    /// Starts a dump at `now_ns`: the ring's events within the pre-trigger window that the
    /// scope keeps, then what follows until the post-trigger window ends.
    pub fn trigger(&mut self, request: DumpRequest, now_ns: u64, done: &mut Vec<Dump>) {
        let since = now_ns.saturating_sub(request.pre_ns);
        let mut scope = request.scope.clone();
        // A process-tree scope learns the tree from the events themselves, oldest first.
        let events: Vec<Arc<Event>> = self
            .ring
            .iter()
            .filter(|(e, _)| e.time_ns >= since)
            .filter(|(e, _)| scope.learn_and_keep(e))
            .map(|(e, _)| e.clone())
            .collect();
        let request = DumpRequest { scope, ..request };
        let until_ns = now_ns + request.post_ns;
        self.pending.push(Pending {
            dump: Dump {
                request,
                trigger_ns: now_ns,
                events,
            },
            until_ns,
        });
        self.expire(now_ns, done);
    }

    /// Ages the ring out and releases the dumps that are due; call on every tick too.
    pub fn expire(&mut self, now_ns: u64, done: &mut Vec<Dump>) {
        let oldest = now_ns.saturating_sub(self.limits.max_age_ns);
        while let Some((event, size)) = self.ring.front() {
            if self.bytes <= self.limits.max_bytes && event.time_ns >= oldest {
                break;
            }
            self.bytes -= size;
            self.ring.pop_front();
            self.evicted += 1;
        }
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].until_ns <= now_ns {
                done.push(self.pending.swap_remove(i).dump);
            } else {
                i += 1;
            }
        }
    }

    /// Releases every pending dump now (the agent stops).
    pub fn flush(&mut self, done: &mut Vec<Dump>) {
        done.extend(self.pending.drain(..).map(|p| p.dump));
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// Memory per counted byte, measured: `vigil bench churn` with the recorder on grew RSS by
/// twice the sum of the sizes below (allocator granularity and headers, the ring's own
/// growth, processes kept alive after the process cache let them go).
const MEASURED_OVERHEAD: usize = 2;

/// What keeping `event` costs, roughly: the event, its detail's heap data, and for an exec
/// the new process's strings (other events share their process with it).
pub fn approx_bytes(event: &Event) -> usize {
    MEASURED_OVERHEAD * counted_bytes(event)
}

fn counted_bytes(event: &Event) -> usize {
    const ARC: usize = 16;
    let base = size_of::<Event>() + ARC + event.ancestors.len() * 8;
    let detail = match &event.detail {
        Detail::Exec(e) => {
            // The image is shared with the process, counted below.
            e.filename.len()
                + event.process.as_deref().map_or(0, |p| {
                    size_of_val(p)
                        + p.binary.path.len()
                        + p.cwd.path.len()
                        + p.args.iter().map(|a| a.len() + 24).sum::<usize>()
                })
        }
        Detail::File(f) => f.path.len() + f.new_path.as_ref().map_or(0, Vec::len),
        Detail::Syscall(s) => s.args.len() * 48,
        Detail::Dns(_) => 128,
        Detail::Finding(_) | Detail::Enforcement(_) => 256,
        Detail::Loss(l) => l.counts.len() * 24,
        Detail::Fork(_)
        | Detail::Exit(_)
        | Detail::Network(_)
        | Detail::TcpState(_)
        | Detail::CredChange(_) => 0,
    };
    base + detail
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
