//! Where a selected syscall's record waits from enter to exit, per thread, two ways:
//! - [`TaskStash`]: the thread's task local storage (Linux 5.11+ for the map, 5.12+ for
//!   tracing programs). The entry is created at the thread's first selected syscall, reused
//!   in place by every later one and freed by the kernel with the task: a syscall costs one
//!   cached lookup, where a hash map costs an update that copies the 1.4 KiB record into a
//!   cold element at enter and a delete at exit (together 40% of the programs' time).
//! - [`HashStash`]: a hash map keyed by pid_tgid, assembled in per-CPU scratch at enter and
//!   copied in; for the raw-tracepoint twins, which run where task storage is refused.
//!
//! A record that could not be kept is counted (`syscall_stash_full`) and its syscall lost.

use aya_ebpf::{
    bindings::BPF_LOCAL_STORAGE_GET_F_CREATE, helpers::generated::bpf_task_storage_get,
};
use vigil_common::stats::KernelCounter;

use super::kread::{Direct, Kernel};
use crate::maps::{SYSCALL_SCRATCH, SYSCALL_STASH, SyscallRecord, TASK_STASH, count};

/// One way of keeping a syscall record per thread, the current one; `key` is its pid_tgid.
pub trait Stash {
    /// Where enter assembles the record; `None` (counted) when there is no room.
    fn slot(key: u64) -> Option<*mut SyscallRecord>;

    /// Keeps the record assembled in `slot` until exit; false (counted) when it could not.
    fn keep(key: u64, record: *mut SyscallRecord) -> bool;

    /// The record enter kept for this thread, if any.
    fn pending(key: u64) -> Option<*mut SyscallRecord>;

    /// Done with the record `pending` returned.
    fn release(key: u64, record: *mut SyscallRecord);
}

/// Task local storage.
pub struct TaskStash;

/// A hash map by pid_tgid.
pub struct HashStash;

/// The current thread's entry. The task is asked for here, not passed in from the start of
/// enter: held across enter's string loops, it tipped the raw twin over Linux 6.1's verifier
/// limit of 1,000,000 instructions (kernel matrix, 1 December 2026).
#[inline(always)]
fn task_storage(flags: u64) -> Option<*mut SyscallRecord> {
    // SAFETY: the current task as a BTF-typed pointer, which the helper requires; it returns
    // null or a value of the map's value type.
    let value = unsafe {
        bpf_task_storage_get(
            (&raw const TASK_STASH).cast_mut().cast(),
            Direct::current_task().cast_mut().cast(),
            core::ptr::null_mut(),
            flags,
        )
    };
    (!value.is_null()).then_some(value.cast())
}

impl Stash for TaskStash {
    #[inline(always)]
    fn slot(_key: u64) -> Option<*mut SyscallRecord> {
        // Created zeroed at the thread's first selected syscall; null when the kernel cannot
        // allocate it (or the storage is busy on this CPU, a recursion).
        let Some(record) = task_storage(u64::from(BPF_LOCAL_STORAGE_GET_F_CREATE)) else {
            count(KernelCounter::SyscallStashFull);
            return None;
        };
        // Not pending until kept: an enter that stops early leaves nothing for exit.
        // SAFETY: the thread's own entry; only this thread writes it.
        unsafe { (*record).pending = 0 };
        Some(record)
    }

    #[inline(always)]
    fn keep(_key: u64, record: *mut SyscallRecord) -> bool {
        // SAFETY: as in `slot`.
        unsafe { (*record).pending = 1 };
        true
    }

    #[inline(always)]
    fn pending(_key: u64) -> Option<*mut SyscallRecord> {
        let record = task_storage(0)?;
        // SAFETY: as in `slot`.
        (unsafe { (*record).pending } != 0).then_some(record)
    }

    #[inline(always)]
    fn release(_key: u64, record: *mut SyscallRecord) {
        // The entry stays with the thread for its next syscall.
        // SAFETY: as in `slot`.
        unsafe { (*record).pending = 0 };
    }
}

impl Stash for HashStash {
    #[inline(always)]
    fn slot(_key: u64) -> Option<*mut SyscallRecord> {
        let record = SYSCALL_SCRATCH.get_ptr_mut(0);
        if record.is_none() {
            count(KernelCounter::ScratchUnavailable);
        }
        record
    }

    #[inline(always)]
    fn keep(key: u64, record: *mut SyscallRecord) -> bool {
        // SAFETY: `record` is this CPU's scratch entry, valid for the program's run; the
        // helper copies it.
        let kept = SYSCALL_STASH.insert(key, unsafe { &*record }, 0).is_ok();
        if !kept {
            count(KernelCounter::SyscallStashFull);
        }
        kept
    }

    #[inline(always)]
    fn pending(key: u64) -> Option<*mut SyscallRecord> {
        SYSCALL_STASH.get_ptr_mut(key)
    }

    #[inline(always)]
    fn release(key: u64, _record: *mut SyscallRecord) {
        let _ = SYSCALL_STASH.remove(key);
    }
}
