//! Picking a test's own events out of everything the machine does.
//!
//! A pid alone is not an identity (pids are reused, and `pid_max` may be small), so a
//! spawned child is matched by its pid and a start time no earlier than the moment just before
//! it was spawned ([`Spawned::since_ns`](crate::spawn::Spawned::since_ns)); once its first
//! event is found, by its exact [`ProcessKey`].

use vigil::{
    event::{
        CredChange, Detail, Dns, Event, Exec, Exit, File, Fork, Network, Syscall, Task, TcpState,
    },
    process::ProcessKey,
};

/// The task a kernel event is about; `None` for loss events, findings and enforcement.
pub fn task(event: &Event) -> Option<&Task> {
    match &event.detail {
        Detail::Exec(e) => Some(&e.task),
        Detail::Fork(e) => Some(&e.task),
        Detail::Exit(e) => Some(&e.task),
        Detail::Syscall(e) => Some(&e.task),
        Detail::Network(e) => Some(&e.task),
        Detail::File(e) => Some(&e.task),
        Detail::CredChange(e) => Some(&e.task),
        Detail::TcpState(e) => Some(&e.task),
        Detail::Dns(e) => Some(&e.task),
        Detail::Loss(_) | Detail::Finding(_) | Detail::Enforcement(_) => None,
    }
}

pub fn syscall(event: &Event) -> Option<&Syscall> {
    match &event.detail {
        Detail::Syscall(e) => Some(e),
        _ => None,
    }
}

/// Every syscall event of the process `tgid` started at or after `since_ns`, in order.
pub fn syscalls_of(events: &[Event], tgid: u32, since_ns: u64) -> Vec<Syscall> {
    events
        .iter()
        .filter(|e| is_of(e, tgid, since_ns))
        .filter_map(syscall)
        .cloned()
        .collect()
}

/// Every network event of the process `tgid` started at or after `since_ns`, in order.
pub fn network_of(events: &[Event], tgid: u32, since_ns: u64) -> Vec<Network> {
    events
        .iter()
        .filter(|e| is_of(e, tgid, since_ns))
        .filter_map(|e| match &e.detail {
            Detail::Network(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// Every TCP state event of the process `tgid` started at or after `since_ns`, in order.
pub fn tcp_states_of(events: &[Event], tgid: u32, since_ns: u64) -> Vec<TcpState> {
    events
        .iter()
        .filter(|e| is_of(e, tgid, since_ns))
        .filter_map(|e| match &e.detail {
            Detail::TcpState(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// Every file event of the process `tgid` started at or after `since_ns`, in order.
pub fn files_of(events: &[Event], tgid: u32, since_ns: u64) -> Vec<File> {
    events
        .iter()
        .filter(|e| is_of(e, tgid, since_ns))
        .filter_map(|e| match &e.detail {
            Detail::File(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// Every DNS query of the process `tgid` started at or after `since_ns`, in order.
pub fn dns_of(events: &[Event], tgid: u32, since_ns: u64) -> Vec<Dns> {
    events
        .iter()
        .filter(|e| is_of(e, tgid, since_ns))
        .filter_map(|e| match &e.detail {
            Detail::Dns(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// Every credential change of the process `tgid` started at or after `since_ns`, in order.
pub fn cred_changes_of(events: &[Event], tgid: u32, since_ns: u64) -> Vec<CredChange> {
    events
        .iter()
        .filter(|e| is_of(e, tgid, since_ns))
        .filter_map(|e| match &e.detail {
            Detail::CredChange(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub fn exec(event: &Event) -> Option<&Exec> {
    match &event.detail {
        Detail::Exec(e) => Some(e),
        _ => None,
    }
}

pub fn fork(event: &Event) -> Option<&Fork> {
    match &event.detail {
        Detail::Fork(e) => Some(e),
        _ => None,
    }
}

pub fn exit(event: &Event) -> Option<&Exit> {
    match &event.detail {
        Detail::Exit(e) => Some(e),
        _ => None,
    }
}

/// Whether `event` is about the process `tgid` that started at or after `since_ns`
/// (CLOCK_BOOTTIME).
pub fn is_of(event: &Event, tgid: u32, since_ns: u64) -> bool {
    task(event).is_some_and(|t| t.key.tgid == tgid && t.key.start_time_ns >= since_ns)
}

/// Whether `event` is about the process `key`.
pub fn is_of_key(event: &Event, key: ProcessKey) -> bool {
    task(event).is_some_and(|t| t.key == key)
}

/// The first exec event of the process `tgid` started at or after `since_ns`.
pub fn find_exec(events: &[Event], tgid: u32, since_ns: u64) -> Option<Event> {
    events
        .iter()
        .find(|e| exec(e).is_some() && is_of(e, tgid, since_ns))
        .cloned()
}

/// The exit event that ends the process `tgid` started at or after `since_ns`.
pub fn find_group_exit(events: &[Event], tgid: u32, since_ns: u64) -> Option<Event> {
    events
        .iter()
        .find(|e| exit(e).is_some_and(|x| x.group_dead) && is_of(e, tgid, since_ns))
        .cloned()
}

/// The names of the causes of every loss event so far, with their counts.
pub fn loss_causes(events: &[Event]) -> Vec<(&'static str, u64)> {
    events
        .iter()
        .filter_map(|e| match &e.detail {
            Detail::Loss(loss) => Some(loss.counts.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect()
}
