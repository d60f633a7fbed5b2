//! `cargo xtask test-kernels`: Vigil on stock Debian kernels, booted in QEMU.
//!
//! For each architecture: build `vigil` for it, put it with busybox in an initramfs
//! (`initramfs`); for each kernel series: fetch the newest Debian kernel of that series
//! (`fetch`), boot it under TCG with no network (`guest`, `qemu`), and read the results of
//! `vigil selftest` from its console (`report`). Prints the matrix, the reasons behind every
//! cell that is not a pass, and the tail of the console of any guest with a failure; exits
//! non-zero when a check failed. Everything fetched is kept in the cache (`$VIGIL_CACHE_DIR`,
//! else ~/.cache/vigil), so a rerun is fast and offline.

mod apt_arch;
mod cross;
mod fetch;
mod guest;
mod initramfs;
mod qemu;
mod report;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{apt::Apt, cargo, cmd, setup};

/// A guest architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "x86_64" | "amd64" => Ok(Self::X86_64),
            "aarch64" | "arm64" => Ok(Self::Aarch64),
            other => bail!("unknown architecture `{other}` (x86_64 or aarch64)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }

    /// Debian's name of the architecture.
    pub fn debian(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Aarch64 => "arm64",
        }
    }

    /// The kernel flavour booted: Debian's cloud flavour (smaller packages, fewer drivers to
    /// probe at boot; it has what QEMU's pc and virt machines need, virtio and the serial
    /// consoles included).
    pub fn flavour(self) -> &'static str {
        match self {
            Self::X86_64 => "cloud-amd64",
            Self::Aarch64 => "cloud-arm64",
        }
    }

    fn qemu_package(self) -> &'static str {
        match self {
            Self::X86_64 => "qemu-system-x86",
            Self::Aarch64 => "qemu-system-arm",
        }
    }

    fn qemu_binary(self) -> &'static str {
        match self {
            Self::X86_64 => "qemu-system-x86_64",
            Self::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// Machine and CPU. `-cpu max` on arm64 is about three times slower than a cortex-a57.
    fn machine(self) -> &'static [&'static str] {
        match self {
            Self::X86_64 => &["-accel", "tcg", "-cpu", "max"],
            Self::Aarch64 => &["-accel", "tcg", "-M", "virt", "-cpu", "cortex-a57"],
        }
    }

    fn console(self) -> &'static str {
        match self {
            Self::X86_64 => "ttyS0",
            Self::Aarch64 => "ttyAMA0",
        }
    }
}

pub struct Options {
    pub kernels: Vec<String>,
    pub arches: Vec<Arch>,
    /// Per guest, boot to power-off.
    pub timeout: Duration,
    /// Also write docs/kernels.md.
    pub write_docs: bool,
}

impl Default for Options {
    /// What `cargo xtask test` (CI) runs: the whole matrix, Debian's 6.1 and 6.12 lines on
    /// x86_64 and aarch64, so that a verifier regression on any of them fails CI. About 1-4
    /// minutes of guests, plus the aarch64 cross build (about 10 minutes the first time).
    fn default() -> Self {
        Self {
            kernels: vec!["6.1".into(), "6.12".into()],
            arches: vec![Arch::X86_64, Arch::Aarch64],
            timeout: Duration::from_secs(300),
            write_docs: false,
        }
    }
}

/// Lines of a failed guest's console shown.
const TAIL_LINES: usize = 40;

