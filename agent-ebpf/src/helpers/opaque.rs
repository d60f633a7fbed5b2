//! Hiding a value's range from the verifier, so that it stops telling states apart by it.
//!
//! The verifier follows every path through a program and keeps, for each register that
//! decides a memory access, the range of values it can hold. Two paths that reach the same
//! instruction with different ranges are verified separately. After a path walk, the write
//! position has a different range for every way the walk can end, and the walk that follows
//! is verified once for each: Linux 6.1 gives up at 1,000,000 instructions ("BPF program is
//! too large"); 6.12 prunes more and accepts it. A value stored to map memory and loaded back
//! is unknown to the verifier (it tracks the stack, not map values), so every path continues
//! from one state. Every access is masked (`SCRATCH_MASK`) or checked against a constant
//! budget anyway, which is what keeps it in bounds.

/// Returns `value`, passed through the 8-byte map slot at `slot` so that the verifier sees
/// an unknown scalar. `slot` must point to 8 writable, 8-byte-aligned bytes of a map value
/// that nothing else uses while the program runs (per-CPU scratch: programs on one CPU do
/// not interleave).
#[inline(always)]
pub fn opaque(slot: *mut u64, value: usize) -> usize {
    // SAFETY: the caller gives a valid, aligned slot. Volatile so that the compiler keeps the
    // store and the load, which is what the verifier must see.
    unsafe {
        slot.write_volatile(value as u64);
        slot.read_volatile() as usize
    }
}
