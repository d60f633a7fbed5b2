//! Submitting records to the ring buffer.
//!
//! A wake-up per record costs several microseconds in a VM, so records go in with
//! `BPF_RB_NO_WAKEUP` and, while records keep coming, the reader drains on a short timer. A
//! submit forces a wake-up in two cases: the ring was empty (the reader has caught up and may
//! be asleep: an idle node costs no timer wake-ups and its first event is read at once; at
//! most one forced wake-up per drain), or the backlog passed `wakeup_threshold_bytes` (a burst
//! is drained before the buffer fills). Every failure is counted by kind.

use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use vigil_common::stats::KernelCounter;

use crate::maps::{EVENTS, config, count};

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
    let threshold: u32 = config!(wakeup_threshold_bytes);
    if backlog == 0 || backlog + len as u64 >= threshold as u64 {
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
