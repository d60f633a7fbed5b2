//! Debian packages: what the build and the tests need installed, and fetching packages that are
//! unpacked into a private folder instead of installed.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, privilege};

/// Packages installed system-wide, each with the reason it is needed.
pub const PACKAGES: &[(&str, &str)] = &[
    // bpf-linker 0.13 links against LLVM 22 (`LLVM_PREFIX=/usr/lib/llvm-22`), the LLVM major
    // of both eBPF compilers; brings libz3-dev, libxml2-dev and friends that llvm-config wants.
    ("llvm-22-dev", "LLVM 22 to build bpf-linker against"),
    // Debian's rustc-web (the fallback eBPF compiler) loads libLLVM.so.22.1 at run time.
    (
        "libllvm22",
        "runtime library of the Debian fallback compiler",
    ),
    // A static binary with known behaviour that tests and benchmarks exec and watch.
    (
        "busybox-static",
        "a static binary for tests and benchmarks to exec",
    ),
    // `ps`, `pgrep`, `sysctl` (kernel.bpf_stats_enabled for benchmarks).
    ("procps", "ps, pgrep and sysctl for tests and benchmarks"),
    // The k8s-cri crate (CRI client for pod metadata) compiles the CRI .proto at build time.
    (
        "protobuf-compiler",
        "protoc, run by the k8s-cri crate's and the agent's build scripts",
    ),
    // The container tests start a private containerd (CRI plugin) with `ctr` to import images.
    (
        "containerd",
        "a real CRI runtime for the container enrichment tests",
    ),
    // Debian's own interpreter at /usr/bin/python3: the privileged tests' trigger scripts
    // (memfd and deleted-file execs, sockets, raw syscalls through ctypes).
    ("python3", "trigger scripts of the privileged tests"),
    // The API test's own Python venv (grpcio, grpcurl): see `crate::python`.
    (
        "python3-venv",
        "the venv of the gRPC API test's Python client",
    ),
    // Certificates for the API's mutual-TLS test.
    ("openssl", "test certificates for the API's mutual TLS"),
    // The peers that `vigil bench exec|connect|open` measure side by side (execsnoop,
    // tcpstates, opensnoop: CO-RE, no headers).
    (
        "libbpf-tools",
        "execsnoop, tcpstates, opensnoop: peers of the benchmarks",
    ),
    // The second peer of the exec, connect and open storms (tracepoints with printf).
    (
        "bpftrace",
        "the bpftrace peer of the exec, connect and open benchmarks",
    ),
    // Ground truth of the storms: `perf stat -e <tracepoint>` counts in the kernel.
    ("linux-perf", "perf stat, the benchmarks' ground truth"),
    // containerd's OCI runtime.
    (
        "runc",
        "runs the containers of the container enrichment tests",
    ),
    // deploy/Containerfile is built FROM scratch and run (no registry needed).
    (
        "podman",
        "builds and runs the container image in the deployment checks",
    ),
    // cargo-deb's `depends = "$auto"` asks dpkg-shlibdeps.
    (
        "dpkg-dev",
        "dpkg-shlibdeps, for the .deb's library dependencies",
    ),
    // `systemd-analyze verify` of deploy/systemd/vigil.service.
    ("systemd", "systemd-analyze, which verifies the unit file"),
];

/// apt-get with `apt-get update` run at most once per xtask run, and only when needed.
#[derive(Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    /// Installs whichever of `PACKAGES` are missing.
    pub fn ensure_packages(&mut self) -> Result<()> {
        self.ensure(PACKAGES)
    }

    /// Installs whichever of `packages` (name, why) are missing.
    pub fn ensure(&mut self, packages: &[(&str, &str)]) -> Result<()> {
        let names: Vec<&str> = packages.iter().map(|(name, _)| *name).collect();
        let missing = missing(&names)?;
        if missing.is_empty() {
            println!(
                "setup: Debian packages already installed: {}",
                names.join(" ")
            );
            return Ok(());
        }
        println!("setup: installing Debian packages: {}", missing.join(" "));
        for (name, why) in packages.iter().filter(|(n, _)| missing.contains(n)) {
            println!("setup:   {name}: {why}");
        }
        self.update()?;
        let mut install = apt_get(&["install", "-y", "--no-install-recommends"])?;
        install.args(&missing);
        cmd::run(&mut install).context("apt-get install failed")
    }

    /// Downloads the `.deb` files of `names` (without their dependencies) into `dir`, emptied
    /// first, and returns their paths.
    pub fn download(&mut self, names: &[&str], dir: &Path) -> Result<Vec<PathBuf>> {
        self.download_with(&[], names, dir)
    }

    /// [`Apt::download`] with extra `-o` options for apt (a private state for another
    /// architecture: see `kernels::apt_arch`).
    pub fn download_with(
        &mut self,
        options: &[String],
        names: &[&str],
        dir: &Path,
    ) -> Result<Vec<PathBuf>> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot empty {}", dir.display()))?;
        }
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let attempt = || {
            let mut download = Command::new("apt-get");
            if privilege::is_root() {
                // apt's download sandbox user `_apt` cannot write into a root-owned cache folder.
                download.args(["-o", "APT::Sandbox::User=root"]);
            }
            download
                .args(options)
                .arg("download")
                .args(names)
                .current_dir(dir);
            cmd::run(&mut download)
        };
        if let Err(err) = attempt() {
            if self.updated {
                return Err(err);
            }
            // A fresh machine may have no package lists, or stale ones naming removed versions.
            println!(
                "setup: apt-get download failed ({err:#}); updating package lists and retrying"
            );
            self.update()?;
            attempt()?;
        }
        let mut debs: Vec<PathBuf> = fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
            .collect();
        debs.sort();
        if debs.len() != names.len() {
            bail!(
                "apt-get download gave {} files for {} packages in {}",
                debs.len(),
                names.len(),
                dir.display()
            );
        }
        Ok(debs)
    }

    fn update(&mut self) -> Result<()> {
        if self.updated {
            return Ok(());
        }
        println!("setup: updating Debian package lists");
        cmd::run(&mut apt_get(&["update"])?).context("apt-get update failed")?;
        self.updated = true;
        Ok(())
    }
}

/// Which of `names` are not installed, asked with one `dpkg-query` call.
pub fn missing<'a>(names: &[&'a str]) -> Result<Vec<&'a str>> {
    let mut query = Command::new("dpkg-query");
    query.args(["-W", "-f=${Package} ${Status}\n"]).args(names);
    println!("    $ {}", cmd::display(&query));
    // dpkg-query exits 1 when some package is unknown, yet still reports the known ones.
    let out = query.output().context("cannot run dpkg-query")?;
    let report = String::from_utf8_lossy(&out.stdout);
    let installed: BTreeSet<&str> = report
        .lines()
        .filter(|line| line.ends_with(" installed") && line.contains(" ok "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    Ok(names
        .iter()
        .copied()
        .filter(|name| !installed.contains(name))
        .collect())
}

fn apt_get(args: &[&str]) -> Result<Command> {
    let env = [("DEBIAN_FRONTEND", "noninteractive".into())];
    let mut apt = privilege::root_command("setup", "apt-get", &env)?;
    apt.args(args);
    Ok(apt)
}
