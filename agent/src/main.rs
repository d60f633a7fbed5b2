//! The `vigil` binary: see `cli` for the commands.

mod cli;

/// mimalloc rather than glibc's malloc: the pipeline allocates and frees per event, and glibc
/// spent about a third of its CPU time there (`vigil bench churn`; README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc's `mi_option_t` (the same number in its v2 and v3:
/// retired options keep their places).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Return freed memory to the system 10 ms after it was freed: with mimalloc's default
    // delay, what start-up freed (loading the eBPF object, compiling policies) stayed
    // resident in an idle agent, 85 MiB after 20 s instead of glibc's 47 (`vigil bench
    // sustained`; the target is 64). At 10 ms: 48-55 MiB. At 0 (at once) as well, but churn's
    // whole path cost about 15% more (page faults of memory returned and taken again).
    // SAFETY: sets an option of the allocator, a plain integer; safe at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    cli::main()
}
