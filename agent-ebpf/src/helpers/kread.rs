//! Reads of kernel memory at offsets resolved from BTF by userspace.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use vigil_common::{offsets::OFFSET_MISSING, stats::KernelCounter};

use crate::maps::count;

/// Reads a `T` at `base + offset`. A missing offset or a failed read is counted and yields
/// `T::default()`: an event with one empty field is better than no event.
#[inline(always)]
pub fn read_at<T: Default>(base: *const u8, offset: u32) -> T {
    if base.is_null() || offset == OFFSET_MISSING {
        return T::default();
    }
    // SAFETY: `bpf_probe_read_kernel` checks the address; a fault is reported, not taken.
    match unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize).cast::<T>()) } {
        Ok(value) => value,
        Err(_) => {
            count(KernelCounter::ReadKernelFailed);
            T::default()
        }
    }
}

/// Reads a kernel pointer at `base + offset` (null on failure).
#[inline(always)]
pub fn read_ptr(base: *const u8, offset: u32) -> *const u8 {
    read_at::<usize>(base, offset) as *const u8
}
