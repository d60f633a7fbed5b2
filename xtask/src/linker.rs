//! bpf-linker, which links the eBPF crate's LLVM bitcode into one object. It is built from
//! crates.io against Debian's LLVM 22, the LLVM of both eBPF compilers; Debian's default
//! `llvm-config` is LLVM 14, hence the explicit `LLVM_PREFIX`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::{cargo, toolchain::LLVM_MAJOR};

pub const VERSION: &str = "0.13.0";

/// Builds bpf-linker into `<cache>/bpf-linker` unless that copy reports [`VERSION`]; returns
/// the binary's path.
pub fn ensure(cache: &Path) -> Result<PathBuf> {
    let root = cache.join("bpf-linker");
    let binary = root.join("bin/bpf-linker");
    match cargo::tool_version(&binary) {
        Some(version) if version == VERSION => {
            println!(
                "setup: bpf-linker {VERSION} already present at {}",
                binary.display()
            );
            return Ok(binary);
        }
        Some(version) => println!("setup: bpf-linker {version} found, {VERSION} wanted"),
        None => {}
    }
    let llvm = PathBuf::from(format!("/usr/lib/llvm-{LLVM_MAJOR}"));
    if !llvm.join("bin/llvm-config").is_file() {
        bail!(
            "{} has no bin/llvm-config: is llvm-{LLVM_MAJOR}-dev installed?",
            llvm.display()
        );
    }
    println!(
        "setup: building bpf-linker {VERSION} against LLVM {LLVM_MAJOR} into {} (about 70 s)",
        root.display()
    );
    cargo::install(
        &root,
        &cache.join("scratch"),
        &format!("bpf-linker@{VERSION}"),
        |install| {
            install
                .env("LLVM_PREFIX", &llvm)
                .args(["--no-default-features", "--features"])
                .arg(format!("llvm-{LLVM_MAJOR}"));
        },
    )?;
    match cargo::tool_version(&binary) {
        Some(version) if version == VERSION => Ok(binary),
        other => bail!(
            "{} reports version {other:?} after the build, not {VERSION}",
            binary.display()
        ),
    }
}
