//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the libFuzzer targets of `fuzz/` (see
//! its Cargo.toml) one after the other, each for a bounded time, with the nightly toolchain.
//! cargo-fuzz is used from PATH, or built into the cache folder like bpf-linker.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, ensure};

use crate::{cargo, cmd, setup};

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Every target, in the order they run; with seed folders (read, never written).
const TARGETS: &[(&str, &[&str])] = &[
    ("event_decoder", &[]),
    ("policy", &["policies/default"]),
    ("dns_decoder", &["fuzz/seeds/dns_decoder"]),
    ("api_filter", &[]),
    ("capture_reader", &["fuzz/seeds/capture_reader"]),
];

pub fn run(seconds: u64, targets: &[String]) -> Result<ExitCode> {
    let build = setup::run()?;
    let cargo_fuzz = ensure_cargo_fuzz(&setup::cache_dir()?)?;
    let chosen: Vec<&(&str, &[&str])> = if targets.is_empty() {
        TARGETS.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for name in targets {
            let found = TARGETS.iter().find(|(t, _)| t == name);
            let names: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
            chosen.push(found.with_context(|| {
                format!("no fuzz target `{name}` (there are {})", names.join(", "))
            })?);
        }
        chosen
    };
    let path = env::join_paths(
        [cargo_fuzz.parent(), build.linker.parent()]
            .into_iter()
            .flatten()
            .map(Path::to_path_buf)
            .chain(env::split_paths(&env::var_os("PATH").unwrap_or_default())),
    )
    .context("PATH")?;
    for (target, seeds) in chosen {
        let corpus = Path::new("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        let mut fuzz = Command::new("rustup");
        build.apply(&mut fuzz);
        fuzz.env("PATH", &path)
            .args([
                "run",
                "nightly",
                "cargo",
                "fuzz",
                "run",
                "--sanitizer",
                "none",
            ])
            .arg(target)
            .arg(&corpus)
            .args(seeds.iter().filter(|s| Path::new(s).is_dir()))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-print_final_stats=1", "-rss_limit_mb=2048", "-timeout=10"]);
        println!("fuzz: {target} for {seconds} s");
        let status = cmd::status(&mut fuzz)?;
        ensure!(
            status.success(),
            "fuzz target {target} failed ({status}): the input is in fuzz/artifacts/{target}/"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// cargo-fuzz from PATH, else `<cache>/cargo-fuzz/bin/cargo-fuzz`, built when missing.
fn ensure_cargo_fuzz(cache: &Path) -> Result<PathBuf> {
    if let Some(found) = cmd::which("cargo-fuzz") {
        return Ok(found);
    }
    let root = cache.join("cargo-fuzz");
    let binary = root.join("bin/cargo-fuzz");
    if binary.is_file() {
        return Ok(binary);
    }
    println!(
        "fuzz: building cargo-fuzz {CARGO_FUZZ_VERSION} into {}",
        root.display()
    );
    let mut install = cargo::host();
    install
        .args(["install", "--locked", "--root"])
        .arg(&root)
        .arg(format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"));
    cmd::run(&mut install).context("building cargo-fuzz failed")?;
    Ok(binary)
}
