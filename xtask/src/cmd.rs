//! Running external commands. Every command is printed before it runs, and is always built
//! from an argument vector, never a shell string.

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// Runs `cmd` with inherited stdio and fails unless it exits successfully.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    check(cmd, status)
}

/// Runs `cmd` with inherited stdio and returns how it ended, success or not.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    announce(cmd);
    cmd.status()
        .with_context(|| format!("cannot start `{}`", program(cmd)))
}

/// Like [`run`], but kills the command once `limit` has passed: for steps that reach the
/// network and may hang instead of failing on a machine without it.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Result<()> {
    announce(cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{}`", program(cmd)))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child
            .try_wait()
            .context("cannot wait for a child process")?
        {
            return check(cmd, status);
        }
        if Instant::now() >= deadline {
            // The child may have exited between the two calls; either way it is gone after this.
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{}` did not finish within {} s",
                program(cmd),
                limit.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `cmd`, capturing its stdout, and fails unless it exits successfully. Its stderr is
/// shown only when it fails.
pub fn output(cmd: &mut Command) -> Result<String> {
    announce(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", program(cmd)))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "`{}` failed ({}): {}",
            display(cmd),
            out.status,
            stderr.trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{}` printed non-UTF-8", program(cmd)))
}

/// Like [`output`], but a command that cannot start or fails gives `None`: for questions such
/// as "is this installed?".
pub fn probe(cmd: &mut Command) -> Option<String> {
    output(cmd).ok()
}

/// Fails with the command line when `status` is not a success.
pub fn check(cmd: &Command, status: ExitStatus) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("`{}` failed ({status})", short(cmd))
    }
}

/// Where `name` is found on PATH, if anywhere.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Prints the command about to run, indented under the step that runs it.
fn announce(cmd: &Command) {
    println!("    $ {}", display(cmd));
}

/// The program's file name and first argument, e.g. `cargo clippy`: the full line was printed
/// just before the command ran.
fn short(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned();
    match cmd.get_args().next() {
        Some(arg) => format!("{program} {}", arg.to_string_lossy()),
        None => program,
    }
}

fn program(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// The command line as a reader would type it: the environment it sets, then the program and
/// its arguments. Search paths (PATH, LD_LIBRARY_PATH) show only the folder put in front.
pub fn display(cmd: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in cmd.get_envs() {
        let Some(value) = value else { continue };
        let key = key.to_string_lossy();
        let value = if key.ends_with("PATH") && env::split_paths(value).nth(1).is_some() {
            let first = env::split_paths(value).next().unwrap_or_default();
            format!("{}:…", first.display())
        } else {
            value.to_string_lossy().into_owned()
        };
        words.push(format!("{key}={}", quote(OsStr::new(&value))));
    }
    words.push(quote(cmd.get_program()));
    words.extend(cmd.get_args().map(quote));
    let line = words.join(" ");
    match cmd.get_current_dir() {
        Some(dir) => format!("(in {}) {line}", dir.display()),
        None => line,
    }
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,+@%~…".contains(c));
    if plain {
        word.into_owned()
    } else if word.contains('\n') {
        // Bash's $'...' keeps the line on one line and still pastes into a shell.
        let escaped = word.replace('\\', r"\\").replace('\'', r"\'");
        format!("$'{}'", escaped.replace('\n', r"\n"))
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
