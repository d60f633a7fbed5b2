//! The systemd unit (`deploy/systemd/vigil.service`): `systemd-analyze verify` with nothing
//! to say (it only warns about unknown keys, so any output fails), the hardening the issue
//! asks for, the capability list, and every path the packaged config writes being writable
//! inside the unit's read-only file system.

use std::{fs, process::Command};

use anyhow::{Context as _, Result, ensure};

use super::{Checks, Context, capabilities, config_paths, under};

pub const UNIT: &str = "deploy/systemd/vigil.service";
/// The config the .deb installs as /etc/vigil/vigil.toml.
pub const PACKAGED_CONFIG: &str = "deploy/debian/vigil.toml";

pub fn check(ctx: &Context, checks: &mut Checks) {
    let unit = match fs::read_to_string(UNIT) {
        Ok(text) => text,
        Err(e) => return checks.fail(&format!("read {UNIT}"), &e),
    };
    checks.run(
        "systemd-analyze verify has nothing to say about the unit",
        || {
            // verify checks that ExecStart's binary exists: point it at the one just built.
            let dir = ctx.scratch.join("systemd");
            fs::create_dir_all(&dir)?;
            let copy = dir.join("vigil.service");
            fs::write(
                &copy,
                unit.replace("/usr/bin/vigil", &ctx.vigil.to_string_lossy()),
            )?;
            verify(&copy.to_string_lossy())
        },
    );
    checks.run(
        "the unit is hardened and keeps only the agent's capabilities",
        || hardening(&unit),
    );
    checks.run(
        "every path the packaged config writes is writable in the unit",
        || writable(&unit),
    );
}

/// `systemd-analyze verify FILE`: success and no output at all.
pub fn verify(file: &str) -> Result<()> {
    let out = Command::new("systemd-analyze")
        .args(["verify", file])
        .output()
        .context("running systemd-analyze (Debian package systemd)")?;
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {file} ({}):\n{said}",
        out.status
    );
    Ok(())
}

/// The values of `key=` lines (a key may appear more than once).
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn hardening(unit: &str) -> Result<()> {
    for (key, wanted) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        (
            "ExecStart",
            "/usr/bin/vigil run --config /etc/vigil/vigil.toml",
        ),
    ] {
        ensure!(
            values(unit, key) == [wanted],
            "{key}= is {:?}, wanted {wanted}",
            values(unit, key)
        );
    }
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let caps: Vec<&str> = values(unit, key)
            .iter()
            .flat_map(|v| v.split_whitespace())
            .collect();
        ensure!(
            caps == capabilities::NEEDED,
            "{key}= is {caps:?}, the agent needs {:?}",
            capabilities::NEEDED
        );
    }
    let rw: Vec<&str> = values(unit, "ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    ensure!(
        rw == ["/sys/fs/bpf", "/sys/fs/cgroup"],
        "ReadWritePaths= is {rw:?}"
    );
    Ok(())
}

fn writable(unit: &str) -> Result<()> {
    let config = fs::read_to_string(PACKAGED_CONFIG)
        .with_context(|| format!("reading {PACKAGED_CONFIG}"))?;
    // The folders systemd makes writable: RuntimeDirectory= below /run, StateDirectory= below
    // /var/lib, LogsDirectory= below /var/log, and ReadWritePaths= as they are.
    let mut writable: Vec<String> = Vec::new();
    for (key, base) in [
        ("RuntimeDirectory", "/run"),
        ("StateDirectory", "/var/lib"),
        ("LogsDirectory", "/var/log"),
    ] {
        for dir in values(unit, key).iter().flat_map(|v| v.split_whitespace()) {
            writable.push(format!("{base}/{dir}"));
        }
    }
    writable.extend(
        values(unit, "ReadWritePaths")
            .iter()
            .flat_map(|v| v.split_whitespace())
            .map(str::to_owned),
    );
    let paths = config_paths(&config);
    ensure!(paths.len() >= 6, "the packaged config names only {paths:?}");
    for (key, path) in paths {
        // Read, never written.
        if key == "policy.directory" || key == "enrich.cri_socket" {
            continue;
        }
        ensure!(
            writable.iter().any(|dir| under(&path, dir)),
            "{key} = {path} is read-only under ProtectSystem=strict (writable: {writable:?})"
        );
    }
    Ok(())
}
