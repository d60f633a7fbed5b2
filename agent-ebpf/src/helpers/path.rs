//! Bounded walks that write a path as components, leaf first, each NUL-terminated, into the
//! scratch buffer (userspace reverses them; nothing written means `/`):
//! - [`walk`]: a `struct path` up to its root, crossing mount points. There is no `bpf_d_path`
//!   for tracepoints, so it follows `d_parent` and, at a mount's root, hops to the mount point
//!   in the parent mount (as the kernel's `prepend_path` does). It stops at the root of the
//!   task's mount namespace (where a mount is its own parent), so a container's process gets
//!   paths as seen inside the container.
//! - [`walk_cgroup`]: a cgroup's kernfs node up to the hierarchy's root.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use vigil_common::process::{CGROUP_DEPTH_MAX, PATH_COMPONENT_MAX, PATH_DEPTH_MAX, PATH_MAX};

use super::{
    kread::{Kernel, read_ptr, read_ptr_pair},
    opaque::opaque,
};
use crate::maps::{SCRATCH_MASK, SCRATCH_WALK_LEN, offset};

/// Result of a walk.
pub struct Walked {
    /// Bytes written at the starting position.
    pub len: usize,
    /// The walk gave up before the root (too deep, longer than [`PATH_MAX`], unreadable).
    pub truncated: bool,
}

/// Appends the NUL-terminated kernel string at `name` as one component at `buf[pos + len]`;
/// returns the new length, or `None` when the budget is spent or the read failed.
#[inline(always)]
fn push_component(buf: *mut u8, pos: usize, len: usize, name: *const u8) -> Option<usize> {
    if len + PATH_COMPONENT_MAX > PATH_MAX {
        return None;
    }
    let at = (pos + len) & SCRATCH_MASK;
    // SAFETY: `at <= SCRATCH_MASK` and the buffer has PATH_COMPONENT_MAX bytes past it;
    // the helper checks the source address and NUL-terminates within `size`.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            buf.wrapping_add(at).cast(),
            PATH_COMPONENT_MAX as u32,
            name.cast(),
        )
    };
    if n <= 0 {
        return None;
    }
    Some(len + (n as usize & (PATH_COMPONENT_MAX * 2 - 1)))
}

/// Walks the `struct path` at `path` and writes its components into `buf` at `pos`.
/// `buf` is the per-CPU scratch buffer (`SCRATCH_WALK_LEN` is used).
#[inline(always)]
pub fn walk(buf: *mut u8, pos: usize, path: *const u8) -> Walked {
    let mount_mnt = offset!(mount_mnt);
    let mut dentry = read_ptr(path, offset!(path_dentry));
    let mut vfsmnt = read_ptr(path, offset!(path_mnt));
    let mut mnt = vfsmnt.wrapping_sub(mount_mnt as usize);
    let mut mnt_root = read_ptr(vfsmnt, offset!(vfsmount_root));
    let mut len = 0usize;
    for _ in 0..PATH_DEPTH_MAX {
        if dentry.is_null() || vfsmnt.is_null() {
            return Walked {
                len,
                truncated: false,
            };
        }
        let (parent, name) = read_ptr_pair(dentry, offset!(dentry_parent), offset!(dentry_name));
        if dentry == mnt_root || dentry == parent {
            if dentry != mnt_root {
                // A dentry that is its own parent without being a mount root: a pseudo file
                // (memfd, anonymous inode) or one cut from its tree. Its name is the path,
                // as in the kernel's d_path (`/memfd:name`).
                let len = push_component(buf, pos, len, name).unwrap_or(len);
                return Walked {
                    len,
                    truncated: false,
                };
            }
            let mnt_parent = read_ptr(mnt, offset!(mount_parent));
            if mnt_parent == mnt || mnt_parent.is_null() {
                // The root of the namespace.
                return Walked {
                    len,
                    truncated: false,
                };
            }
            dentry = read_ptr(mnt, offset!(mount_mountpoint));
            mnt = mnt_parent;
            vfsmnt = mnt.wrapping_add(mount_mnt as usize);
            mnt_root = read_ptr(vfsmnt, offset!(vfsmount_root));
            continue;
        }
        match push_component(buf, pos, len, name) {
            // Opaque: one verifier state per step, not one per step and length so far.
            Some(new_len) => len = opaque(walk_len_slot(buf), new_len),
            None => {
                return Walked {
                    len,
                    truncated: true,
                };
            }
        }
        dentry = parent;
    }
    Walked {
        len,
        truncated: true,
    }
}

/// The slot where a walk keeps its length between steps (see `helpers::opaque`).
#[inline(always)]
fn walk_len_slot(buf: *mut u8) -> *mut u64 {
    buf.wrapping_add(SCRATCH_WALK_LEN).cast()
}

/// Walks the cgroup v2 hierarchy from the current task's default cgroup up to the root and
/// writes its path components into `buf` (the scratch buffer, as for [`walk`]) at `pos`.
/// Every step goes forward from `task` (no `container_of`), so the reads can be `Direct`.
#[inline(always)]
pub fn walk_cgroup<K: Kernel>(buf: *mut u8, pos: usize, task: *const u8) -> Walked {
    let css_set = K::ptr(task, offset!(task_cgroups));
    let cgroup = K::ptr(css_set, offset!(css_set_dfl_cgrp));
    let mut kn = K::ptr(cgroup, offset!(cgroup_kn));
    let mut len = 0usize;
    for _ in 0..CGROUP_DEPTH_MAX {
        let (parent, name) = K::ptr_pair(kn, offset!(kernfs_parent), offset!(kernfs_name));
        if kn.is_null() || parent.is_null() {
            // The hierarchy's root has no parent and no name of its own in the path.
            return Walked {
                len,
                truncated: false,
            };
        }
        match push_component(buf, pos, len, name) {
            // Opaque: one verifier state per step, not one per step and length so far.
            Some(new_len) => len = opaque(walk_len_slot(buf), new_len),
            None => {
                return Walked {
                    len,
                    truncated: true,
                };
            }
        }
        kn = parent;
    }
    let root_reached = K::ptr(kn, offset!(kernfs_parent)).is_null();
    Walked {
        len,
        truncated: !root_reached,
    }
}
