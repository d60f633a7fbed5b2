//! The .deb: built by cargo-deb from the release build (no second compile), installed with
//! `dpkg -i` on this machine, checked in place (files, conffiles, state folders, `vigil probe`
//! from /usr/bin, the installed unit verified), then removed and purged, each checked.

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use anyhow::{Context as _, Result, bail, ensure};

use super::{Checks, Context, systemd};
use crate::{cargo, cmd};

const PACKAGE: &str = "vigil";
const STATE_DIRS: [&str; 4] = [
    "/var/lib/vigil",
    "/var/lib/vigil/spool",
    "/var/lib/vigil/captures",
    "/var/log/vigil",
];

pub fn check(ctx: &Context, checks: &mut Checks) {
    if installed_version().is_some() {
        // Someone's own installation: never replace or remove it from a test.
        checks.fail(
            "the .deb installs and removes cleanly",
            &"a `vigil` package is already installed here; remove it (dpkg --purge vigil) to run this check",
        );
        return;
    }
    let deb = match build(ctx) {
        Ok(deb) => deb,
        Err(e) => return checks.fail("cargo deb builds the package from the release build", &e),
    };
    checks.run(
        "cargo deb builds the package from the release build",
        || Ok(()),
    );
    let installed = install(&deb);
    let ok = installed.is_ok();
    checks.run(
        "dpkg -i installs it; postinst makes the state folders",
        || installed.map(|_| ()),
    );
    if ok {
        checks.run(
            "binary, unit, config and policies are in place; the config and policies are conffiles",
            in_place,
        );
        checks.run(
            "vigil probe runs from /usr/bin and finds this kernel's hooks",
            probe,
        );
        checks.run("the installed unit passes systemd-analyze verify", || {
            systemd::verify("/lib/systemd/system/vigil.service")
        });
    }
    checks.run(
        "dpkg -r removes the program and keeps config and state; --purge removes those",
        remove,
    );
}

fn installed_version() -> Option<String> {
    let out =
        cmd::probe(Command::new("dpkg-query").args(["-W", "-f=${Status} ${Version}", PACKAGE]))?;
    out.starts_with("install ok installed")
        .then(|| out.rsplit(' ').next().unwrap_or_default().to_owned())
}

fn build(ctx: &Context) -> Result<std::path::PathBuf> {
    let out = cargo::target_dir().join("debian");
    let _ = fs::remove_dir_all(&out);
    // --no-build: the release binary the privileged tests just built; --fast: lighter
    // compression, seconds instead of a minute on two vCPUs.
    cmd::run(
        Command::new(&ctx.tools.cargo_deb)
            .args(["--package", PACKAGE, "--no-build", "--fast", "--output"])
            .arg(&out),
    )?;
    let deb = fs::read_dir(&out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("cargo deb wrote no .deb")?;
    let size = fs::metadata(&deb)?.len();
    println!(
        "deploy: {} ({:.1} MiB)",
        deb.display(),
        size as f64 / 1048576.0
    );
    Ok(deb)
}

/// `dpkg -i`; returns what the maintainer scripts printed.
fn install(deb: &Path) -> Result<String> {
    let out = Command::new("dpkg")
        .arg("-i")
        .arg(deb)
        .output()
        .context("running dpkg -i")?;
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "dpkg -i failed:\n{said}");
    let version =
        installed_version().context("dpkg -i succeeded but the package is not installed")?;
    ensure!(
        version.starts_with(env!("CARGO_PKG_VERSION")),
        "installed version {version}"
    );
    for dir in STATE_DIRS {
        let meta = fs::metadata(dir).with_context(|| format!("postinst did not create {dir}"))?;
        ensure!(
            meta.is_dir() && meta.permissions().mode() & 0o777 == 0o700,
            "{dir}: mode {:o}",
            meta.permissions().mode()
        );
    }
    if Path::new("/run/systemd/system").is_dir() {
        cmd::run(Command::new("systemctl").args(["is-active", "--quiet", "vigil.service"]))
            .context("systemd runs here, but vigil.service is not active after the install")?;
    } else {
        ensure!(
            said.contains("systemd is not running: the service was not started"),
            "postinst said:\n{said}"
        );
    }
    Ok(said)
}

