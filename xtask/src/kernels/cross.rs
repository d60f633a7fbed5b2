//! The `vigil` binary for a guest architecture. The host's is the ordinary release build
//! (dynamically linked: the initramfs carries its libraries). Another architecture is built
//! with `--target <triple>`: rustup's standard library for that target, Debian's cross gcc
//! (`gcc-aarch64-linux-gnu`, with its libc6-dev-arm64-cross sysroot) as linker and C compiler
//! (zstd and ring have C parts), and `+crt-static`, so the binary needs nothing in the guest.
//! The eBPF object inside is the same: it is built for bpfel whatever the host is, and its
//! kernel offsets (pt_regs included) come from the guest's BTF at load time.

use std::{path::PathBuf, process::Command};

use anyhow::{Result, bail};

use super::Arch;
use crate::{apt::Apt, cargo, cmd, setup::BuildEnv};

/// Builds `vigil` (release) for `arch` and returns the binary.
pub fn build_vigil(env: &BuildEnv, arch: Arch, apt: &mut Apt) -> Result<PathBuf> {
    let host = if cfg!(target_arch = "x86_64") {
        Arch::X86_64
    } else {
        Arch::Aarch64
    };
    let mut build = cargo::with_env(env);
    build.args(["build", "--release", "--package", "vigil"]);
    let binary = if arch == host {
        println!("test-kernels: building vigil for {}", arch.name());
        cmd::run(&mut build)?;
        cargo::target_dir().join("release/vigil")
    } else {
        let triple = triple(arch);
        println!("test-kernels: cross-building vigil for {triple}");
        ensure_target(triple)?;
        apt.ensure(&[
            (
                "gcc-aarch64-linux-gnu",
                "the linker and C compiler of the aarch64 build (kernel matrix)",
            ),
            // Only recommended by the compiler: without it, C builds find no libc headers.
            (
                "libc6-dev-arm64-cross",
                "the aarch64 libc headers and static libraries (kernel matrix)",
            ),
        ])?;
        let (gcc, ar) = ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ar");
        let key = triple.replace('-', "_");
        build
            .args(["--target", triple])
            .env(format!("CARGO_TARGET_{}_LINKER", key.to_uppercase()), gcc)
            .env(
                format!("CARGO_TARGET_{}_RUSTFLAGS", key.to_uppercase()),
                "-C target-feature=+crt-static",
            )
            .env(format!("CC_{key}"), gcc)
            .env(format!("AR_{key}"), ar);
        cmd::run(&mut build)?;
        cargo::target_dir().join(triple).join("release/vigil")
    };
    if !binary.is_file() {
        bail!("cargo succeeded but {} is missing", binary.display());
    }
    Ok(binary)
}

fn triple(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-unknown-linux-gnu",
        Arch::Aarch64 => "aarch64-unknown-linux-gnu",
    }
}

/// The target's standard library for the toolchain that builds the agent (rustup's).
fn ensure_target(triple: &str) -> Result<()> {
    let installed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if installed.lines().any(|l| l.trim() == triple) {
        return Ok(());
    }
    cmd::run(Command::new("rustup").args(["target", "add", triple]))
}
