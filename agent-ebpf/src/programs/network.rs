//! TCP state changes: classic tracepoint `sock/inet_sock_set_state` (Linux 4.16+; a classic
//! tracepoint because its record carries the addresses and ports, so no `struct sock` offsets
//! are needed). Runs on every TCP state change of the node; emits a [`TcpStateEvent`] only for
//! a connection's close (to CLOSE from ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK or
//! CLOSING) and for the outcome of a connect (SYN_SENT to ESTABLISHED or CLOSE). The entry to
//! SYN_SENT, which runs inside connect(2), records the socket's owner so that later changes,
//! usually in softirq context, are reported for the right process. Capture only.

use core::mem::offset_of;

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
};
use vigil_common::{
    event::{EventKind, Header},
    network::{
        TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
        TCP_LAST_ACK, TCP_STATE_OWNER_KNOWN, TCP_SYN_SENT, TcpStateEvent,
    },
    stats::KernelCounter,
};

use crate::{
    emit::{KindCounters, reserve_submit},
    helpers::{
        kread::Probe,
        task::{self, TaskIds},
    },
    maps::{CONNECT_OUTCOMES, IN_CONNECT, TCP_OWNERS, count},
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

const AF_INET: u16 = 2;
const IPPROTO_TCP: u16 = 6;

/// `tracepoint/sock/inet_sock_set_state`.
#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn network_tcp_state(ctx: TracePointContext) -> u32 {
    // Most changes (8 of a connection's 10) are not reported: the three fields that decide it
    // are loaded straight from the record, and the rest is copied only for those that are.
    let base = ctx.as_ptr().cast::<u8>();
    // SAFETY: loads from the tracepoint's record, at the format's offsets (checked by
    // userspace), which the verifier checks against the record's size.
    let (old, new, protocol) = unsafe {
        (
            base.add(offset_of!(Record, oldstate)).cast::<i32>().read() as u32,
            base.add(offset_of!(Record, newstate)).cast::<i32>().read() as u32,
            base.add(offset_of!(Record, protocol)).cast::<u16>().read(),
        )
    };
    if protocol != IPPROTO_TCP || !interesting(old, new) {
        return 0;
    }
    // SAFETY: the offsets are the format's (checked by userspace); the read is checked.
    let Ok(rec) = (unsafe { ctx.read_at::<Record>(0) }) else {
        count(KernelCounter::ReadKernelFailed);
        return 0;
    };
    if new == TCP_SYN_SENT {
        // Inside connect(2): the current task owns the socket.
        // SAFETY: helper without arguments; the task is only read through probe reads.
        let current = unsafe { bpf_get_current_task() } as *const u8;
        let owner = Owner {
            ids: task::ids::<Probe>(current),
            // SAFETY: helper without arguments.
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        };
        let _ = TCP_OWNERS.insert(rec.skaddr, owner, 0);
        return 0;
    }
    let connect_outcome = old == TCP_SYN_SENT && (new == TCP_ESTABLISHED || new == TCP_CLOSE);
    let owner = TCP_OWNERS.get_ptr(rec.skaddr);
    let (owner, flags) = match owner {
        // SAFETY: a map value, valid for this program's run.
        Some(owner) => (unsafe { *owner }, TCP_STATE_OWNER_KNOWN),
        None => (Owner::default(), 0),
    };
    if new == TCP_CLOSE {
        let _ = TCP_OWNERS.remove(rec.skaddr);
    }
    let (mut saddr, mut daddr) = ([0u8; 16], [0u8; 16]);
    if rec.family == AF_INET {
        saddr[..4].copy_from_slice(&rec.saddr);
        daddr[..4].copy_from_slice(&rec.daddr);
    } else {
        saddr = rec.saddr_v6;
        daddr = rec.daddr_v6;
    }
    let event = TcpStateEvent {
        header: Header {
            // The owner's cgroup, not that of the task the softirq interrupted.
            cgroup_id: owner.cgroup_id,
            ..task::header(EventKind::TcpState, size_of::<TcpStateEvent>(), owner.ids)
        },
        old_state: old,
        new_state: new,
        family: rec.family,
        sport: rec.sport,
        dport: rec.dport,
        protocol: rec.protocol,
        flags,
        _pad: 0,
        saddr,
        daddr,
    };
    if connect_outcome && flags != 0 {
        let thread = (u64::from(owner.ids.tgid) << 32) | u64::from(owner.ids.pid);
        if owner_in_connect(thread) {
            // Decided while its owner is still inside connect(2) (a blocking connect, or any
            // on loopback): the syscall's exit reports it if connect returns EINPROGRESS, and
            // drops it otherwise, since the syscall's own result then says the same.
            let _ = CONNECT_OUTCOMES.insert(thread, event, 0);
            return 0;
        }
    }
    reserve_submit(NETWORK, event);
    0
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

/// At the enter of a connect or bind the syscall hooks kept: marks the thread as inside it. A
/// full map only means an outcome decided inside the syscall is reported at once, before the
/// syscall's own record.
#[inline(always)]
pub fn connect_enter(thread: u64) {
    let _ = IN_CONNECT.insert(thread, 1, 0);
}

/// Whether `thread` is inside a connect-shaped syscall the syscall hooks kept (an address
/// argument copied at enter: connect, or bind, which does not change a socket's state).
#[inline(always)]
fn owner_in_connect(thread: u64) -> bool {
    IN_CONNECT.get_ptr(thread).is_some()
}

/// At the exit of a connect whose outcome was decided inside it: submits the outcome when the
/// syscall returned EINPROGRESS (so it follows the `in_progress` connect), else forgets it.
#[inline(always)]
pub fn connect_exit(thread: u64, in_progress: bool) {
    let _ = IN_CONNECT.remove(thread);
    let Some(outcome) = CONNECT_OUTCOMES.get_ptr(thread) else {
        return;
    };
    if in_progress {
        // SAFETY: a map value, valid for this program's run.
        reserve_submit(NETWORK, unsafe { *outcome });
    }
    let _ = CONNECT_OUTCOMES.remove(thread);
}
