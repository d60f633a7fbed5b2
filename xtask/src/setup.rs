//! `cargo xtask setup`: everything the build needs, installed once and found again in seconds,
//! and the environment that every later cargo command gets.

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result};

use crate::{
    apt::Apt,
    linker,
    toolchain::{self, Toolchain},
};

/// What the agent's build needs from its environment, see `agent/build.rs`.
pub struct BuildEnv {
    pub toolchain: Toolchain,
    /// The bpf-linker binary; its folder goes first on PATH.
    pub linker: PathBuf,
}

impl BuildEnv {
    /// Sets `VIGIL_EBPF_TOOLCHAIN`, puts bpf-linker first on PATH and, for Debian's compiler,
    /// sets `RUSTC_BOOTSTRAP=1` and `LD_LIBRARY_PATH`.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("VIGIL_EBPF_TOOLCHAIN", &self.toolchain.name);
        if let Some(dir) = self.linker.parent() {
            cmd.env("PATH", prepend(dir, "PATH"));
        }
        if self.toolchain.needs_bootstrap() {
            cmd.env("RUSTC_BOOTSTRAP", "1");
        }
        if let Some(dir) = &self.toolchain.library_path {
            cmd.env("LD_LIBRARY_PATH", prepend(dir, "LD_LIBRARY_PATH"));
        }
    }
}

/// `dir`, then the current value of the list variable `var` without `dir`.
fn prepend(dir: &Path, var: &str) -> OsString {
    let current = env::var_os(var).unwrap_or_default();
    let rest = env::split_paths(&current).filter(|p| p != dir);
    env::join_paths(std::iter::once(dir.to_path_buf()).chain(rest)).unwrap_or(current)
}

/// Installs or finds everything, prints what was chosen, and returns the build environment.
pub fn run() -> Result<BuildEnv> {
    let started = Instant::now();
    let cache = cache_dir()?;
    println!("setup: cache folder {}", cache.display());
    let mut apt = Apt::default();
    apt.ensure_packages()?;
    let toolchain = toolchain::ensure(&cache, &mut apt)?;
    let linker = linker::ensure(&cache)?;
    let venv = crate::python::ensure(&cache)?;
    println!("setup: done in {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "setup: eBPF compiler: rustup toolchain `{}` ({:?})",
        toolchain.name, toolchain.kind
    );
    println!("setup:   {}", toolchain.version);
    println!("setup:   sysroot {}", toolchain.sysroot.display());
    if toolchain.needs_bootstrap() {
        println!("setup:   with RUSTC_BOOTSTRAP=1 for -Z build-std=core");
    }
    if let Some(dir) = &toolchain.library_path {
        println!("setup:   with LD_LIBRARY_PATH={}", dir.display());
    }
    println!(
        "setup: bpf-linker {}: {}",
        linker::VERSION,
        linker.display()
    );
    println!("setup: Python venv for the API tests: {}", venv.display());
    Ok(BuildEnv { toolchain, linker })
}

/// `$VIGIL_CACHE_DIR`, else `$XDG_CACHE_HOME/vigil`, else `$HOME/.cache/vigil`; created and
/// made absolute, since the compiler's toolchain link must not depend on the current folder.
pub fn cache_dir() -> Result<PathBuf> {
    let non_empty = |key: &str| {
        env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = non_empty("VIGIL_CACHE_DIR")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|d| d.join("vigil")))
        .or_else(|| non_empty("HOME").map(|d| d.join(".cache/vigil")))
        .context("none of VIGIL_CACHE_DIR, XDG_CACHE_HOME and HOME is set")?;
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::canonicalize(&dir).with_context(|| format!("cannot resolve {}", dir.display()))
}
