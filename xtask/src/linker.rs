//! bpf-linker, which links the eBPF crate's LLVM bitcode into one object. It is built from
//! crates.io against Debian's LLVM 22, the LLVM of both eBPF compilers; Debian's default
//! `llvm-config` is LLVM 14, hence the explicit `LLVM_PREFIX`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, cmd, toolchain::LLVM_MAJOR};

pub const VERSION: &str = "0.13.0";

/// Builds bpf-linker into `<cache>/bpf-linker` unless that copy reports [`VERSION`]; returns
/// the binary's path.
pub fn ensure(cache: &Path) -> Result<PathBuf> {
    let root = cache.join("bpf-linker");
    let binary = root.join("bin/bpf-linker");
    match installed_version(&binary) {
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
    let scratch = cache.join("scratch");
    let mut install = cargo::host();
    install
        .env("LLVM_PREFIX", &llvm)
        .args(["install", "--locked", "--force", "--root"])
        .arg(&root)
        .arg("--target-dir")
        .arg(&scratch)
        .arg(format!("bpf-linker@{VERSION}"))
        .args(["--no-default-features", "--features"])
        .arg(format!("llvm-{LLVM_MAJOR}"));
    cmd::run(&mut install).context("building bpf-linker failed")?;
    println!("setup: removing the build folder {}", scratch.display());
    fs::remove_dir_all(&scratch).with_context(|| format!("cannot remove {}", scratch.display()))?;
    match installed_version(&binary) {
        Some(version) if version == VERSION => Ok(binary),
        other => bail!(
            "{} reports version {other:?} after the build, not {VERSION}",
            binary.display()
        ),
    }
}

/// The version `bpf-linker --version` prints (`bpf-linker 0.13.0`), if the binary runs.
fn installed_version(binary: &Path) -> Option<String> {
    if !binary.is_file() {
        return None;
    }
    let out = cmd::probe(Command::new(binary).arg("--version"))?;
    out.split_whitespace().nth(1).map(str::to_owned)
}
