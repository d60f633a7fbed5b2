//! The `vigil` executable, for tests of the command line. Cargo does not hand another
//! package's binaries to a test, so it is looked up where `cargo xtask build` puts it.

use std::path::{Path, PathBuf};

use crate::gate;

/// Names a `vigil` binary to use instead of the one in the target directory.
pub const VIGIL_BIN_VAR: &str = "VIGIL_BIN";

/// Where the binary may be: `$VIGIL_BIN`; else `release/vigil` and `debug/vigil` in this
/// test's own target directory (`<target>/<profile>/deps/<test>`), in `$CARGO_TARGET_DIR` and
/// in the workspace's `target/`.
pub fn candidates() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os(VIGIL_BIN_VAR) {
        return vec![PathBuf::from(path)];
    }
    let own_profile = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_owned()));
    let mut found: Vec<PathBuf> = Vec::new();
    let target_dirs = [
        own_profile
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_owned),
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(|workspace| workspace.join("target")),
    ];
    for target in target_dirs.into_iter().flatten() {
        for profile in ["release", "debug"] {
            let candidate = target.join(profile).join("vigil");
            if !found.contains(&candidate) {
                found.push(candidate);
            }
        }
    }
    found
}

/// The newest `vigil` binary of the [`candidates`], or `None` after [`gate::skip`] said it
/// must be built first.
pub fn vigil_binary() -> Option<PathBuf> {
    let candidates = candidates();
    // The newest: a binary left from an older build must not shadow the one just built.
    let newest = candidates
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified);
    if let Some((_, found)) = newest {
        return Some(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    gate::skip(&format!(
        "no vigil binary at {}: run `cargo xtask build` first (or set {VIGIL_BIN_VAR})",
        looked.join(" or ")
    ));
    None
}

/// The Python venv `cargo xtask setup` makes (grpcio, grpcio-tools, grpcurl,
/// opentelemetry-proto): `$VIGIL_CACHE_DIR`, else `$XDG_CACHE_HOME/vigil`, else
/// `$HOME/.cache/vigil`, then `py` (as in xtask/src/python.rs).
pub fn python_venv() -> Option<PathBuf> {
    let non_empty = |key: &str| {
        std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let cache = non_empty("VIGIL_CACHE_DIR")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|d| d.join("vigil")))
        .or_else(|| non_empty("HOME").map(|d| d.join(".cache/vigil")))?;
    let venv = cache.join("py");
    venv.join("bin/python").exists().then_some(venv)
}

/// What one run of the `vigil` command did.
#[derive(Debug)]
pub struct Run {
    /// The command's pid (as the agent sees it on its API socket).
    pub pid: u32,
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The output, when the command succeeded; panics with its stderr otherwise.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "vigil failed: {self:?}");
        &self.stdout
    }

    /// The error it printed, when it failed; panics when it succeeded.
    #[track_caller]
    pub fn failed(&self) -> &str {
        assert!(!self.status.success(), "vigil succeeded: {self:?}");
        self.stderr.trim_end()
    }
}

/// Runs `vigil ARGS` to its end (within 60 s).
#[track_caller]
pub fn run(vigil: &Path, args: &[&str]) -> Run {
    use std::{io::Read as _, process::Stdio};
    let mut child = std::process::Command::new(vigil)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running vigil {args:?}: {e}"));
    let pid = child.id();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let _ = out.read_to_string(&mut stdout);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for vigil") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("vigil {args:?} did not end within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    stderr.push_str(&reader.join().unwrap_or_default());
    Run {
        pid,
        status,
        stdout,
        stderr,
    }
}
