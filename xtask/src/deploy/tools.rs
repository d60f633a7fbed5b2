//! The tools of the deployment checks, installed by `cargo xtask setup`: kubectl from Debian's
//! `kubernetes-client` (for `kubectl kustomize`), unpacked into the cache rather than installed
//! (a machine may already have another `kubectl` package owning /usr/bin/kubectl), and
//! cargo-deb, built from crates.io into the cache like bpf-linker.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{apt::Apt, cargo, cmd};

/// The Debian 12 package, and the version it must report: the renders are compared byte for
/// byte, and other kustomize versions order or quote differently.
const KUBECTL_PACKAGE: &str = "kubernetes-client";
pub const KUBECTL_VERSION: &str = "v1.20.2";
pub const CARGO_DEB_VERSION: &str = "3.8.0";

#[derive(Clone, Debug)]
pub struct Tools {
    pub kubectl: PathBuf,
    pub cargo_deb: PathBuf,
}

pub fn ensure(cache: &Path, apt: &mut Apt) -> Result<Tools> {
    Ok(Tools {
        kubectl: kubectl(cache, apt)?,
        cargo_deb: cargo_deb(cache)?,
    })
}

fn kubectl(cache: &Path, apt: &mut Apt) -> Result<PathBuf> {
    let root = cache.join("kubectl");
    let binary = root.join("usr/bin/kubectl");
    if kubectl_version(&binary).as_deref() == Some(KUBECTL_VERSION) {
        println!(
            "setup: kubectl {KUBECTL_VERSION} already present at {}",
            binary.display()
        );
        return Ok(binary);
    }
    println!(
        "setup: unpacking Debian's {KUBECTL_PACKAGE} into {}",
        root.display()
    );
    let debs = apt.download(&[KUBECTL_PACKAGE], &cache.join("kubectl-deb"))?;
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("cannot empty {}", root.display()))?;
    }
    for deb in &debs {
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
    }
    match kubectl_version(&binary) {
        Some(version) if version == KUBECTL_VERSION => Ok(binary),
        other => bail!(
            "{} reports {other:?}, not {KUBECTL_VERSION}: the committed renders expect that version",
            binary.display()
        ),
    }
}

/// `v1.20.2` from `kubectl version --client`'s `GitVersion:"v1.20.2"`.
fn kubectl_version(binary: &Path) -> Option<String> {
    if !binary.is_file() {
        return None;
    }
    let out = cmd::probe(Command::new(binary).args(["version", "--client"]))?;
    let rest = out.split("GitVersion:\"").nth(1)?;
    rest.split('"').next().map(str::to_owned)
}

fn cargo_deb(cache: &Path) -> Result<PathBuf> {
    let root = cache.join("cargo-deb");
    let binary = root.join("bin/cargo-deb");
    if cargo::tool_version(&binary).as_deref() == Some(CARGO_DEB_VERSION) {
        println!(
            "setup: cargo-deb {CARGO_DEB_VERSION} already present at {}",
            binary.display()
        );
        return Ok(binary);
    }
    println!(
        "setup: building cargo-deb {CARGO_DEB_VERSION} into {} (a few minutes)",
        root.display()
    );
    let spec = format!("cargo-deb@{CARGO_DEB_VERSION}");
    cargo::install(&root, &cache.join("scratch-cargo-deb"), &spec, |_| {})?;
    match cargo::tool_version(&binary) {
        Some(v) if v == CARGO_DEB_VERSION => Ok(binary),
        other => bail!("{} reports {other:?} after the build", binary.display()),
    }
}
