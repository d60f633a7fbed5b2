//! The deployment artefacts (`deploy/`) and their checks: the Kubernetes manifests, the
//! systemd unit, the .deb and the container image. `cargo xtask test` runs them in two
//! stages (manifests with the unit tests, packages as root with the privileged tests);
//! `cargo xtask deploy [--write]` runs the manifest checks alone, or first re-renders
//! `deploy/kubernetes/vigil.yaml` and the base's copy of the default policies.

mod deb;
mod image;
pub mod kubernetes;
mod systemd;
pub mod tools;

use std::{
    fmt::Display,
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};

use crate::{cargo, cmd, setup::BuildEnv};

/// The capabilities the agent uses, in the order the DaemonSet and the unit list them; the
/// README's table says why each. Both artefacts are checked against this list, and the
/// privileged test `least_privilege` runs the agent with exactly these.
pub mod capabilities {
    pub const NEEDED: [&str; 6] = [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_NET_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_DAC_READ_SEARCH",
        "CAP_KILL",
    ];
    /// Their bit numbers (linux/capability.h), in the same order.
    pub const BITS: [u32; 6] = [39, 38, 12, 19, 2, 5];
}

/// What every check needs: the tools, the built agent, a scratch folder.
pub struct Context {
    pub tools: tools::Tools,
    pub venv: PathBuf,
    /// The release binary (`vigil config check`, `vigil policy check`, the package).
    pub vigil: PathBuf,
    pub scratch: PathBuf,
}

impl Context {
    fn new(env: &BuildEnv) -> Result<Self> {
        let scratch = cargo::target_dir().join("deploy-checks");
        std::fs::create_dir_all(&scratch)?;
        Ok(Self {
            tools: env.deploy.clone(),
            venv: env.venv.clone(),
            vigil: cargo::target_dir().join("release/vigil"),
            scratch,
        })
    }
}

/// Named checks, each printed as it passes or fails; every one runs.
#[derive(Default)]
pub struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    pub fn run(&mut self, name: &str, check: impl FnOnce() -> Result<()>) {
        match check() {
            Ok(()) => {
                println!("deploy: ok     {name}");
                self.passed += 1;
            }
            Err(error) => self.fail(name, &error),
        }
    }

    pub fn fail(&mut self, name: &str, error: &dyn Display) {
        println!("deploy: FAILED {name}: {error:#}");
        self.failed.push(name.to_owned());
    }

    fn finish(self) -> Result<()> {
        println!(
            "deploy: {} passed, {} failed",
            self.passed,
            self.failed.len()
        );
        if self.failed.is_empty() {
            Ok(())
        } else {
            bail!("deployment checks failed: {}", self.failed.join("; "))
        }
    }
}

/// The Kubernetes and systemd checks (no root needed; the release binary must be built).
pub fn check_manifests(env: &BuildEnv) -> Result<()> {
    let ctx = Context::new(env)?;
    let mut checks = Checks::default();
    kubernetes::check(&ctx, &mut checks);
    systemd::check(&ctx, &mut checks);
    checks.finish()
}

/// The .deb and the container image (root: dpkg -i, podman).
pub fn check_packages(env: &BuildEnv) -> Result<()> {
    let ctx = Context::new(env)?;
    let mut checks = Checks::default();
    deb::check(&ctx, &mut checks);
    image::check(&ctx, &mut checks);
    checks.finish()
}

/// `cargo xtask image`: stage the root file system and build the image.
pub fn build_image(vigil: &Path) -> Result<()> {
    let context = image::stage(vigil)?;
    cmd::run(
        std::process::Command::new("podman")
            .args(["build", "--file", image::CONTAINERFILE, "--tag"])
            .arg(image::tag())
            .arg(&context),
    )?;
    println!("image: built {} from {}", image::tag(), context.display());
    Ok(())
}

/// `cargo xtask deploy --write`: the generated files anew.
pub fn write(env: &BuildEnv) -> Result<()> {
    kubernetes::write(&Context::new(env)?)
}

/// The keys of a Vigil config whose values are paths the agent writes or serves, with the
/// path: `(output.target, /var/log/vigil/events.jsonl)`. A plain line reader for the flat
/// `key = "value"` lines the shipped configs use.
pub fn config_paths(text: &str) -> Vec<(String, String)> {
    const KEYS: [(&str, &str); 8] = [
        ("output", "target"),
        ("enforcement", "bpffs_dir"),
        ("enforcement", "state_dir"),
        ("api", "socket"),
        ("forward", "spool_dir"),
        ("recorder", "dir"),
        ("policy", "directory"),
        ("enrich", "cri_socket"),
    ];
    let mut section = String::new();
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim().trim_matches('"'));
        if KEYS.contains(&(section.as_str(), key)) && value.starts_with('/') {
            found.push((format!("{section}.{key}"), value.to_owned()));
        }
    }
    found
}

/// The feature `name` of a `vigil probe --json` report (null when absent).
fn probe_feature(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
        .cloned()
        .unwrap_or_default()
}

/// Whether `path` is `dir` or below it.
fn under(path: &str, dir: &str) -> bool {
    Path::new(path).starts_with(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_paths_reads_sections_and_skips_relative_values() {
        let text = "node_name = \"\"\n[output]\ntarget = \"/var/log/vigil/e.jsonl\"\n[api]\nsocket = \"/run/vigil/vigil.sock\"\n[recorder]\ndir = \"captures\"\n";
        assert_eq!(
            config_paths(text),
            [
                (
                    "output.target".to_owned(),
                    "/var/log/vigil/e.jsonl".to_owned()
                ),
                ("api.socket".to_owned(), "/run/vigil/vigil.sock".to_owned()),
            ]
        );
        assert!(under("/run/vigil/vigil.sock", "/run/vigil"));
        assert!(!under("/run/vigilant", "/run/vigil"));
    }
}
