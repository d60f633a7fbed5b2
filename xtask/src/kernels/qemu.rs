//! QEMU from Debian's packages, unpacked into the cache rather than installed: installing
//! bookworm's qemu-system-x86/-arm (7.2) would remove the machine's newer qemu-utils. The
//! packages to fetch are those `apt-get install -s` says an install would add; the machine's
//! own libraries cover the rest.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Result, bail};

use super::Arch;
use crate::{apt::Apt, cmd};

/// An unpacked QEMU for one guest architecture.
pub struct Qemu {
    root: PathBuf,
    binary: PathBuf,
}

/// The QEMU system emulator for `arch`, unpacked in the cache (fetched on first use).
pub fn ensure(cache: &Path, arch: Arch, apt: &mut Apt) -> Result<Qemu> {
    let package = arch.qemu_package();
    let base = cache.join("qemu").join(package);
    let root = base.join("root");
    let binary = root.join("usr/bin").join(arch.qemu_binary());
    if base.join("complete").is_file() && binary.is_file() {
        println!("test-kernels: {package} is unpacked in {}", root.display());
    } else {
        unpack(&base, package, apt)?;
    }
    let qemu = Qemu { root, binary };
    let version = cmd::output(qemu.command().arg("--version"))?;
    println!(
        "test-kernels: {}",
        version.lines().next().unwrap_or_default()
    );
    Ok(qemu)
}

fn unpack(base: &Path, package: &str, apt: &mut Apt) -> Result<()> {
    println!(
        "test-kernels: unpacking {package} and its dependencies into {}",
        base.display()
    );
    let names = simulated_installs(package)?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let debs = apt.download(&refs, &base.join("debs"))?;
    let partial = base.join("root.partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    fs::create_dir_all(&partial)?;
    for deb in &debs {
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial))?;
    }
    let root = base.join("root");
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    fs::rename(&partial, &root)?;
    fs::write(base.join("complete"), names.join("\n") + "\n")?;
    fs::remove_dir_all(base.join("debs")).ok();
    Ok(())
}

/// What `apt-get install -s --no-install-recommends PACKAGE` would add (`Inst NAME ...`).
fn simulated_installs(package: &str) -> Result<Vec<String>> {
    let out = cmd::output(
        Command::new("apt-get")
            .args(["install", "-s", "--no-install-recommends"])
            .arg(package),
    )?;
    let names = parse_simulation(&out);
    if !names.iter().any(|n| n == package) {
        bail!("`apt-get install -s {package}` would not install it:\n{out}");
    }
    Ok(names)
}

fn parse_simulation(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| line.strip_prefix("Inst "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

impl Qemu {
    /// The emulator with its libraries and firmware found in the unpacked tree; the caller
    /// adds the machine.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        let libs = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"].map(|d| self.root.join(d));
        let existing = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
        let joined = std::env::join_paths(
            libs.iter()
                .filter(|d| d.is_dir())
                .cloned()
                .chain(std::env::split_paths(&existing)),
        )
        .unwrap_or_default();
        command.env("LD_LIBRARY_PATH", joined);
        for dir in ["usr/share/seabios", "usr/share/qemu"] {
            let path = self.root.join(dir);
            if path.is_dir() {
                command.arg("-L").arg(path);
            }
        }
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packages_an_install_would_add() {
        let out = "NOTE: This is only a simulation!\nRemv qemu-utils [1:10.0.2]\nInst libfdt1 (1.6.1-4+b1 Debian:12.15/oldstable [amd64])\nInst qemu-system-x86 (1:7.2+dfsg-7 Debian [amd64])\nConf libfdt1 (1.6.1-4+b1 Debian [amd64])\n";
        assert_eq!(parse_simulation(out), ["libfdt1", "qemu-system-x86"]);
    }
}
