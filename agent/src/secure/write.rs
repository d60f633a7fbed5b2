//! Opening the files the daemon writes without following symbolic links.
//!
//! The last component is opened with `O_NOFOLLOW` (a link there fails with `ELOOP`, reported
//! as below); new files are created 0600. Directories the agent owns outright (the spool, the
//! enforcement state) are created 0700 and must not be links. A directory the operator names
//! for the JSON output may be a link (`/var/log` often is): that is their choice, not a
//! planted file.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::Path,
};

/// Mode of every file the agent creates.
pub const FILE_MODE: u32 = 0o600;

fn symlink_error(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a symbolic link, which the agent never follows when writing; remove it \
             (or configure the real path)",
            path.display()
        ),
    )
}

/// Opens `path` as `options` say, never through a symbolic link in its last component;
/// created with mode 0600.
pub fn open(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    options
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                symlink_error(path)
            } else {
                e
            }
        })
}

/// Creates `dir` (and its parents) 0700 when missing; refuses it when it is a symbolic link
/// or not a directory.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let metadata = std::fs::symlink_metadata(dir)?;
    if metadata.file_type().is_symlink() {
        return Err(symlink_error(dir));
    }
    if !metadata.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", dir.display()),
        ));
    }
    Ok(())
}

/// Writes `bytes` to a fresh `tmp` (whatever was there, a link included, is removed first;
/// `O_EXCL` then creates it or fails) and renames it over `path` (a rename replaces a link,
/// never writes through it).
pub fn replace(path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = open(tmp, OpenOptions::new().write(true).create_new(true))?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use super::*;
    use crate::secure::scratch::Scratch;

    #[test]
    fn a_link_in_the_last_component_is_refused_and_its_target_untouched() {
        let dir = Scratch::new("write-link");
        let victim = dir.file("victim", "precious", 0o644);
        let link = dir.path().join("out.jsonl");
        symlink(&victim, &link).expect("plant a link");
        let error = open(&link, OpenOptions::new().append(true).create(true))
            .expect_err("a link is never followed");
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
        assert!(
            error.to_string().contains(&link.display().to_string()),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
    }

    #[test]
    fn new_files_are_0600_and_replace_swaps_a_planted_link_out() {
        let dir = Scratch::new("write-mode");
        let path = dir.path().join("state.json");
        let file = open(&path, OpenOptions::new().write(true).create(true)).expect("create");
        let mode = file.metadata().expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let victim = dir.file("victim", "precious", 0o644);
        let tmp = dir.path().join("state.json.tmp");
        symlink(&victim, &tmp).expect("plant a link at the temporary name");
        std::fs::remove_file(&path).expect("remove");
        symlink(&victim, &path).expect("plant a link at the final name");
        replace(&path, &tmp, b"{}").expect("replace");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}");
        assert!(!std::fs::symlink_metadata(&path).expect("stat").is_symlink());
    }

    #[test]
    fn a_linked_private_directory_is_refused() {
        let dir = Scratch::new("write-dir");
        let real = dir.path().join("elsewhere");
        std::fs::create_dir(&real).expect("dir");
        let link = dir.path().join("spool");
        symlink(&real, &link).expect("plant a directory link");
        let error = private_dir(&link).expect_err("a linked directory");
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
        let fresh = dir.path().join("a/b");
        private_dir(&fresh).expect("created");
        let mode = std::fs::metadata(&fresh)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
