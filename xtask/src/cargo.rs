//! Cargo invocations: the host cargo that runs xtask, and the eBPF toolchain's cargo through
//! `rustup run`, each with the build environment applied.

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::{cmd, setup::BuildEnv};

/// The workspace root (xtask's parent folder); xtask makes it the current folder at start.
pub fn workspace_root() -> &'static Path {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask)
}

/// Where cargo puts its output: `CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// The cargo that runs xtask (`$CARGO`), without the build environment.
pub fn host() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

/// The host cargo with the build environment: for anything that builds the agent.
pub fn with_env(build: &BuildEnv) -> Command {
    let mut cmd = host();
    build.apply(&mut cmd);
    cmd
}

/// The eBPF toolchain's cargo (`rustup run <toolchain> cargo`) with the build environment.
pub fn ebpf(build: &BuildEnv) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", &build.toolchain.name, "cargo"]);
    build.apply(&mut cmd);
    cmd
}

/// `cargo install --locked --force --root <root> --target-dir <scratch> <spec>`, with what
/// `configure` adds (features, environment); the scratch folder is removed afterwards.
pub fn install(
    root: &Path,
    scratch: &Path,
    spec: &str,
    configure: impl FnOnce(&mut Command),
) -> Result<()> {
    let mut install = host();
    install
        .args(["install", "--locked", "--force", "--root"])
        .arg(root)
        .arg("--target-dir")
        .arg(scratch)
        .arg(spec);
    configure(&mut install);
    cmd::run(&mut install).with_context(|| format!("building {spec} failed"))?;
    println!("setup: removing the build folder {}", scratch.display());
    std::fs::remove_dir_all(scratch).with_context(|| format!("cannot remove {}", scratch.display()))
}

/// The version a tool prints as `<name> <version>` for `--version`, if the binary runs.
pub fn tool_version(binary: &Path) -> Option<String> {
    if !binary.is_file() {
        return None;
    }
    let out = cmd::probe(Command::new(binary).arg("--version"))?;
    out.split_whitespace().nth(1).map(str::to_owned)
}
