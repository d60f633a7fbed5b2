//! A bounded walk of a `struct path` up to its root, crossing mount points.
//!
//! There is no `bpf_d_path` for tracepoints, so the walk follows `d_parent` and, at a mount's
//! root, hops to the mount point in the parent mount (as the kernel's `prepend_path` does).
//! It stops at the root of the task's mount namespace (where a mount is its own parent), so a
//! container's process gets paths as seen inside the container.
//!
//! Output, written into the scratch buffer: components leaf first, each NUL-terminated;
//! userspace reverses them. Nothing written means `/`.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use vigil_common::process::{PATH_COMPONENT_MAX, PATH_DEPTH_MAX, PATH_MAX};

use super::kread::read_ptr;
use crate::maps::{SCRATCH_MASK, offset};

/// Result of [`walk`].
pub struct Walked {
    /// Bytes written at the starting position.
    pub len: usize,
    /// The walk gave up before the root (too deep or longer than [`PATH_MAX`]).
    pub truncated: bool,
}

/// Walks the `struct path` at `path` and writes its components into `buf` at `pos`.
/// `buf` must have at least `SCRATCH_MASK + 1 + PATH_COMPONENT_MAX` bytes.
#[inline(always)]
pub fn walk(buf: *mut u8, pos: usize, path: *const u8) -> Walked {
    let mount_mnt = offset!(mount_mnt);
    let mut dentry = read_ptr(path, offset!(path_dentry));
    let mut vfsmnt = read_ptr(path, offset!(path_mnt));
    let mut mnt = vfsmnt.wrapping_sub(mount_mnt as usize);
    let mut len = 0usize;
    for _ in 0..PATH_DEPTH_MAX {
        if dentry.is_null() || vfsmnt.is_null() {
            return Walked {
                len,
                truncated: false,
            };
        }
        let mnt_root = read_ptr(vfsmnt, offset!(vfsmount_root));
        let parent = read_ptr(dentry, offset!(dentry_parent));
        if dentry == mnt_root || dentry == parent {
            let mnt_parent = read_ptr(mnt, offset!(mount_parent));
            if dentry != mnt_root || mnt_parent == mnt || mnt_parent.is_null() {
                // The root of the namespace, or a dentry detached from any mount.
                return Walked {
                    len,
                    truncated: false,
                };
            }
            dentry = read_ptr(mnt, offset!(mount_mountpoint));
            mnt = mnt_parent;
            vfsmnt = mnt.wrapping_add(mount_mnt as usize);
            continue;
        }
        if len + PATH_COMPONENT_MAX > PATH_MAX {
            return Walked {
                len,
                truncated: true,
            };
        }
        let name = read_ptr(dentry, offset!(dentry_name));
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
            return Walked {
                len,
                truncated: true,
            };
        }
        len += n as usize & (PATH_COMPONENT_MAX * 2 - 1);
        dentry = parent;
    }
    Walked {
        len,
        truncated: true,
    }
}
