//! `cargo xtask lint` and `cargo xtask test`: stages run in order, each timed; a failed stage
//! is reported and the later ones still run, so one run shows every problem.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{cargo, cmd, deploy, kernels, privileged_tests, setup, setup::BuildEnv};

/// Which stages `test` runs.
pub struct TestPlan {
    pub lint: bool,
    pub unit: bool,
    pub privileged: bool,
    /// The kernel matrix (`kernels::Options::default()`: 6.1 and 6.12, x86_64 and aarch64).
    pub kernels: bool,
}

pub fn lint() -> Result<ExitCode> {
    let mut stages = Stages::new("lint");
    let env = stages.setup()?;
    stages.lint(&env);
    Ok(stages.finish())
}

pub fn test(plan: &TestPlan) -> Result<ExitCode> {
    let mut stages = Stages::new("test");
    let env = stages.setup()?;
    if plan.lint {
        stages.lint(&env);
    }
    if plan.unit {
        stages.run("unit and pipeline tests", || {
            let mut test = cargo::with_env(&env);
            test.args([
                "test",
                "--no-fail-fast",
                "--workspace",
                "--exclude",
                "vigil-tests",
                "--exclude",
                "vigil-ebpf",
            ]);
            cmd::run(&mut test)
        });
        stages.run("deployment manifests", || {
            // `vigil config check` and `vigil policy check` run on what the manifests ship.
            crate::agent::build_with(&env, true)?;
            deploy::check_manifests(&env)
        });
    }
    if plan.privileged {
        stages.run("privileged tests", || privileged_tests::run(&env));
        // After the privileged tests, whose release build the package and the image reuse.
        stages.run("deployment packages", || {
            if !crate::privilege::is_root() {
                anyhow::bail!("dpkg -i and podman need root: run `cargo xtask test` as root");
            }
            deploy::check_packages(&env)
        });
    }
    if plan.kernels {
        stages.run("kernel matrix", || {
            match kernels::run(&kernels::Options::default())? {
                code if code == ExitCode::SUCCESS => Ok(()),
                _ => anyhow::bail!("a check failed on a guest kernel (the matrix above)"),
            }
        });
    }
    Ok(stages.finish())
}

struct Stages {
    who: &'static str,
    done: Vec<(&'static str, Duration, bool)>,
}

impl Stages {
    fn new(who: &'static str) -> Self {
        Self {
            who,
            done: Vec::new(),
        }
    }

    /// Setup is the one stage whose failure stops everything: nothing builds without it.
    fn setup(&mut self) -> Result<BuildEnv> {
        let started = Instant::now();
        let env = setup::run();
        self.done.push(("setup", started.elapsed(), env.is_ok()));
        if env.is_err() {
            self.finish();
        }
        env
    }

    fn lint(&mut self, env: &BuildEnv) {
        self.run("rustfmt", || {
            cmd::run(cargo::host().args(["fmt", "--all", "--check"]))
        });
        self.run("clippy (host)", || {
            // vigil-ebpf is `no_main` for bpfel-unknown-none: its clippy is the next stage.
            cmd::run(cargo::with_env(env).args([
                "clippy",
                "--workspace",
                "--exclude",
                "vigil-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        });
        self.run("clippy (eBPF)", || {
            // A target folder of its own, so this does not wait on the main build's lock.
            let target_dir = cargo::target_dir().join("ebpf-clippy");
            let mut clippy = cargo::ebpf(env);
            clippy
                .args(["clippy", "--package", "vigil-ebpf", "--release"])
                .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
                .arg("--target-dir")
                .arg(target_dir)
                .args(["--", "-D", "warnings"]);
            cmd::run(&mut clippy)
        });
    }

    fn run(&mut self, name: &'static str, stage: impl FnOnce() -> Result<()>) {
        println!("{}: ==== {name} ====", self.who);
        let started = Instant::now();
        let result = stage();
        let elapsed = started.elapsed();
        match &result {
            Ok(()) => println!(
                "{}: {name} passed in {:.1} s",
                self.who,
                elapsed.as_secs_f64()
            ),
            Err(err) => println!("{}: {name} FAILED: {err:#}", self.who),
        }
        self.done.push((name, elapsed, result.is_ok()));
    }

    /// Prints the time of every stage and gives the process's exit code.
    fn finish(&self) -> ExitCode {
        println!("{}: ==== summary ====", self.who);
        let mut total = Duration::ZERO;
        for (name, elapsed, ok) in &self.done {
            let verdict = if *ok { "ok" } else { "FAILED" };
            println!(
                "{}: {name:<26} {verdict:<7} {:>7.1} s",
                self.who,
                elapsed.as_secs_f64()
            );
            total += *elapsed;
        }
        println!(
            "{}: {:<34} {:>7.1} s",
            self.who,
            "total",
            total.as_secs_f64()
        );
        let failed = self.done.iter().filter(|(_, _, ok)| !ok).count();
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            println!("{}: {failed} stage(s) failed", self.who);
            ExitCode::FAILURE
        }
    }
}
