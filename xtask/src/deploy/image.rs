//! The container image (`deploy/Containerfile`): a root file system staged from the release
//! build (the binary and the shared objects `ldd` lists), built `FROM scratch` with podman (no
//! registry needed), then run the way the DaemonSet runs it: no capabilities but the agent's,
//! the host's PIDs, BTF and tracefs mounted read-only, and `vigil probe` must find the hooks.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, ensure};

use super::{Checks, Context, capabilities};
use crate::{cargo, cmd};

pub const CONTAINERFILE: &str = "deploy/Containerfile";

pub fn tag() -> String {
    format!("localhost/vigil:{}", env!("CARGO_PKG_VERSION"))
}

pub fn check(ctx: &Context, checks: &mut Checks) {
    let context = match stage(&ctx.vigil) {
        Ok(dir) => dir,
        Err(e) => return checks.fail("the image's root file system is staged", &e),
    };
    checks.run(
        "the image's root file system holds the agent and every library it links",
        || complete(&context),
    );
    let built = build(&context);
    let ok = built.is_ok();
    checks.run("podman builds the image FROM scratch", || built);
    if ok {
        checks.run(
            "vigil probe runs in the image with only the agent's capabilities",
            probe_in_container,
        );
        checks.run(
            "the agent runs in the image as the DaemonSet runs it, and stops cleanly",
            || run_as_daemonset(ctx),
        );
    }
}

/// `target/image`: `rootfs/` with the binary and its libraries at their host paths.
pub fn stage(vigil: &Path) -> Result<PathBuf> {
    let context = cargo::target_dir().join("image");
    let rootfs = context.join("rootfs");
    let _ = fs::remove_dir_all(&context);
    fs::create_dir_all(rootfs.join("usr/bin"))?;
    fs::copy(vigil, rootfs.join("usr/bin/vigil"))
        .with_context(|| format!("copying {}", vigil.display()))?;
    for library in libraries(vigil)? {
        let target = rootfs.join(library.strip_prefix("/").unwrap_or(&library));
        fs::create_dir_all(target.parent().unwrap_or(&rootfs))?;
        // The file itself, not a link to it: the image has no host to point into.
        fs::copy(&library, &target).with_context(|| format!("copying {}", library.display()))?;
    }
    let tmp = rootfs.join("tmp");
    fs::create_dir_all(&tmp)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))?;
    Ok(context)
}

/// The absolute paths `ldd` resolves for `binary` (the vDSO has none).
fn libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = cmd::output(Command::new("ldd").arg(binary))?;
    let mut found = Vec::new();
    for line in out.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            found.push(PathBuf::from(path));
        }
    }
    ensure!(
        found
            .iter()
            .any(|p| p.to_string_lossy().contains("libc.so")),
        "ldd names no libc:\n{out}"
    );
    Ok(found)
}

fn complete(context: &Path) -> Result<()> {
    let rootfs = context.join("rootfs");
    for library in libraries(&rootfs.join("usr/bin/vigil"))? {
        let inside = rootfs.join(library.strip_prefix("/").unwrap_or(&library));
        ensure!(
            inside.is_file(),
            "{} is missing from the image",
            library.display()
        );
    }
    Ok(())
}

fn build(context: &Path) -> Result<()> {
    cmd::run(
        Command::new("podman")
            .args(["build", "--quiet", "--file", CONTAINERFILE, "--tag"])
            .arg(tag())
            .arg(context),
    )
}

