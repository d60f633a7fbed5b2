//! The `vigil` binary: see `cli` for the commands.

mod cli;

/// mimalloc rather than glibc's malloc: the pipeline allocates and frees per event, and glibc
/// spent about a third of its CPU time there (`vigil bench churn`; README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc's `mi_option_t` (the same number in its v2 and v3:
/// retired options keep their places).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `mi_option_allow_thp` of mimalloc v3's `mi_option_t` (mimalloc 3.3.2, libmimalloc-sys
/// 0.1.49).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

fn main() -> std::process::ExitCode {
    // Return freed memory to the system 10 ms after it was freed: with mimalloc's default
    // delay, what start-up freed (loading the eBPF object, compiling policies) stayed
    // resident in an idle agent, 85 MiB after 20 s instead of glibc's 47 (`vigil bench
    // sustained`; the target is 64). At 10 ms: 48-55 MiB. At 0 (at once) as well, but churn's
    // whole path cost about 15% more (page faults of memory returned and taken again).
    // SAFETY: sets an option of the allocator, a plain integer; safe at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    // No transparent huge pages for this process. mimalloc asks for them on its arena
    // (madvise(MADV_HUGEPAGE)), and khugepaged kept collapsing the 2 MiB ranges its purge had
    // thinned back into whole huge pages: an idle agent grew by 7-9 MiB in two minutes
    // (BENCHMARKS.md, "Idle memory"). mimalloc reads MIMALLOC_ALLOW_THP before `main`, so the
    // process's flag is set here (it also covers THP mode `always`), and the option stops the
    // hint on arenas reserved later. Children (only the self-test's helpers) inherit the flag.
    // SAFETY: sets an option of the allocator, a plain integer; safe at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) };
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes only the process's
    // THP flag; the result is ignored (an old kernel without it keeps THP, nothing else).
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    cli::main()
}