pub fn run(options: &Options) -> Result<ExitCode> {
    let started = Instant::now();
    let env = setup::run()?;
    let cache = setup::cache_dir()?;
    let out_dir = cargo::target_dir().join("kernels");
    std::fs::create_dir_all(&out_dir)?;
    let mut apt = Apt::default();
    let mut runs = Vec::new();
    for &arch in &options.arches {
        let arch_started = Instant::now();
        let vigil = cross::build_vigil(&env, arch, &mut apt)?;
        let qemu = qemu::ensure(&cache, arch, &mut apt)?;
        let mut arch_apt = apt_arch::AptArch::new(&mut apt, &cache, arch.debian())?;
        let busybox = busybox(&cache, arch, &mut arch_apt)?;
        let kernels: Vec<fetch::Kernel> = options
            .kernels
            .iter()
            .map(|series| fetch::kernel(&cache, arch, series, &mut arch_apt))
            .collect::<Result<_>>()?;
        let initramfs = out_dir.join(format!("initramfs-{}.cpio.gz", arch.name()));
        initramfs::build(&vigil, &busybox, &initramfs)?;
        println!(
            "test-kernels: {} prepared in {:.1} s",
            arch.name(),
            arch_started.elapsed().as_secs_f64()
        );
        for kernel in kernels {
            let log = out_dir.join(format!("{}-{}.log", arch.name(), kernel.series));
            println!("test-kernels: booting {} ({})", kernel.package, arch.name());
            let boot = guest::boot(
                &qemu,
                arch,
                &kernel.vmlinuz,
                &initramfs,
                &log,
                options.timeout,
            )?;
            let text = std::fs::read_to_string(&boot.log)
                .map(|t| t.replace('\r', ""))
                .unwrap_or_default();
            let (release, checks) = report::parse(&text, &boot.status.to_string());
            println!(
                "test-kernels: {} {} finished in {:.1} s ({})",
                kernel.series,
                arch.name(),
                boot.elapsed.as_secs_f64(),
                boot.status
            );
            runs.push(report::Run {
                series: kernel.series,
                arch: arch.name(),
                package: kernel.package,
                release,
                checks,
                log: boot.log,
                elapsed: boot.elapsed,
            });
        }
    }
    println!("\ntest-kernels: ==== matrix ====");
    print!("{}", report::render_text(&runs));
    for run in runs.iter().filter(|r| r.failed()) {
        let text = std::fs::read_to_string(&run.log).unwrap_or_default();
        println!(
            "\ntest-kernels: ==== {} failed: last {TAIL_LINES} lines of {} ====\n{}",
            run.column(),
            run.log.display(),
            report::tail(&text.replace('\r', ""), TAIL_LINES)
        );
    }
    let command = format!(
        "cargo xtask test-kernels --kernels {} --arch {}",
        options.kernels.join(","),
        options
            .arches
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    let date = cmd::output(Command::new("date").args(["-u", "+%F"]))?;
    let markdown = report::render_markdown(&runs, date.trim(), &command);
    let generated = out_dir.join("kernels.md");
    std::fs::write(&generated, &markdown)?;
    if options.write_docs {
        let docs = cargo::workspace_root().join("docs/kernels.md");
        std::fs::write(&docs, &markdown)
            .with_context(|| format!("cannot write {}", docs.display()))?;
        println!("test-kernels: wrote {}", docs.display());
    } else {
        println!(
            "test-kernels: the Markdown report is {} (--write-docs puts it in docs/kernels.md)",
            generated.display()
        );
    }
    let failed = runs.iter().filter(|r| r.failed()).count();
    println!(
        "test-kernels: {} guests, {failed} with failures, {:.1} s in all",
        runs.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A static busybox for `arch`: the machine's busybox-static for its own architecture (a
/// set-up package), else Debian's package for that architecture, unpacked in the cache.
fn busybox(cache: &Path, arch: Arch, apt: &mut apt_arch::AptArch<'_>) -> Result<PathBuf> {
    if arch == Arch::X86_64 && cfg!(target_arch = "x86_64") {
        return Ok(PathBuf::from("/bin/busybox"));
    }
    let dir = cache.join(format!("busybox-{}", arch.debian()));
    let binary = dir.join("root/bin/busybox");
    if binary.is_file() {
        return Ok(binary);
    }
    let debs = apt.download(&["busybox-static"], &dir.join("debs"))?;
    cmd::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&debs[0])
            .arg(dir.join("root")),
    )?;
    if !binary.is_file() {
        bail!("busybox-static for {} has no bin/busybox", arch.debian());
    }
    Ok(binary)
}
