//! TCP state changes: classic tracepoint `sock/inet_sock_set_state` (Linux 4.16+; a classic
//! tracepoint because its record carries the addresses and ports, so no `struct sock` offsets
//! are needed). Runs on every TCP state change of the node; emits a [`TcpStateEvent`] only for
//! a connection's close (to CLOSE from ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK or
//! CLOSING) and for the outcome of a connect (SYN_SENT to ESTABLISHED or CLOSE). The entry to
//! SYN_SENT, which runs inside connect(2), records the socket's owner so that later changes,
//! usually in softirq context, are reported for the right process. Capture only.

use core::mem::offset_of;

use aya_ebpf::{EbpfContext, macros::tracepoint, programs::TracePointContext};
use vigil_common::{
    event::EventKind,
    maps::IN_CONNECT_SLOTS,
    network::{
        TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
        TCP_LAST_ACK, TCP_STATE_OWNER_KNOWN, TCP_SYN_SENT, TcpStateEvent,
    },
    stats::KernelCounter,
};

use crate::{
    emit::{KindCounters, reserve_submit},
    helpers::{
        kread::Kernel,
        task::{self, TaskIds},
    },
    maps::{ConnectSlot, IN_CONNECT, TCP_OWNERS},
};

const NETWORK: KindCounters = KindCounters {
    submitted: KernelCounter::SubmittedNetwork,
    full: KernelCounter::RingbufFullNetwork,
};

/// The task that connected a socket, and its cgroup.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Owner {
    pub ids: TaskIds,
    pub cgroup_id: u64,
}

/// The tracepoint's record (`events/sock/inet_sock_set_state/format`), read in one copy.
/// Userspace checks these offsets against the format file before attaching.
#[repr(C)]
#[derive(Clone, Copy)]
struct Record {
    common: u64,
    skaddr: u64,
    oldstate: i32,
    newstate: i32,
    sport: u16,
    dport: u16,
    family: u16,
    protocol: u16,
    saddr: [u8; 4],
    daddr: [u8; 4],
    saddr_v6: [u8; 16],
    daddr_v6: [u8; 16],
}

const _: () =
    assert!(core::mem::offset_of!(Record, oldstate) == vigil_common::network::format::OLDSTATE);
const _: () =
    assert!(core::mem::offset_of!(Record, saddr_v6) == vigil_common::network::format::SADDR_V6);

/// How the owner's task is read at SYN_SENT: plain loads through `bpf_get_current_task_btf`
/// (Linux 5.11+, as is task storage) in the main object, probe reads in the one for kernels
/// without task storage.
#[cfg(feature = "task-storage")]
type Current = crate::helpers::kread::Direct;
#[cfg(not(feature = "task-storage"))]
type Current = crate::helpers::kread::Probe;

const AF_INET: u16 = 2;
const IPPROTO_TCP: u16 = 6;

/// `tracepoint/sock/inet_sock_set_state`.
#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn network_tcp_state(ctx: TracePointContext) -> u32 {
    // Most changes (8 of a connection's 10) are not reported: the three fields that decide it
    // are loaded first, and the rest only for those that are. Every field is a plain load from
    // the record (a `bpf_probe_read_kernel` copy of it was 6-10% of the program's time in the
    // connect storm's profile).
    let base = ctx.as_ptr().cast::<u8>().cast_const();
    let old = field::<i32>(base, offset_of!(Record, oldstate)) as u32;
    let new = field::<i32>(base, offset_of!(Record, newstate)) as u32;
    let protocol: u16 = field(base, offset_of!(Record, protocol));
    if protocol != IPPROTO_TCP || !interesting(old, new) {
        return 0;
    }
    let skaddr: u64 = field(base, offset_of!(Record, skaddr));
    let family: u16 = field(base, offset_of!(Record, family));
    if new == TCP_SYN_SENT {
        // Inside connect(2): the current task owns the socket.
        let current = Current::current_task();
        let owner = Owner {
            ids: task::ids::<Current>(current),
            cgroup_id: task::current_cgroup_id::<Current>(current),
        };
        let _ = TCP_OWNERS.insert(skaddr, owner, 0);
        return 0;
    }
    let connect_outcome = old == TCP_SYN_SENT && (new == TCP_ESTABLISHED || new == TCP_CLOSE);
    let owner = TCP_OWNERS.get_ptr(skaddr);
    let (owner, flags) = match owner {
        // SAFETY: a map value, valid for this program's run.
        Some(owner) => (unsafe { *owner }, TCP_STATE_OWNER_KNOWN),
        None => (Owner::default(), 0),
    };
    if new == TCP_CLOSE {
        let _ = TCP_OWNERS.remove(skaddr);
    }
    let (saddr, daddr) = if family == AF_INET {
        (
            address_v4(base, offset_of!(Record, saddr)),
            address_v4(base, offset_of!(Record, daddr)),
        )
    } else {
        (
            address_v6(base, offset_of!(Record, saddr_v6)),
            address_v6(base, offset_of!(Record, daddr_v6)),
        )
    };
    let event = TcpStateEvent {
        // The owner's cgroup, not that of the task the softirq interrupted.
        header: task::stamp(
            EventKind::TcpState,
            size_of::<TcpStateEvent>(),
            owner.ids,
            owner.cgroup_id,
        ),
        old_state: old,
        new_state: new,
        family,
        sport: field(base, offset_of!(Record, sport)),
        dport: field(base, offset_of!(Record, dport)),
        protocol,
        flags,
        _pad: 0,
        saddr,
        daddr,
    };
    if connect_outcome && flags != 0 {
        let thread = (u64::from(owner.ids.tgid) << 32) | u64::from(owner.ids.pid);
        if defer_outcome(thread, &event) {
            // Decided while its owner is still inside connect(2) (a blocking connect, or any
            // on loopback): the syscall's exit reports it if connect returns EINPROGRESS, and
            // drops it otherwise, since the syscall's own result then says the same.
            return 0;
        }
    }
    reserve_submit(NETWORK, event);
    0
}

