//! Root: knowing whether we have it, getting it through sudo, and preparing the machine for
//! programs that load eBPF (tracefs mounted, resource limits raised).

use std::{
    ffi::{OsStr, OsString},
    fs,
    path::Path,
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// Whether this process runs with effective uid 0, read from `/proc/self/status`.
pub fn is_root() -> bool {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0")
}

/// A command that runs `program` as root: directly when we are root, else through `sudo`
/// (which drops the environment, so `env` carries the variables the program needs).
pub fn root_command(
    who: &str,
    program: impl AsRef<OsStr>,
    env: &[(&str, OsString)],
) -> Result<Command> {
    if is_root() {
        let mut cmd = Command::new(program);
        // Only what differs from our own environment, which the command inherits anyway.
        let differs =
            |(key, value): &&(&str, OsString)| std::env::var_os(key).as_ref() != Some(value);
        cmd.envs(env.iter().filter(differs).map(|(k, v)| (k, v)));
        return Ok(cmd);
    }
    if cmd::which("sudo").is_none() {
        bail!(
            "{who}: this step needs root, this process is not root and sudo is not installed; \
             run the same command as root"
        );
    }
    println!("{who}: not root, running the next command through sudo");
    let mut cmd = Command::new("sudo");
    cmd.arg("--").arg("env");
    for (key, value) in env {
        let mut pair = OsString::from(key);
        pair.push("=");
        pair.push(value);
        cmd.arg(pair);
    }
    cmd.arg(program);
    Ok(cmd)
}

/// The variables worth carrying into a program run as root: the agent's own (`VIGIL_*`) and
/// Rust's logging and backtrace switches.
pub fn forwarded_env() -> Vec<(&'static str, OsString)> {
    const KEYS: &[&str] = &[
        "VIGIL_REQUIRE_BPF",
        "VIGIL_LOG",
        "RUST_LOG",
        "RUST_BACKTRACE",
    ];
    KEYS.iter()
        .filter_map(|&key| std::env::var_os(key).map(|value| (key, value)))
        .collect()
}

const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs at its usual place unless it is there already: tracepoint programs attach
/// through it, and a fresh machine may not have it mounted.
pub fn ensure_tracefs(who: &str) -> Result<()> {
    let mounts =
        fs::read_to_string("/proc/self/mounts").context("cannot read /proc/self/mounts")?;
    let mounted = mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let _device = fields.next();
        fields.next() == Some(TRACEFS) && fields.next() == Some("tracefs")
    });
    if mounted {
        println!("{who}: tracefs is mounted at {TRACEFS}");
        return Ok(());
    }
    if !Path::new(TRACEFS).is_dir() {
        bail!("{who}: {TRACEFS} does not exist: this kernel has no tracefs mount point");
    }
    println!("{who}: tracefs is not mounted, mounting it at {TRACEFS}");
    let mut mount = root_command(who, "mount", &[])?;
    mount.args(["-t", "tracefs", "tracefs", TRACEFS]);
    cmd::run(&mut mount).context("cannot mount tracefs")
}

/// Raises the soft limits that eBPF tests bump into up to their hard limits, for this process
/// and so for every child. Raising a soft limit up to the hard one needs no privilege.
pub fn raise_limits(who: &str) -> Result<()> {
    raise(who, "RLIMIT_NOFILE", libc::RLIMIT_NOFILE)?;
    // On kernels >= 5.11 BPF memory is charged to the memory cgroup, not to this limit, so a
    // low value is harmless there; raising it helps older kernels.
    raise(who, "RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK)
}

fn raise(who: &str, name: &str, resource: libc::__rlimit_resource_t) -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("getrlimit({name})"));
    }
    let show = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_owned()
        } else {
            v.to_string()
        }
    };
    if limit.rlim_cur == limit.rlim_max {
        println!(
            "{who}: {name} is {} (already at its hard limit)",
            show(limit.rlim_cur)
        );
        return Ok(());
    }
    let before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit; a soft limit equal to the hard one is always allowed.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("setrlimit({name})"));
    }
    println!(
        "{who}: raised {name} from {} to {}",
        show(before),
        show(limit.rlim_cur)
    );
    Ok(())
}
