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
use crate::maps::{SCRATCH_MASK, SCRATCH_WALK_LEN, SCRATCH_WALK_MNT, SCRATCH_WALK_STEPS, offset};

/// Result of a walk.
pub struct Walked {
    /// Bytes written at the starting position.
    pub len: usize,
    /// The walk gave up before the root (too deep, longer than [`PATH_MAX`], unreadable).
    pub truncated: bool,
}

impl Walked {
    /// Reached the root with `len` bytes written.
    #[inline(always)]
    fn whole(len: usize) -> Self {
        Self {
            len,
            truncated: false,
        }
    }

    /// Gave up before the root with `len` bytes written.
    #[inline(always)]
    fn cut(len: usize) -> Self {
        Self {
            len,
            truncated: true,
        }
    }
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

/// One step of a walk: appends `name` (see [`push_component`]) and passes the new length
/// through the walk's slot, so that the verifier keeps one state per step, not one per step
/// and length so far (see `helpers::opaque`). `None`: the walk is cut here.
#[inline(always)]
fn step(buf: *mut u8, pos: usize, len: usize, name: *const u8) -> Option<usize> {
    push_component(buf, pos, len, name).map(|new_len| opaque(walk_len_slot(buf), new_len))
}

/// Walks the `struct path` at `base + at` (a member of the struct at `base`) and writes its
/// components into `buf` at `pos`. `buf` is the per-CPU scratch buffer (its walk slots are
/// used). A null `base` walks nothing: checked before the member's offset is added, since a
/// null pointer plus an offset is a number the verifier refuses to load from.
///
/// Within the path's own mount every read is a `K` read (plain loads when `path` lies in a
/// BTF-typed struct); most paths never leave it. At the mount's root the walk hops to the
/// mount point in the parent mount, which means going from a `vfsmount` back to its
/// `struct mount` (`container_of`); from there on [`walk_mounts`] reads with the helper.
#[inline(always)]
pub fn walk<K: Kernel>(buf: *mut u8, pos: usize, base: *const u8, at: u32) -> Walked {
    if base.is_null() {
        return Walked::whole(0);
    }
    let path = base.wrapping_add(at as usize);
    let (dentry_at, mnt_at) = (offset!(path_dentry), offset!(path_mnt));
    let (mut dentry, vfsmnt) = (K::ptr(path, dentry_at), K::ptr(path, mnt_at));
    let mnt_root = K::ptr(vfsmnt, offset!(vfsmount_root));
    let mut len = 0usize;
    for depth in 0..PATH_DEPTH_MAX {
        if dentry.is_null() || vfsmnt.is_null() {
            return Walked::whole(len);
        }
        let (parent, name) = K::ptr_pair(dentry, offset!(dentry_parent), offset!(dentry_name));
        if dentry == mnt_root {
            let mnt = vfsmnt.wrapping_sub(offset!(mount_mnt) as usize);
            return walk_mounts(buf, pos, len, mnt, depth);
        }
        if dentry == parent {
            return pseudo_file(buf, pos, len, name);
        }
        let Some(new_len) = step(buf, pos, len, name) else {
            return Walked::cut(len);
        };
        len = new_len;
        dentry = parent;
    }
    Walked::cut(len)
}

/// A dentry that is its own parent without being a mount root: a pseudo file (memfd,
/// anonymous inode) or one cut from its tree. Its name is the path, as in the kernel's
/// d_path (`/memfd:name`).
#[inline(always)]
fn pseudo_file(buf: *mut u8, pos: usize, len: usize, name: *const u8) -> Walked {
    Walked::whole(push_component(buf, pos, len, name).unwrap_or(len))
}

/// Goes on with [`walk`] from the root of mount `mnt` (a `struct mount`), `len` bytes and
/// `steps` steps into the walk, crossing mount points up to the root of the namespace (where
/// a mount is its own parent). Every read is a helper call, and `mnt` and the counts pass
/// through map memory first, so the verifier sees numbers: one state for every way of
/// getting here.
#[inline(always)]
fn walk_mounts(buf: *mut u8, pos: usize, len: usize, mnt: *const u8, steps: usize) -> Walked {
    let mount_mnt = offset!(mount_mnt);
    let mut mnt = opaque(walk_mnt_slot(buf), mnt as usize) as *const u8;
    let steps = opaque(walk_steps_slot(buf), steps);
    let mut len = opaque(walk_len_slot(buf), len);
    let mut dentry = core::ptr::null();
    let mut mnt_root = core::ptr::null();
    // Each walk arrives at the root of a mount, and most paths end there: the first step
    // reads the mount's parent and mount point (one read) and is done at the namespace root.
    let mut at_mount_root = true;
    for depth in 0..PATH_DEPTH_MAX {
        if steps + depth >= PATH_DEPTH_MAX {
            break;
        }
        if mnt.is_null() {
            break;
        }
        if at_mount_root {
            let (mnt_parent, mountpoint) =
                read_ptr_pair(mnt, offset!(mount_parent), offset!(mount_mountpoint));
            if mnt_parent == mnt || mnt_parent.is_null() {
                // The root of the namespace.
                return Walked::whole(len);
            }
            dentry = mountpoint;
            mnt = mnt_parent;
            mnt_root = read_ptr(mnt.wrapping_add(mount_mnt as usize), offset!(vfsmount_root));
            at_mount_root = false;
            continue;
        }
        if dentry.is_null() {
            return Walked::whole(len);
        }
        let (parent, name) = read_ptr_pair(dentry, offset!(dentry_parent), offset!(dentry_name));
        if dentry == mnt_root {
            at_mount_root = true;
            continue;
        }
        if dentry == parent {
            return pseudo_file(buf, pos, len, name);
        }
        let Some(new_len) = step(buf, pos, len, name) else {
            return Walked::cut(len);
        };
        len = new_len;
        dentry = parent;
    }
    Walked::cut(len)
}

/// The slot where a walk keeps its length between steps (see `helpers::opaque`).
#[inline(always)]
fn walk_len_slot(buf: *mut u8) -> *mut u64 {
    buf.wrapping_add(SCRATCH_WALK_LEN).cast()
}

/// The slot where a walk hands its mount to [`walk_mounts`].
#[inline(always)]
fn walk_mnt_slot(buf: *mut u8) -> *mut u64 {
    buf.wrapping_add(SCRATCH_WALK_MNT).cast()
}

/// The slot where a walk hands its step count to [`walk_mounts`].
#[inline(always)]
fn walk_steps_slot(buf: *mut u8) -> *mut u64 {
    buf.wrapping_add(SCRATCH_WALK_STEPS).cast()
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
            return Walked::whole(len);
        }
        let Some(new_len) = step(buf, pos, len, name) else {
            return Walked::cut(len);
        };
        len = new_len;
        kn = parent;
    }
    let root_reached = K::ptr(kn, offset!(kernfs_parent)).is_null();
    Walked {
        len,
        truncated: !root_reached,
    }
}