/// The options that make a podman container what the DaemonSet's is: the runtime that works
/// here, no network, the agent's capabilities only, host PIDs, a read-only root, seccomp off.
fn daemonset_like(run: &mut Command) {
    let caps: Vec<&str> = capabilities::NEEDED
        .iter()
        .map(|c| c.trim_start_matches("CAP_"))
        .collect();
    run.args(["run", "--runtime", "runc", "--network", "none"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .args([
            "--pid",
            "host",
            "--read-only",
            "--security-opt",
            "seccomp=unconfined",
        ])
        .args(["--cap-drop", "ALL", "--cap-add"])
        .arg(caps.join(","));
}

/// `vigil run` in the image with the base's config and policies and the DaemonSet's host
/// mounts (its /run/vigil and /var/lib/vigil in scratch folders, not the host's): every
/// program attaches, `vigil status` in the container reports the node name passed in
/// VIGIL_NODE_NAME and the mounted policies, and SIGTERM stops it with status 0.
fn run_as_daemonset(ctx: &Context) -> Result<()> {
    const NODE: &str = "deployment-check-node";
    let name = format!("vigil-deploy-check-{}", std::process::id());
    let state = ctx.scratch.join("daemonset");
    let _ = fs::remove_dir_all(&state);
    let mut run = Command::new("podman");
    daemonset_like(&mut run);
    run.args(["--detach", "--name", &name, "--tmpfs", "/tmp", "--env"])
        .arg(format!("VIGIL_NODE_NAME={NODE}"));
    for (path, read_only) in super::kubernetes::HOST_MOUNTS {
        let source = match path {
            "/run/vigil" | "/var/lib/vigil" => state.join(path.trim_start_matches('/')),
            _ => PathBuf::from(path),
        };
        if path.ends_with(".sock") && !source.exists() {
            // No container runtime here: the agent runs without pod metadata.
            continue;
        }
        if !source.exists() {
            fs::create_dir_all(&source)?;
        }
        let mode = if read_only { ":ro" } else { "" };
        run.arg("--volume")
            .arg(format!("{}:{path}{mode}", source.display()));
    }
    let base = fs::canonicalize(Path::new(super::kubernetes::DIR).join("base"))?;
    run.arg("--volume").arg(format!(
        "{}:/etc/vigil/vigil.toml:ro",
        base.join("vigil.toml").display()
    ));
    run.arg("--volume").arg(format!(
        "{}:/etc/vigil/policies:ro",
        base.join("policies").display()
    ));
    run.arg(tag())
        .args(["run", "--config", "/etc/vigil/vigil.toml"]);
    cmd::output(&mut run)?;
    let result = check_running(&name, NODE);
    let _ = Command::new("podman")
        .args(["rm", "--force", &name])
        .output();
    result
}

fn check_running(name: &str, node: &str) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        let logs = Command::new("podman").args(["logs", name]).output()?;
        let stderr = String::from_utf8_lossy(&logs.stderr);
        if stderr.contains("Vigil is running.") {
            break;
        }
        ensure!(
            started.elapsed().as_secs() < 30,
            "the agent did not start in 30 s:\n{stderr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let out = cmd::output(Command::new("podman").args([
        "exec",
        name,
        "/usr/bin/vigil",
        "status",
        "--json",
        "--socket",
        "/run/vigil/vigil.sock",
    ]))?;
    let status: serde_json::Value = serde_json::from_str(&out).context("vigil status --json")?;
    let info = &status["info"];
    ensure!(
        info["node"] == node,
        "node {} (VIGIL_NODE_NAME={node})",
        info["node"]
    );
    ensure!(
        info["fallbacks"] == serde_json::json!([]),
        "degraded: {}",
        info["fallbacks"]
    );
    let sources = info["policy_sources"]
        .as_array()
        .context("policy_sources")?;
    ensure!(
        !sources.is_empty()
            && sources.iter().all(|s| s
                .as_str()
                .is_some_and(|s| s.starts_with("/etc/vigil/policies/"))),
        "policies from {}",
        info["policy_sources"]
    );
    cmd::output(Command::new("podman").args(["stop", "--time", "10", name]))?;
    let code = cmd::output(Command::new("podman").args([
        "inspect",
        name,
        "--format",
        "{{.State.ExitCode}}",
    ]))?;
    ensure!(
        code.trim() == "0",
        "exit status {} after SIGTERM",
        code.trim()
    );
    Ok(())
}

/// The DaemonSet's container, as podman can make it: the same capability list and seccomp
/// profile, host PIDs, BTF and tracefs from the host.
fn probe_in_container() -> Result<()> {
    let mut run = Command::new("podman");
    daemonset_like(&mut run);
    run.args(["--rm", "--volume", "/sys/kernel/btf:/sys/kernel/btf:ro"])
        .args(["--volume", "/sys/kernel/tracing:/sys/kernel/tracing:ro"])
        .arg(tag())
        .args(["probe", "--json"]);
    let out = cmd::output(&mut run)?;
    let report: serde_json::Value =
        serde_json::from_str(&out).context("vigil probe --json in the container")?;
    let feature = |name: &str| super::probe_feature(&report, name);
    // Everything the agent uses must work; what it only reports on (fentry, BPF-LSM, the
    // cgroup v2 mount and the CRI socket, absent from this container) may be missing.
    let optional = [
        "fentry",
        "lsm",
        "bpf_lsm_enabled",
        "cgroup_v2",
        "container_runtime",
    ];
    let features = report["features"].as_array().context("no features")?;
    ensure!(features.len() > optional.len(), "{report}");
    for f in features
        .iter()
        .filter(|f| !optional.iter().any(|o| f["name"] == *o))
    {
        ensure!(
            f["supported"] == true,
            "{} in the container: {f}",
            f["name"]
        );
    }
    // The capabilities the container got are exactly the agent's.
    let detail = feature("privileges")["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mask = u64::from_str_radix(detail.trim_start_matches("effective capabilities 0x"), 16)
        .with_context(|| format!("privileges detail `{detail}`"))?;
    ensure!(
        mask == capability_mask(),
        "effective capabilities {mask:#x}, wanted {:#x}",
        capability_mask()
    );
    Ok(())
}

/// The bit mask of [`capabilities::NEEDED`].
fn capability_mask() -> u64 {
    capabilities::BITS
        .iter()
        .fold(0, |mask, bit| mask | 1 << bit)
}
