//! Submitting records to the ring buffer.
//!
//! A wake-up per record costs several microseconds in a VM (the kernel queues an irq_work,
//! which raises a self-IPI, a VM exit), so records go in with `BPF_RB_NO_WAKEUP` and, while
//! records keep coming, the reader drains on a short timer. A submit forces a wake-up only on
//! two edges, each at most once per drain:
//! - the ring was empty and the reader sleeps until woken ([`READER`] is 1): an idle node
//!   costs no timer wake-ups and its first event is read at once. While the reader drains on
//!   its timer, an empty ring wakes nobody, or every first record after a drain would wake it.
//! - this record takes the backlog across `wakeup_threshold_bytes`: a burst is drained before
//!   the timer, and before the buffer fills. Past the threshold no record wakes the reader
//!   again: it is already awake, and a wake-up per record there cost more than the record.
//!
//! Every failure is counted by kind.

use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use vigil_common::stats::KernelCounter;

use crate::maps::{EVENTS, READER, config, count};

/// Counters of one record kind.
#[derive(Clone, Copy)]
pub struct KindCounters {
    pub submitted: KernelCounter,
    pub full: KernelCounter,
}

/// Flags for a submit of `len` more bytes.
#[inline(always)]
pub fn submit_flags(len: usize) -> u64 {
    let backlog = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let threshold = u64::from(config!(wakeup_threshold_bytes));
    let crosses = backlog < threshold && backlog + len as u64 >= threshold;
    if crosses || (backlog == 0 && READER.get(0).is_some_and(|asleep| *asleep != 0)) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Reserves a fixed-size record, writes `record` into it and submits it; counts a full buffer.
#[inline(always)]
pub fn reserve_submit<T: 'static>(counters: KindCounters, record: T) {
    let flags = submit_flags(size_of::<T>());
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(record);
            entry.submit(flags);
            count(counters.submitted);
        }
        None => count(counters.full),
    }
}

/// Copies an assembled variable-length record into the ring buffer; counts a full buffer.
#[inline(always)]
pub fn output(counters: KindCounters, record: &[u8]) {
    let flags = submit_flags(record.len());
    match EVENTS.output::<[u8]>(record, flags) {
        Ok(()) => count(counters.submitted),
        Err(_) => count(counters.full),
    }
}
