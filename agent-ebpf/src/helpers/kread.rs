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

/// Reads two kernel pointers of one struct at `base + a` and `base + b`. When both lie within
/// one 32-byte window, aligned alike, that is one helper call instead of two (each call costs
/// tens of ns); otherwise two reads.
#[inline(always)]
pub fn read_ptr_pair(base: *const u8, a: u32, b: u32) -> (*const u8, *const u8) {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let gap = hi.wrapping_sub(lo);
    if base.is_null() || hi == OFFSET_MISSING || gap >= 32 || gap % 8 != 0 {
        return (read_ptr(base, a), read_ptr(base, b));
    }
    let words: [usize; 4] = read_at(base, lo);
    let far = match gap / 8 {
        0 => words[0],
        1 => words[1],
        2 => words[2],
        _ => words[3],
    } as *const u8;
    let near = words[0] as *const u8;
    if a <= b { (near, far) } else { (far, near) }
}
