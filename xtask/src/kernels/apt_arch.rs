//! apt for one architecture. The host's own architecture uses the machine's package lists;
//! another (arm64 on an amd64 host) gets a private apt state in the cache (its own lists,
//! status and archive folders), so the machine's dpkg never learns about a foreign
//! architecture and nothing gets installed.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::{apt::Apt, cmd, privilege};

pub struct AptArch<'a> {
    apt: &'a mut Apt,
    /// `-o` options of the private state; empty for the host's architecture.
    options: Vec<String>,
    /// The private state's lists were fetched in this run (or found).
    lists_ready: bool,
    private: Option<PathBuf>,
}

impl<'a> AptArch<'a> {
    /// apt for `debian_arch` (`amd64`, `arm64`); a private state under `cache` unless it is
    /// the host's.
    pub fn new(apt: &'a mut Apt, cache: &Path, debian_arch: &str) -> Result<Self> {
        let host = cmd::output(Command::new("dpkg").arg("--print-architecture"))?;
        if host.trim() == debian_arch {
            return Ok(Self {
                apt,
                options: Vec::new(),
                lists_ready: true,
                private: None,
            });
        }
        let base = cache.join(format!("apt-{debian_arch}"));
        for dir in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(base.join(dir))
                .with_context(|| format!("cannot create {}", base.join(dir).display()))?;
        }
        let status = base.join("status");
        if !status.exists() {
            fs::write(&status, "").context("cannot create the private dpkg status")?;
        }
        let option = |key: &str, value: &str| ["-o".to_owned(), format!("{key}={value}")];
        let mut options = Vec::new();
        options.extend(option("APT::Architecture", debian_arch));
        options.extend(option("APT::Architectures", debian_arch));
        options.extend(option(
            "Dir::State::Lists",
            &format!("{}/lists", base.display()),
        ));
        options.extend(option("Dir::State::status", &status.display().to_string()));
        options.extend(option("Dir::Cache", &format!("{}/cache", base.display())));
        if privilege::is_root() {
            // apt's sandbox user `_apt` cannot write into a root-owned cache folder.
            options.extend(option("APT::Sandbox::User", "root"));
        }
        let lists_ready = has_lists(&base.join("lists"));
        Ok(Self {
            apt,
            options,
            lists_ready,
            private: Some(base),
        })
    }

    /// Names of the packages starting with `prefix`, from the lists on disk.
    pub fn package_names(&mut self, prefix: &str) -> Result<Vec<String>> {
        self.ensure_lists()?;
        let mut query = Command::new("apt-cache");
        query.args(&self.options).arg("pkgnames").arg(prefix);
        Ok(cmd::output(&mut query)?
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// Downloads `names` (no dependencies) into `dir`, emptied first.
    pub fn download(&mut self, names: &[&str], dir: &Path) -> Result<Vec<PathBuf>> {
        self.ensure_lists()?;
        let options = self.options.clone();
        self.apt.download_with(&options, names, dir)
    }

    /// `apt-get update` of the private state, once, when it has no lists yet.
    fn ensure_lists(&mut self) -> Result<()> {
        if self.lists_ready {
            return Ok(());
        }
        let base = self
            .private
            .as_ref()
            .map_or_else(PathBuf::new, Clone::clone);
        println!(
            "test-kernels: fetching package lists into the private apt state {}",
            base.display()
        );
        let mut update = Command::new("apt-get");
        update.args(&self.options).arg("update");
        cmd::run(&mut update).context("apt-get update of the private state failed")?;
        self.lists_ready = true;
        Ok(())
    }
}

fn has_lists(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    })
}
