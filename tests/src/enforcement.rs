//! Enforcement installed under a private layout: its own bpffs directory
//! (`/sys/fs/bpf/vigil-test-<pid>-<label>`) and rule record, so tests never see each other's
//! rules (nor those of an operator or of another checkout's tests), cleared when dropped.

use std::path::{Path, PathBuf};

use vigil::enforce::{Enforcer, Guard, InstallReport, Layout, clear};

use crate::{gate, spawn::TempDir};

/// The enforcement programs and maps of one test; [`clear`]ed on drop, which also thaws
/// the cgroups its rules froze, even when the test failed.
pub struct Installed {
    pub enforcer: Enforcer,
    pub layout: Layout,
    /// What the install attached and why a duty fell back.
    pub report: InstallReport,
    _state: TempDir,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Err(error) = clear(&self.layout) {
            eprintln!("clearing {}: {error}", self.layout.bpffs_dir.display());
        }
    }
}

/// Installs the fallback enforcement programs (kill-on-exec, cgroup connect deny: what every
/// kernel runs) under a layout private to this test (`label` names it); `None` (after saying
/// why) without the privileges it needs.
#[track_caller]
pub fn install(label: &str) -> Option<Installed> {
    install_choosing(label, false)
}

/// As [`install`], with the BPF-LSM variants where this kernel runs them; the report says
/// which duties fell back and why.
#[track_caller]
pub fn install_preferring_lsm(label: &str) -> Option<(Installed, InstallReport)> {
    let installed = install_choosing(label, true)?;
    let report = installed.report.clone();
    Some((installed, report))
}

#[track_caller]
fn install_choosing(label: &str, lsm: bool) -> Option<Installed> {
    if !gate::privileged() {
        gate::skip("enforcement needs root (CAP_BPF + CAP_SYS_ADMIN)");
        return None;
    }
    let state = TempDir::new(&format!("enforce-{label}"));
    let layout = Layout {
        bpffs_dir: PathBuf::from(format!(
            "/sys/fs/bpf/vigil-test-{}-{label}",
            std::process::id()
        )),
        state_dir: state.path().to_owned(),
    };
    let guard = Guard::new(&[], &[]);
    let (enforcer, report) = if lsm {
        Enforcer::install(layout.clone(), guard)
    } else {
        Enforcer::install_fallbacks(layout.clone(), guard)
    }
    .expect("enforcement installs");
    assert!(
        report.attached.contains(&"enforce_exec") || report.attached.contains(&"enforce_lsm_exec"),
        "attached: {:?}",
        report.attached
    );
    Some(Installed {
        enforcer,
        layout,
        report,
        _state: state,
    })
}

/// A layout private to one test (`label` names it), with its rule record in `state_dir`, for
/// an agent to install enforcement in; [`clear`]ed (and what it froze thawed) on drop.
pub struct PrivateLayout {
    pub layout: Layout,
}

impl PrivateLayout {
    pub fn new(label: &str, state_dir: &Path) -> Self {
        Self {
            layout: Layout {
                bpffs_dir: PathBuf::from(format!(
                    "/sys/fs/bpf/vigil-test-{}-{label}",
                    std::process::id()
                )),
                state_dir: state_dir.to_owned(),
            },
        }
    }

    /// Sets `[enforcement] bpffs_dir` and `state_dir` of `config` to this layout.
    pub fn apply(&self, config: &mut vigil::config::Config) {
        config.enforcement.bpffs_dir = self.layout.bpffs_dir.clone();
        config.enforcement.state_dir = self.layout.state_dir.clone();
    }

    /// The `[enforcement]` section of a config file for this layout.
    pub fn toml(&self) -> String {
        format!(
            "[enforcement]\nbpffs_dir = \"{}\"\nstate_dir = \"{}\"\n",
            self.layout.bpffs_dir.display(),
            self.layout.state_dir.display()
        )
    }
}

impl Drop for PrivateLayout {
    fn drop(&mut self) {
        if let Err(error) = clear(&self.layout) {
            eprintln!("clearing {}: {error}", self.layout.bpffs_dir.display());
        }
    }
}
