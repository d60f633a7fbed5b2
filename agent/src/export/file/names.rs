//! The rotated files' names: `<target>.N` (1 newest), `<target>.N.gz` once compressed and
//! `<target>.N.gz.tmp` while compressing; and moving them up by one at a rotation.

use std::{
    ffi::OsString,
    io,
    path::{Path, PathBuf},
};

use super::FileError;

/// What a rotated file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Variant {
    Plain,
    Gzip,
    /// A compression under way, or cut short: never complete, never kept.
    Partial,
}

impl Variant {
    const fn suffix(self) -> &'static str {
        match self {
            Self::Plain => "",
            Self::Gzip => ".gz",
            Self::Partial => ".gz.tmp",
        }
    }
}

#[derive(Debug)]
pub(super) struct Rotated {
    pub index: usize,
    pub variant: Variant,
    pub path: PathBuf,
}

/// `<path>.<index>`.
pub(super) fn numbered(path: &Path, index: usize) -> PathBuf {
    with_suffix(path, &format!(".{index}"))
}

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The rotated files of `path` on disk, in no order.
pub(super) fn list(path: &Path) -> Result<Vec<Rotated>, FileError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        // Not UTF-8: such a target never has rotated files we could recognise.
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let entries = std::fs::read_dir(dir).map_err(|source| FileError::List {
        dir: dir.to_owned(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let variant = match &rest[digits..] {
            "" => Variant::Plain,
            ".gz" => Variant::Gzip,
            ".gz.tmp" => Variant::Partial,
            _ => continue,
        };
        match rest[..digits].parse::<usize>() {
            Ok(index) if index >= 1 && !rest.starts_with('0') => found.push(Rotated {
                index,
                variant,
                path: entry.path(),
            }),
            _ => {}
        }
    }
    Ok(found)
}

/// Makes `<path>.1` free and moves the current file there: deletes what would pass
/// `backups` and every partial compression, moves `.N` to `.N+1` from the oldest down. With
/// `backups` 0 the current file is deleted.
pub(super) fn shift(path: &Path, backups: usize) -> Result<(), FileError> {
    let rotated = list(path)?;
    for r in &rotated {
        if r.index >= backups || r.variant == Variant::Partial {
            remove(&r.path)?;
        }
    }
    for index in (1..backups).rev() {
        for r in rotated.iter().filter(|r| r.index == index) {
            if r.variant != Variant::Partial {
                let to = with_suffix(&numbered(path, index + 1), r.variant.suffix());
                rename(&r.path, &to)?;
            }
        }
    }
    if backups == 0 {
        remove(path)
    } else {
        rename(path, &numbered(path, 1))
    }
}

/// Cleans what a run that stopped while compressing left: partial `.gz.tmp` files are
/// deleted, and so is a plain file whose `.gz` is complete. Returns the plain rotated files
/// left (to compress, when compression is on).
pub(super) fn tidy(path: &Path) -> Result<Vec<PathBuf>, FileError> {
    let rotated = list(path)?;
    let mut plain = Vec::new();
    for r in &rotated {
        let compressed = || {
            rotated
                .iter()
                .any(|o| o.index == r.index && o.variant == Variant::Gzip)
        };
        match r.variant {
            Variant::Partial => remove(&r.path)?,
            Variant::Plain if compressed() => remove(&r.path)?,
            Variant::Plain => plain.push(r.path.clone()),
            Variant::Gzip => {}
        }
    }
    plain.sort();
    Ok(plain)
}

fn rename(from: &Path, to: &Path) -> Result<(), FileError> {
    std::fs::rename(from, to).map_err(|source| FileError::Rename {
        from: from.to_owned(),
        to: to.to_owned(),
        source,
    })
}

/// Deletes `path`; one that is already gone is fine.
pub(super) fn remove(path: &Path) -> Result<(), FileError> {
    match std::fs::remove_file(path) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => Err(FileError::Remove {
            path: path.to_owned(),
            source,
        }),
        _ => Ok(()),
    }
}
