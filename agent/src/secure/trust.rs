//! Refusing config and policy files that a non-root user could have written.
//!
//! A path is trusted when the file and every directory above it (as named, and after
//! resolving symbolic links) is owned by root (or by the agent's own user, when it runs as
//! one: it could write them anyway) and not writable by group or others. A directory above
//! may be world-writable when it has the sticky bit (`/tmp`): there, others cannot rename or
//! remove what root put in it.

use std::{
    fs::{File, Metadata},
    io::Read as _,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot check the ownership and mode of {path}")]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing {path}: {problem}, so a non-root user could change what the agent runs with; fix: {fix}"
    )]
    Untrusted {
        path: PathBuf,
        problem: String,
        fix: String,
    },
}

/// Why `path` with `metadata` is not trusted (problem, fix), if it is not. `above` marks a
/// directory above the one named, where a sticky world-writable directory is accepted.
fn problem(
    path: &Path,
    metadata: &Metadata,
    above: bool,
    own_uid: u32,
) -> Option<(String, String)> {
    let uid = metadata.uid();
    if uid != 0 && uid != own_uid {
        return Some((
            format!("it is owned by uid {uid}, not root"),
            format!("`chown root {}`", path.display()),
        ));
    }
    let mode = metadata.mode();
    let sticky_dir = above && metadata.is_dir() && mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky_dir {
        return Some((
            format!(
                "it is writable by group or others (mode {:o})",
                mode & 0o7777
            ),
            format!("`chmod go-w {}`", path.display()),
        ));
    }
    None
}

fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn stat(path: &Path) -> Result<Metadata, TrustError> {
    std::fs::metadata(path).map_err(|source| TrustError::Stat {
        path: path.to_owned(),
        source,
    })
}

fn check(path: &Path, metadata: &Metadata, above: bool) -> Result<(), TrustError> {
    match problem(path, metadata, above, own_uid()) {
        None => Ok(()),
        Some((problem, fix)) => Err(TrustError::Untrusted {
            path: path.to_owned(),
            problem,
            fix,
        }),
    }
}

/// Checks every directory above `path`, as named and as resolved.
fn check_above(path: &Path) -> Result<(), TrustError> {
    let absolute = std::path::absolute(path).map_err(|source| TrustError::Stat {
        path: path.to_owned(),
        source,
    })?;
    let resolved = std::fs::canonicalize(path).map_err(|source| TrustError::Stat {
        path: path.to_owned(),
        source,
    })?;
    for named in [&absolute, &resolved] {
        for dir in named.ancestors().skip(1) {
            check(dir, &stat(dir)?, true)?;
        }
    }
    Ok(())
}

/// Checks a directory the daemon loads files from (the files are checked as they are read).
pub fn check_dir(dir: &Path) -> Result<(), TrustError> {
    check(dir, &stat(dir)?, false)?;
    check_above(dir)
}

/// Reads a file the daemon takes instructions from, after checking it and the directories
/// above it. The checked file is the one read (same descriptor).
pub fn read_to_string(path: &Path) -> Result<String, TrustError> {
    let error = |source| TrustError::Stat {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(error)?;
    check(path, &file.metadata().map_err(error)?, false)?;
    check_above(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(error)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::scratch::{Scratch, chmod};

    #[test]
    fn a_root_owned_file_that_only_root_writes_is_read() {
        let dir = Scratch::new("trust-ok");
        let file = dir.file("config.toml", "x = 1\n", 0o644);
        assert_eq!(read_to_string(&file).expect("trusted"), "x = 1\n");
        check_dir(dir.path()).expect("trusted directory");
    }

    #[test]
    fn group_or_other_writable_files_and_directories_are_refused_with_the_fix() {
        let dir = Scratch::new("trust-mode");
        let file = dir.file("policy.yaml", "rules: []\n", 0o644);
        for mode in [0o664, 0o646, 0o666] {
            chmod(&file, mode);
            let error = read_to_string(&file)
                .expect_err("writable by others")
                .to_string();
            assert!(error.contains(&file.display().to_string()), "{error}");
            assert!(error.contains("chmod go-w"), "{error}");
        }
        chmod(&file, 0o644);
        chmod(dir.path(), 0o777);
        let error = read_to_string(&file).expect_err("in a world-writable directory");
        assert!(
            error
                .to_string()
                .contains(&format!("refusing {}:", dir.path().display())),
            "{error}"
        );
        let error = check_dir(dir.path()).expect_err("a world-writable directory");
        assert!(error.to_string().contains("mode 777"), "{error}");
        // Sticky does not make the named directory itself acceptable.
        chmod(dir.path(), 0o1777);
        check_dir(dir.path()).expect_err("sticky, but others can add files");
        read_to_string(&file).expect("a sticky directory above the file is fine");
    }

    #[test]
    fn a_file_owned_by_another_user_is_refused() {
        if own_uid() != 0 {
            eprintln!("skipped: only root can give a file to another user");
            return;
        }
        let dir = Scratch::new("trust-owner");
        let file = dir.file("config.toml", "", 0o644);
        std::os::unix::fs::chown(&file, Some(65534), None).expect("chown");
        let error = read_to_string(&file)
            .expect_err("owned by nobody")
            .to_string();
        assert!(error.contains("owned by uid 65534"), "{error}");
        assert!(
            error.contains(&format!("chown root {}", file.display())),
            "{error}"
        );
    }

    #[test]
    fn a_link_from_an_untrusted_directory_is_refused() {
        let trusted = Scratch::new("trust-target");
        let target = trusted.file("config.toml", "", 0o644);
        let untrusted = Scratch::new("trust-link");
        chmod(untrusted.path(), 0o777);
        let link = untrusted.path().join("config.toml");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let error = read_to_string(&link).expect_err("the link can be swapped");
        assert!(
            error.to_string().contains("writable by group or others"),
            "{error}"
        );
    }
}
