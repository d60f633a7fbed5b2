//! Identity of a task: ids, the start time that makes a pid reuse-safe, its parent.

use aya_ebpf::helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns};
use vigil_common::{
    event::{EventKind, Header},
    offsets::OFFSET_MISSING,
};

use super::kread::Kernel;
use crate::maps::offset;

/// Thread id, thread-group id and the group's start time of a `task_struct`.
#[derive(Clone, Copy, Default)]
pub struct TaskIds {
    pub pid: u32,
    pub tgid: u32,
    pub start_time_ns: u64,
}

/// Ids of `task`, read the `K` way. The start time is the group leader's, which every thread
/// shares and which `de_thread` carries over when a non-leader thread execs.
#[inline(always)]
pub fn ids<K: Kernel>(task: *const u8) -> TaskIds {
    let leader = K::ptr(task, offset!(task_group_leader));
    let [pid, tgid] = K::pair_i32(task, offset!(task_pid), offset!(task_tgid));
    TaskIds {
        pid: pid as u32,
        tgid: tgid as u32,
        start_time_ns: K::at::<u64>(leader, offset!(task_start_boottime)),
    }
}

/// Ids of the real parent of `task` (its thread-group id and start time matter).
#[inline(always)]
pub fn parent_ids<K: Kernel>(task: *const u8) -> TaskIds {
    ids::<K>(K::ptr(task, offset!(task_real_parent)))
}

/// A record header for `ids` stamped now, in the cgroup of `task` read the `K` way: its
/// default cgroup's kernfs node id, which is what `bpf_get_current_cgroup_id` returns for the
/// current task (the helper call costs about 100 ns; plain loads a few). Without the id's
/// offset, the helper's answer.
#[inline(always)]
pub fn header_of<K: Kernel>(kind: EventKind, size: usize, ids: TaskIds, task: *const u8) -> Header {
    stamp(kind, size, ids, cgroup_id::<K>(task))
}

/// The cgroup id of `task` (the current one), read as [`header_of`] says.
#[inline(always)]
pub fn cgroup_id<K: Kernel>(task: *const u8) -> u64 {
    if offset!(kernfs_id) == OFFSET_MISSING {
        // SAFETY: helper without arguments, available to tracing programs since 4.18.
        unsafe { bpf_get_current_cgroup_id() }
    } else {
        let css_set = K::ptr(task, offset!(task_cgroups));
        let cgroup = K::ptr(css_set, offset!(css_set_dfl_cgrp));
        K::at::<u64>(K::ptr(cgroup, offset!(cgroup_kn)), offset!(kernfs_id))
    }
}

/// The cgroup id of `current`, the current task: plain loads where `K` has them, else one
/// helper call rather than four probe reads.
#[inline(always)]
pub fn current_cgroup_id<K: Kernel>(current: *const u8) -> u64 {
    if K::PLAIN_LOADS {
        cgroup_id::<K>(current)
    } else {
        // SAFETY: helper without arguments, available to tracing programs since 4.18.
        unsafe { bpf_get_current_cgroup_id() }
    }
}

/// A record header for `ids` stamped now, in the current task's cgroup.
#[inline(always)]
pub fn header(kind: EventKind, size: usize, ids: TaskIds) -> Header {
    // SAFETY: helper without arguments, available to tracing programs since 4.18.
    stamp(kind, size, ids, unsafe { bpf_get_current_cgroup_id() })
}

/// A record header for `ids` stamped now, in the cgroup `cgroup_id`.
#[inline(always)]
pub fn stamp(kind: EventKind, size: usize, ids: TaskIds, cgroup_id: u64) -> Header {
    Header {
        kind: kind as u16,
        _pad: 0,
        size: size as u32,
        // SAFETY: helper without arguments, available to tracing programs since 5.8.
        time_ns: unsafe { bpf_ktime_get_boot_ns() },
        pid: ids.pid,
        tgid: ids.tgid,
        start_time_ns: ids.start_time_ns,
        cgroup_id,
    }
}