fn in_place() -> Result<()> {
    let binary = fs::metadata("/usr/bin/vigil").context("/usr/bin/vigil")?;
    ensure!(
        binary.permissions().mode() & 0o111 != 0,
        "/usr/bin/vigil is not executable"
    );
    let version = cmd::output(Command::new("/usr/bin/vigil").arg("--version"))?;
    ensure!(
        version.trim() == format!("vigil {}", env!("CARGO_PKG_VERSION")),
        "{version}"
    );
    fs::metadata("/lib/systemd/system/vigil.service").context("the unit")?;
    let config = fs::read_to_string("/etc/vigil/vigil.toml").context("the config")?;
    ensure!(
        config == fs::read_to_string(systemd::PACKAGED_CONFIG)?,
        "/etc/vigil/vigil.toml differs"
    );
    cmd::output(Command::new("/usr/bin/vigil").args(["config", "check", "/etc/vigil/vigil.toml"]))?;
    cmd::output(Command::new("/usr/bin/vigil").args(["policy", "check", "/etc/vigil/policies"]))?;
    let conffiles =
        cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]))?;
    let mut expected = vec!["/etc/vigil/vigil.toml".to_owned()];
    for entry in fs::read_dir("policies/default")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let installed = format!("/etc/vigil/policies/{name}");
        ensure!(
            fs::read_to_string(&installed)?
                == fs::read_to_string(Path::new("policies/default").join(&name))?,
            "{installed} differs from policies/default/{name}"
        );
        expected.push(installed);
    }
    for file in expected {
        ensure!(
            conffiles
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&file)),
            "{file} is not a conffile:\n{conffiles}"
        );
    }
    Ok(())
}

fn probe() -> Result<()> {
    let out = cmd::output(Command::new("/usr/bin/vigil").args(["probe", "--json"]))?;
    let report: serde_json::Value = serde_json::from_str(&out).context("vigil probe --json")?;
    let feature = |name: &str| super::probe_feature(&report, name);
    ensure!(
        feature("raw_tracepoint")["supported"] == true,
        "raw tracepoints: {}",
        feature("raw_tracepoint")
    );
    ensure!(
        feature("btf")["supported"] == true,
        "BTF: {}",
        feature("btf")
    );
    ensure!(
        report["uses"].as_array().is_some_and(|u| !u.is_empty()),
        "no hooks listed"
    );
    Ok(())
}

fn remove() -> Result<()> {
    if installed_version().is_none() {
        bail!("not installed: nothing to remove");
    }
    cmd::output(Command::new("dpkg").args(["-r", PACKAGE]))?;
    for gone in ["/usr/bin/vigil", "/lib/systemd/system/vigil.service"] {
        ensure!(
            !Path::new(gone).exists(),
            "{gone} is still there after dpkg -r"
        );
    }
    // Removed, not purged: the operator's config and the spool stay.
    for kept in ["/etc/vigil/vigil.toml", "/var/lib/vigil/spool"] {
        ensure!(Path::new(kept).exists(), "{kept} went with dpkg -r");
    }
    cmd::output(Command::new("dpkg").args(["--purge", PACKAGE]))?;
    for gone in ["/etc/vigil", "/var/lib/vigil", "/var/log/vigil"] {
        ensure!(
            !Path::new(gone).exists(),
            "{gone} is still there after dpkg --purge"
        );
    }
    let status = cmd::probe(Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]))
        .unwrap_or_default();
    ensure!(
        !status.contains("installed") || status.contains("not-installed"),
        "dpkg still lists it: {status}"
    );
    Ok(())
}
