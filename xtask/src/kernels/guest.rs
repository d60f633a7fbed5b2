//! One guest boot: QEMU under `timeout` (TCG, no network), the serial console written to a
//! log file that the report reads and that stays for a reader after the run.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{Arch, qemu::Qemu};
use crate::cmd;

/// How a boot ended.
pub struct Boot {
    pub log: PathBuf,
    pub status: ExitStatus,
    pub elapsed: Duration,
}

/// Boots `vmlinuz` with `initramfs`; gives up after `limit` (QEMU pauses instead of exiting on
/// some internal errors, hence `timeout` with a kill after a grace period).
pub fn boot(
    qemu: &Qemu,
    arch: Arch,
    vmlinuz: &Path,
    initramfs: &Path,
    log: &Path,
    limit: Duration,
) -> Result<Boot> {
    let mut emulator = qemu.command();
    emulator
        .args(arch.machine())
        .args(["-m", "1024", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(format!(
            // `bpf` in the LSM list (Debian's default has it; harmless when it does); panic=-1
            // reboots on a panic, which -no-reboot turns into QEMU's exit.
            "console={} panic=-1 quiet lsm=lockdown,capability,landlock,yama,bpf",
            arch.console()
        ));
    let mut timed = Command::new("timeout");
    timed
        .args(["--kill-after=10", &limit.as_secs().to_string()])
        .arg(emulator.get_program())
        .args(emulator.get_args());
    for (key, value) in emulator.get_envs() {
        if let Some(value) = value {
            timed.env(key, value);
        }
    }
    let file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let errors = file.try_clone()?;
    timed.stdin(Stdio::null()).stdout(file).stderr(errors);
    println!("    $ {} > {}", cmd::display(&timed), log.display());
    let started = Instant::now();
    let status = timed.status().context("cannot start timeout/qemu")?;
    Ok(Boot {
        log: log.to_owned(),
        status,
        elapsed: started.elapsed(),
    })
}
