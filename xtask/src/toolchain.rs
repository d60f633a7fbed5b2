//! The compiler for the eBPF crate. Building for bpfel-unknown-none means building `core` from
//! source (`-Z build-std=core`), so the compiler must accept unstable flags and ship its own
//! library source. Two do here: rustup's nightly with rust-src, or Debian's rustc-web with
//! `RUSTC_BOOTSTRAP=1`, unpacked into the cache and linked as a rustup toolchain so that
//! aya-build's `rustup run <name> cargo` finds it.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{apt::Apt, cmd, debian_rust};

/// The LLVM major that bpf-linker is built against; the compiler's must match, since
/// bpf-linker reads the compiler's LLVM bitcode.
pub const LLVM_MAJOR: u32 = 22;

/// Forces one compiler: `nightly` or `debian`.
const FORCE_VAR: &str = "VIGIL_EBPF_COMPILER";
const NIGHTLY: &str = "nightly";
/// rustup may hang instead of failing on a machine without its download server.
const RUSTUP_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nightly,
    Debian,
}

/// A compiler that can build the eBPF crate, as rustup knows it.
pub struct Toolchain {
    pub kind: Kind,
    /// The name given to `rustup run`.
    pub name: String,
    /// The first line of `rustc -vV`.
    pub version: String,
    pub sysroot: PathBuf,
    /// A folder of shared libraries the compiler loads (Debian's only).
    pub library_path: Option<PathBuf>,
}

impl Toolchain {
    /// Whether unstable flags must be unlocked with `RUSTC_BOOTSTRAP=1`.
    pub fn needs_bootstrap(&self) -> bool {
        self.kind == Kind::Debian
    }
}

/// Finds or installs a compiler, preferring rustup nightly, unless `VIGIL_EBPF_COMPILER`
/// forces one.
pub fn ensure(cache: &Path, apt: &mut Apt) -> Result<Toolchain> {
    match forced()? {
        Some(Kind::Nightly) => {
            println!("setup: {FORCE_VAR}=nightly: using rustup nightly, no fallback");
            nightly().context("rustup nightly cannot build the eBPF crate here")
        }
        Some(Kind::Debian) => {
            println!("setup: {FORCE_VAR}=debian: using Debian's rustc-web");
            debian(cache, apt)
        }
        None => nightly().or_else(|err| {
            println!("setup: rustup nightly is not usable: {err:#}");
            println!("setup: falling back to Debian's rustc-web");
            debian(cache, apt)
        }),
    }
}

fn forced() -> Result<Option<Kind>> {
    match env::var(FORCE_VAR).as_deref() {
        Err(_) | Ok("") => Ok(None),
        Ok("nightly") => Ok(Some(Kind::Nightly)),
        Ok("debian") => Ok(Some(Kind::Debian)),
        Ok(other) => bail!("{FORCE_VAR}={other}: expected `nightly` or `debian`"),
    }
}

fn nightly() -> Result<Toolchain> {
    const NEEDED: [&str; 2] = ["rust-src", "clippy"];
    let mut list = Command::new("rustup");
    list.args(["component", "list", "--installed", "--toolchain", NIGHTLY]);
    match cmd::probe(&mut list) {
        None => {
            println!(
                "setup: rustup nightly is not installed; installing it with rust-src and clippy"
            );
            let mut install = Command::new("rustup");
            install.args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]);
            for component in NEEDED {
                install.args(["-c", component]);
            }
            cmd::run_with_timeout(&mut install, RUSTUP_TIMEOUT)?;
        }
        Some(installed) => {
            let has = |c: &str| {
                installed
                    .lines()
                    .any(|l| l == c || l.strip_prefix(c).is_some_and(|r| r.starts_with('-')))
            };
            let missing: Vec<&str> = NEEDED.into_iter().filter(|c| !has(c)).collect();
            if missing.is_empty() {
                println!("setup: rustup nightly has {}", NEEDED.join(" and "));
            } else {
                println!("setup: adding {} to rustup nightly", missing.join(" and "));
                let mut add = Command::new("rustup");
                add.args(["component", "add", "--toolchain", NIGHTLY])
                    .args(&missing);
                cmd::run_with_timeout(&mut add, RUSTUP_TIMEOUT)?;
            }
        }
    }
    describe(Kind::Nightly, NIGHTLY, None)
}

fn debian(cache: &Path, apt: &mut Apt) -> Result<Toolchain> {
    let unpacked = debian_rust::ensure(cache, apt)?;
    describe(
        Kind::Debian,
        debian_rust::TOOLCHAIN,
        Some(unpacked.library_path),
    )
}

/// Asks the toolchain for its version and sysroot, and checks that its LLVM matches
/// bpf-linker's and that `-Z build-std=core` will find the library source.
fn describe(kind: Kind, name: &str, library_path: Option<PathBuf>) -> Result<Toolchain> {
    let rustc = |args: &[&str]| {
        let mut cmd = Command::new("rustup");
        cmd.args(["run", name, "rustc"]).args(args);
        if let Some(dir) = &library_path {
            cmd.env("LD_LIBRARY_PATH", dir);
        }
        cmd::output(&mut cmd)
    };
    let verbose = rustc(&["-vV"])?;
    let version = verbose.lines().next().unwrap_or_default().to_owned();
    let llvm = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .with_context(|| format!("`rustc -vV` of {name} names no LLVM version"))?;
    let major: u32 = llvm
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("cannot read the LLVM version `{llvm}` of {name}"))?;
    if major != LLVM_MAJOR {
        bail!("{name} uses LLVM {llvm}, but bpf-linker is built against LLVM {LLVM_MAJOR}");
    }
    let sysroot = PathBuf::from(rustc(&["--print", "sysroot"])?.trim());
    let library = sysroot.join("lib/rustlib/src/rust/library");
    if !library.join("core/Cargo.toml").is_file() {
        bail!(
            "{name} has no library source at {}: `-Z build-std=core` would fail",
            library.display()
        );
    }
    println!(
        "setup: {name} is {version} (LLVM {llvm}), library source at {}",
        library.display()
    );
    Ok(Toolchain {
        kind,
        name: name.to_owned(),
        version,
        sysroot,
        library_path,
    })
}