/// The record's field at `offset`, a plain load from the context.
#[inline(always)]
fn field<T: Copy>(base: *const u8, offset: usize) -> T {
    // SAFETY: an offset of the format (checked by userspace) at the field's natural alignment
    // in the 8-byte aligned record; the verifier checks it against the record's size.
    unsafe { base.add(offset).cast::<T>().read() }
}

/// An IPv4 address field, in the first four bytes.
#[inline(always)]
fn address_v4(base: *const u8, offset: usize) -> [u8; 16] {
    let mut address = [0u8; 16];
    address[..4].copy_from_slice(&field::<u32>(base, offset).to_ne_bytes());
    address
}

/// An IPv6 address field, as two 8-byte loads.
#[inline(always)]
fn address_v6(base: *const u8, offset: usize) -> [u8; 16] {
    let mut address = [0u8; 16];
    address[..8].copy_from_slice(&field::<u64>(base, offset).to_ne_bytes());
    address[8..].copy_from_slice(&field::<u64>(base, offset + 8).to_ne_bytes());
    address
}

/// Whether a change from `old` to `new` matters: the entry to SYN_SENT (its owner is
/// recorded), a connect's outcome, or a connection's close.
#[inline(always)]
fn interesting(old: u32, new: u32) -> bool {
    new == TCP_SYN_SENT
        || (old == TCP_SYN_SENT && (new == TCP_ESTABLISHED || new == TCP_CLOSE))
        || (new == TCP_CLOSE
            && matches!(
                old,
                TCP_ESTABLISHED
                    | TCP_FIN_WAIT1
                    | TCP_FIN_WAIT2
                    | TCP_CLOSE_WAIT
                    | TCP_LAST_ACK
                    | TCP_CLOSING
            ))
}

/// At the enter of a connect or bind the syscall hooks kept: marks the thread as inside it, in
/// the first of its two slots that is free (or already its own). When another thread inside
/// connect holds each (their ids share both), the first is taken over, as a full map was:
/// that thread's outcome is then reported at once, before its syscall's own record.
#[inline(always)]
pub fn connect_enter(thread: u64) {
    let [first, second] = in_connect_slots(thread);
    let Some(first) = IN_CONNECT.get_ptr_mut(first) else {
        return;
    };
    // SAFETY: map values, valid for this program's run; aligned 8-byte loads and stores.
    unsafe {
        let mut slot = first;
        let holder = (*first).thread;
        if holder != 0 && holder != thread {
            if let Some(second) = IN_CONNECT.get_ptr_mut(second) {
                if (*second).thread == 0 || (*second).thread == thread {
                    slot = second;
                }
            }
        }
        // An outcome left by a thread whose slot was taken over, or that a softirq on another
        // CPU raced at its exit: late, but reported.
        take_outcome(slot, true);
        (*slot).thread = thread;
    }
}

/// The slot `thread` marked at its connect's enter, if it still holds it.
#[inline(always)]
fn held_slot(thread: u64) -> Option<*mut ConnectSlot> {
    let [first, second] = in_connect_slots(thread);
    // SAFETY: map values, valid for this program's run; an aligned 8-byte load each.
    let holds = |slot: *mut ConnectSlot| unsafe { (*slot).thread } == thread;
    match IN_CONNECT.get_ptr_mut(first) {
        Some(slot) if holds(slot) => Some(slot),
        _ => IN_CONNECT.get_ptr_mut(second).filter(|&slot| holds(slot)),
    }
}

/// Keeps the outcome `event` of `thread`'s connect in its slot if `thread` is inside a
/// connect-shaped syscall the syscall hooks kept (an address argument copied at enter:
/// connect, or bind, which does not change a socket's state); false if it is not.
#[inline(always)]
fn defer_outcome(thread: u64, event: &TcpStateEvent) -> bool {
    let Some(slot) = held_slot(thread) else {
        return false;
    };
    // SAFETY: as in `connect_enter`; the outcome is written before it is marked present.
    unsafe {
        (&raw mut (*slot).outcome).write(*event);
        (*slot).has_outcome = 1;
    }
    true
}

/// `thread`'s two slots of [`IN_CONNECT`]: its thread id modulo the slots, and the slot half
/// the array away. Consecutive thread ids (a pool's threads) have distinct first slots.
#[inline(always)]
fn in_connect_slots(thread: u64) -> [u32; 2] {
    let first = (thread as u32) & (IN_CONNECT_SLOTS - 1);
    [first, first ^ (IN_CONNECT_SLOTS / 2)]
}

/// At the exit of a connect or bind kept at enter: frees the thread's slot and submits the
/// outcome decided inside the syscall when it returned EINPROGRESS (so the outcome follows
/// the `in_progress` connect), else forgets it. A slot another thread took over stays its.
#[inline(always)]
pub fn connect_exit(thread: u64, in_progress: bool) {
    let Some(slot) = held_slot(thread) else {
        return;
    };
    // SAFETY: as in `connect_enter`.
    unsafe { (*slot).thread = 0 };
    take_outcome(slot, in_progress);
}

/// Empties `slot`'s outcome, if it holds one, submitting it when `report`.
#[inline(always)]
fn take_outcome(slot: *mut ConnectSlot, report: bool) {
    // SAFETY: as in `connect_enter`.
    unsafe {
        if (*slot).has_outcome == 0 {
            return;
        }
        if report {
            reserve_submit(NETWORK, core::ptr::read(&raw const (*slot).outcome));
        }
        (*slot).has_outcome = 0;
    }
}
