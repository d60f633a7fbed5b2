//! Reads of kernel memory at offsets resolved from BTF by userspace, two ways:
//! - [`Probe`]: `bpf_probe_read_kernel`, a helper call (tens of ns) that works on any address,
//!   in every program type;
//! - [`Direct`]: a plain load, which the verifier turns into a fault-safe one (`PROBE_MEM`)
//!   when the base is a BTF-typed kernel pointer: the arguments of a `tp_btf` program and
//!   every pointer loaded from them. The offsets are constants of the loaded object (read
//!   from `.rodata`, which the verifier sees), so it checks each load against the struct's
//!   BTF: a load must lie within one member, and a pointer member yields the pointee's type.
//!   Not for a base computed backwards (`container_of`: a negative offset is refused) or one
//!   that came from a helper (a plain number to the verifier). A faulting load reads zero,
//!   like a failed probe read, but is not counted in `read_kernel_failed` (nothing tells it
//!   apart from a zero in memory).
//!
//! Code shared by both kinds of program is generic over [`Kernel`].

use aya_ebpf::helpers::{
    bpf_get_current_task, bpf_probe_read_kernel, generated::bpf_get_current_task_btf,
};
use vigil_common::{offsets::OFFSET_MISSING, stats::KernelCounter};

use crate::maps::count;

/// One way of reading kernel memory.
pub trait Kernel {
    /// Whether a read is a plain load (a few ns) rather than a helper call (tens of ns):
    /// where one helper call replaces several reads, [`Probe`] prefers it.
    const PLAIN_LOADS: bool;

    /// The current task, as a base for these reads.
    fn current_task() -> *const u8;

    /// Reads a `T` at `base + offset`; `T::default()` for a null base, a missing offset or a
    /// failed read.
    fn at<T: Default + Copy>(base: *const u8, offset: u32) -> T;

    /// Reads two neighbouring `u32`/`i32` members at `base + a` and `base + b`.
    fn pair_i32(base: *const u8, a: u32, b: u32) -> [i32; 2];

    /// Reads two kernel pointers of one struct at `base + a` and `base + b`.
    fn ptr_pair(base: *const u8, a: u32, b: u32) -> (*const u8, *const u8);

    /// Reads the `u64` members at `base + at[i]`.
    fn words<const N: usize>(base: *const u8, at: [u32; N]) -> [u64; N];

    /// Reads a kernel pointer at `base + offset` (null on failure).
    #[inline(always)]
    fn ptr(base: *const u8, offset: u32) -> *const u8 {
        Self::at::<usize>(base, offset) as *const u8
    }
}

/// `bpf_probe_read_kernel`.
pub struct Probe;

/// Plain loads through BTF-typed pointers (see the module's documentation).
pub struct Direct;

impl Kernel for Probe {
    const PLAIN_LOADS: bool = false;

    #[inline(always)]
    fn current_task() -> *const u8 {
        // SAFETY: helper without arguments; the task is only read through the helper.
        unsafe { bpf_get_current_task() as *const u8 }
    }

    #[inline(always)]
    fn at<T: Default + Copy>(base: *const u8, offset: u32) -> T {
        read_at(base, offset)
    }

    /// One call when the members are neighbours (`b == a + 4`), as `pid` and `tgid` are.
    #[inline(always)]
    fn pair_i32(base: *const u8, a: u32, b: u32) -> [i32; 2] {
        if b == a.wrapping_add(4) {
            read_at::<[i32; 2]>(base, a)
        } else {
            [read_at::<i32>(base, a), read_at::<i32>(base, b)]
        }
    }

    #[inline(always)]
    fn ptr_pair(base: *const u8, a: u32, b: u32) -> (*const u8, *const u8) {
        read_ptr_pair(base, a, b)
    }

    /// One call when the members lie within one 64-byte window, 8-byte aligned alike (the
    /// syscall argument registers of `pt_regs` on x86_64 and arm64); otherwise one each.
    #[inline(always)]
    fn words<const N: usize>(base: *const u8, at: [u32; N]) -> [u64; N] {
        let lo = at.iter().copied().min().unwrap_or(0);
        let in_window = at
            .iter()
            .all(|&o| o >= lo && o - lo < 64 && (o - lo) % 8 == 0);
        if !in_window {
            return at.map(|o| read_at::<u64>(base, o));
        }
        let window: [u64; 8] = read_at(base, lo);
        at.map(|o| match (o - lo) / 8 {
            0 => window[0],
            1 => window[1],
            2 => window[2],
            3 => window[3],
            4 => window[4],
            5 => window[5],
            6 => window[6],
            _ => window[7],
        })
    }
}

impl Kernel for Direct {
    const PLAIN_LOADS: bool = true;

    /// `bpf_get_current_task_btf` (Linux 5.11+): a BTF-typed pointer, unlike
    /// `bpf_get_current_task`'s plain number. A program calling it is refused on older
    /// kernels, where its raw twin is loaded instead.
    #[inline(always)]
    fn current_task() -> *const u8 {
        // SAFETY: helper without arguments.
        unsafe { bpf_get_current_task_btf() as *const u8 }
    }

    #[inline(always)]
    fn at<T: Default + Copy>(base: *const u8, offset: u32) -> T {
        if base.is_null() || offset == OFFSET_MISSING {
            return T::default();
        }
        // SAFETY: only ever called with a BTF-typed kernel pointer as `base`, where the
        // verifier makes the load fault-safe (a fault yields zero) and checks it against the
        // type's members.
        unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize).cast::<T>()) }
    }

    /// Two loads: one 8-byte load across two members is refused on a trusted pointer.
    #[inline(always)]
    fn pair_i32(base: *const u8, a: u32, b: u32) -> [i32; 2] {
        [Self::at::<i32>(base, a), Self::at::<i32>(base, b)]
    }

    #[inline(always)]
    fn ptr_pair(base: *const u8, a: u32, b: u32) -> (*const u8, *const u8) {
        (Self::ptr(base, a), Self::ptr(base, b))
    }

    #[inline(always)]
    fn words<const N: usize>(base: *const u8, at: [u32; N]) -> [u64; N] {
        at.map(|o| Self::at::<u64>(base, o))
    }
}

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
