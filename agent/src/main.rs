//! The `vigil` binary: see `cli` for the commands.

mod cli;

/// mimalloc rather than glibc's malloc: the pipeline allocates and frees per event, and glibc
/// spent about a third of its CPU time there (`vigil bench churn`; README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
