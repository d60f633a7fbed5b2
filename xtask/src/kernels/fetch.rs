//! Debian kernels for the guests: the newest package of a series (`6.1`, `6.12`) for an
//! architecture, downloaded with `apt-get download` and reduced to its `./boot` folder in
//! the cache. Nothing is installed. A kernel found in the cache is used without asking apt,
//! so a rerun is fast and works offline.
//!
//! The guests need no modules: the suite uses only built-in features, and the kernel's BTF
//! is at /sys/kernel/btf/vmlinux inside the guest.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use super::{Arch, apt_arch::AptArch};
use crate::cmd;

/// A kernel ready to boot.
pub struct Kernel {
    /// The series asked for (`6.1`).
    pub series: String,
    /// The Debian package it came from.
    pub package: String,
    pub vmlinuz: PathBuf,
}

/// The newest cached or downloadable kernel of `series` for `arch`.
pub fn kernel(cache: &Path, arch: Arch, series: &str, apt: &mut AptArch) -> Result<Kernel> {
    let dir = cache.join("kernels").join(arch.debian());
    let package = match newest_package(apt, arch, series) {
        Ok(Some(name)) => name,
        Ok(None) | Err(_) => match newest_cached(&dir, arch, series)? {
            Some(name) => {
                println!(
                    "test-kernels: apt names no {series} kernel for {}; using the cached {name}",
                    arch.debian()
                );
                name
            }
            None => bail!(
                "no Debian package linux-image-{series}.*-{} is known to apt (try `apt-get update`)",
                arch.flavour()
            ),
        },
    };
    let unpacked = dir.join(&package);
    let vmlinuz = unpacked.join("vmlinuz");
    if vmlinuz.is_file() {
        println!("test-kernels: kernel {package} is cached");
    } else {
        unpack(apt, &package, &unpacked)?;
    }
    Ok(Kernel {
        series: series.to_owned(),
        package,
        vmlinuz,
    })
}

/// `linux-image-<series>.<anything>-<flavour>`, newest first by the numbers in its name:
/// `linux-image-6.1.0-57-cloud-amd64`, `linux-image-6.12.117+deb12-cloud-amd64`.
fn newest_package(apt: &mut AptArch, arch: Arch, series: &str) -> Result<Option<String>> {
    let names = apt.package_names(&format!("linux-image-{series}."))?;
    Ok(newest(names.iter().map(String::as_str), arch, series))
}

fn newest_cached(dir: &Path, arch: Arch, series: &str) -> Result<Option<String>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("vmlinuz").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    Ok(newest(names.iter().map(String::as_str), arch, series))
}

/// The newest of `names` that is a kernel image of `series` for `arch`'s flavour.
fn newest<'a>(names: impl Iterator<Item = &'a str>, arch: Arch, series: &str) -> Option<String> {
    let prefix = format!("linux-image-{series}.");
    let suffix = format!("-{}", arch.flavour());
    names
        .filter(|n| {
            // `-dbg`, `-unsigned` end differently; `-cloud-arm64` also ends with `-arm64`, so
            // what lies between must be a version only (`0-57`, `117+deb12`).
            let version = n
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(&suffix));
            version.is_some_and(is_version)
        })
        .max_by_key(|n| numbers(n))
        .map(str::to_owned)
}

/// `0-57`, `117+deb12`: digits and separators, and Debian's `deb` tag.
fn is_version(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .replace("deb", "")
            .chars()
            .all(|c| c.is_ascii_digit() || ".-+".contains(c))
}

/// Every run of digits in `name`, as numbers, for ordering versions.
fn numbers(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Downloads `package` and extracts its `./boot` folder; `vmlinuz-*` becomes `vmlinuz`.
fn unpack(apt: &mut AptArch, package: &str, unpacked: &Path) -> Result<()> {
    println!("test-kernels: fetching kernel {package}");
    let download = unpacked.with_extension("download");
    let debs = apt.download(&[package], &download)?;
    let partial = unpacked.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    extract_boot(&debs[0], &partial)?;
    let boot = partial.join("boot");
    let image = fs::read_dir(&boot)
        .with_context(|| format!("{package} has no ./boot folder"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{package} has no boot/vmlinuz-*"))?;
    fs::rename(&image, partial.join("vmlinuz"))?;
    if unpacked.exists() {
        fs::remove_dir_all(unpacked)?;
    }
    fs::rename(&partial, unpacked)?;
    fs::remove_dir_all(&download).ok();
    Ok(())
}

/// `dpkg-deb --fsys-tarfile DEB | tar -x ./boot`: the rest of the package (modules, tens of
/// megabytes) is never written.
fn extract_boot(deb: &Path, into: &Path) -> Result<()> {
    let mut unpack = Command::new("dpkg-deb");
    unpack.arg("--fsys-tarfile").arg(deb).stdout(Stdio::piped());
    println!(
        "    $ {} | tar -x -C {} ./boot",
        cmd::display(&unpack),
        into.display()
    );
    let mut dpkg = unpack.spawn().context("cannot start dpkg-deb")?;
    let stdout = dpkg.stdout.take().context("dpkg-deb has no stdout")?;
    let status = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .arg("./boot")
        .stdin(stdout)
        .status()
        .context("cannot start tar")?;
    let dpkg_status = dpkg.wait().context("cannot wait for dpkg-deb")?;
    if !status.success() || !dpkg_status.success() {
        bail!(
            "extracting ./boot from {} failed (dpkg-deb {dpkg_status}, tar {status})",
            deb.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_kernel_of_a_series_and_flavour() {
        let names = [
            "linux-image-6.1.0-9-cloud-amd64",
            "linux-image-6.1.0-57-cloud-amd64",
            "linux-image-6.1.0-57-cloud-amd64-dbg",
            "linux-image-6.1.0-57-cloud-amd64-unsigned",
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.12.99+deb12-cloud-amd64",
            "linux-image-6.12-cloud-amd64-dbg",
            "linux-image-6.1.0-57-amd64",
        ];
        let pick = |series| newest(names.iter().copied(), Arch::X86_64, series);
        assert_eq!(
            pick("6.1").as_deref(),
            Some("linux-image-6.1.0-57-cloud-amd64")
        );
        assert_eq!(
            pick("6.12").as_deref(),
            Some("linux-image-6.12.117+deb12-cloud-amd64")
        );
        assert_eq!(pick("5.10"), None);
        // `-cloud-arm64` ends like `-arm64`: a flavour is matched whole.
        assert!(is_version("0-57") && is_version("117+deb12"));
        assert!(!is_version("0-57-cloud") && !is_version("cloud"));
        let arm = [
            "linux-image-6.1.0-57-cloud-arm64",
            "linux-image-6.1.0-58-arm64",
        ];
        assert_eq!(
            newest(arm.iter().copied(), Arch::Aarch64, "6.1").as_deref(),
            Some("linux-image-6.1.0-57-cloud-arm64")
        );
    }
}
