//! Vigil's kernel side: every program, map and global of the eBPF object.
//!
//! Flow: a hook (`programs/`) reads what it needs through `helpers/`, assembles a wire record
//! from `vigil_common`, and hands it to `emit`, which submits it to the one ring buffer
//! without a wake-up (the reader polls) and counts every loss in `VIGIL_STATS`.
#![no_std]
#![no_main]

mod emit;
mod helpers;
mod maps;
mod programs;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path that could get here.
    loop {}
}

/// GPL-compatible licence, required for the tracing helpers the programs call.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
