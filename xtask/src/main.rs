//! Vigil's tasks: `cargo xtask <setup|build|run|test|bench|lint|test-kernels|deploy|image|fuzz>`
//! (alias in .cargo/config.toml).
//!
//! `setup` installs what the eBPF build needs (Debian packages, a compiler that builds `core`
//! for bpfel-unknown-none, bpf-linker) and every other task starts with it, then runs cargo
//! with the resulting environment (see `setup::BuildEnv`).

mod agent;
mod apt;
mod cargo;
mod check;
mod cmd;
mod debian_rust;
mod deploy;
mod fuzz;
mod kernels;
mod linker;
mod privilege;
mod privileged_tests;
mod python;
mod setup;
mod toolchain;

use std::{env, ffi::OsString, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Vigil's build, test and bootstrap tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the build needs (idempotent): Debian packages, an eBPF compiler, bpf-linker.
    /// VIGIL_EBPF_COMPILER=nightly|debian forces a compiler; VIGIL_CACHE_DIR moves the cache.
    Setup,
    /// Set up, then build the agent (release unless --debug) and print its path.
    Build {
        /// Build the debug profile.
        #[arg(long)]
        debug: bool,
    },
    /// Build, then run `vigil run ARGS` as root.
    Run {
        /// Arguments for `vigil run` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Set up, then rustfmt, both clippies, unit and pipeline tests, privileged tests (as root),
    /// the kernel matrix (Debian 6.1 and 6.12, x86_64 and aarch64, in QEMU).
    Test {
        /// Skip rustfmt and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Only the unit and pipeline tests (no lint, no root).
        #[arg(long, conflicts_with = "privileged_only")]
        unit_only: bool,
        /// Only the privileged tests (no lint).
        #[arg(long)]
        privileged_only: bool,
        /// Skip the kernel matrix (`test-kernels`: Debian 6.1 and 6.12, x86_64 and aarch64).
        #[arg(long)]
        no_kernels: bool,
    },
    /// Build, then run `vigil bench ARGS` as root.
    Bench {
        /// Arguments for `vigil bench` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Set up, then rustfmt and both clippies (host crates, and the eBPF crate for its target).
    Lint,
    /// Boot stock Debian kernels in QEMU (TCG) and run `vigil selftest` in each: prints the
    /// matrix kernel x arch x check (pass / FAIL / n/s with the reason); fails if a check fails.
    TestKernels {
        /// Kernel series: the newest Debian kernel of each is booted.
        #[arg(long, value_delimiter = ',', default_value = "6.1,6.12")]
        kernels: Vec<String>,
        /// Guest architectures: x86_64, aarch64.
        #[arg(long = "arch", value_delimiter = ',', default_value = "x86_64")]
        arches: Vec<String>,
        /// Seconds a guest may take from boot to power-off.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Also write the report to docs/kernels.md (the README's "Supported kernels").
        #[arg(long)]
        write_docs: bool,
    },
    /// Build, then check the deployment manifests (Kubernetes, systemd); --write first
    /// re-renders deploy/kubernetes/vigil.yaml and the base's copy of the default policies;
    /// --packages then checks the .deb and the container image.
    Deploy {
        #[arg(long)]
        write: bool,
        /// Also build, install and remove the .deb and build and run the image (root).
        #[arg(long)]
        packages: bool,
    },
    /// Build, then build the container image (deploy/Containerfile) with podman.
    Image,
    /// Set up, then run the fuzz targets of `fuzz/` (all, or those named) one at a time.
    Fuzz {
        /// How long each target runs.
        #[arg(long, default_value_t = 180)]
        seconds: u64,
        /// Targets: event_decoder, policy, dns_decoder, api_filter, capture_reader (default: all).
        targets: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let root = cargo::workspace_root();
    env::set_current_dir(root).with_context(|| format!("cannot enter {}", root.display()))?;
    match cli.task {
        Task::Setup => setup::run().map(|_| ExitCode::SUCCESS),
        Task::Build { debug } => agent::build(!debug).map(|_| ExitCode::SUCCESS),
        Task::Run { args } => agent::run_as_root("run", "run", &args),
        Task::Bench { args } => agent::run_as_root("bench", "bench", &args),
        Task::Lint => check::lint(),
        Task::TestKernels {
            kernels,
            arches,
            timeout,
            write_docs,
        } => kernels::run(&kernels::Options {
            kernels,
            arches: arches
                .iter()
                .map(|a| kernels::Arch::parse(a))
                .collect::<Result<_>>()?,
            timeout: std::time::Duration::from_secs(timeout),
            write_docs,
        }),
        Task::Deploy { write, packages } => {
            let env = setup::run()?;
            agent::build_with(&env, true)?;
            if write {
                deploy::write(&env)?;
            }
            deploy::check_manifests(&env)?;
            if packages {
                deploy::check_packages(&env)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Task::Image => {
            let binary = agent::build(true)?;
            deploy::build_image(&binary).map(|()| ExitCode::SUCCESS)
        }
        Task::Fuzz { seconds, targets } => fuzz::run(seconds, &targets),
        Task::Test {
            no_lint,
            unit_only,
            privileged_only,
            no_kernels,
        } => check::test(&check::TestPlan {
            lint: !no_lint && !unit_only && !privileged_only,
            unit: !privileged_only,
            privileged: !unit_only,
            kernels: !no_kernels && !unit_only && !privileged_only,
        }),
    }
}
