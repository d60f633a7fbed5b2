//! `cargo xtask build|run|bench`: the agent binary, built with the build environment and run
//! as root.

use std::{
    ffi::OsString,
    os::unix::process::ExitStatusExt as _,
    path::PathBuf,
    process::{ExitCode, ExitStatus},
};

use anyhow::{Result, bail};

use crate::{cargo, cmd, privilege, setup};

/// Runs setup, builds the `vigil` package and returns the binary's path.
pub fn build(release: bool) -> Result<PathBuf> {
    build_with(&setup::run()?, release)
}

/// Builds the `vigil` package with an environment already set up.
pub fn build_with(env: &setup::BuildEnv, release: bool) -> Result<PathBuf> {
    let profile = if release { "release" } else { "debug" };
    println!("build: building the agent ({profile})");
    let mut build = cargo::with_env(env);
    build.args(["build", "--package", "vigil"]);
    if release {
        build.arg("--release");
    }
    cmd::run(&mut build)?;
    let binary = cargo::target_dir().join(profile).join("vigil");
    if !binary.is_file() {
        bail!("cargo succeeded but {} is missing", binary.display());
    }
    println!("build: the agent is at {}", binary.display());
    Ok(binary)
}

/// Builds the release agent and runs `vigil <subcommand> <args>` as root, exiting as it does.
pub fn run_as_root(who: &str, subcommand: &str, args: &[OsString]) -> Result<ExitCode> {
    let binary = build(true)?;
    println!("{who}: running `vigil {subcommand}` as root");
    let mut run = privilege::root_command(who, &binary, &privilege::forwarded_env())?;
    run.arg(subcommand).args(args);
    let status = cmd::status(&mut run)?;
    println!("{who}: vigil {subcommand} ended: {status}");
    Ok(exit_code(status))
}

/// The exit code a shell would report for `status`: its code, or 128 + the killing signal.
pub fn exit_code(status: ExitStatus) -> ExitCode {
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}
