//! A directory of capture files written one after another (`vigil capture record --out DIR`,
//! the flight recorder): `vigil-<node>-<time>-<n>.vcap`, a new file when the current one
//! reaches a size or age limit, the oldest deleted beyond a count.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use time::OffsetDateTime;

use super::{
    CaptureError, CaptureHeader, CaptureWriter, FrameLimits, error::io, header::now_unix_ns,
};
use crate::api::proto;

/// `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotateLimits {
    /// A file is closed once it holds this many bytes (it passes the limit by at most one
    /// frame and the end frame).
    pub max_bytes: Option<u64>,
    /// A file is closed when this old, at the next write or [`CaptureDir::tick`].
    pub max_age: Option<Duration>,
    /// Files of this node kept in the directory, the current one included (so at least
    /// one); older ones are deleted when a new file opens.
    pub max_files: Option<usize>,
}

pub struct CaptureDir {
    dir: PathBuf,
    /// The node's name as it can appear in a file name.
    node: String,
    header: CaptureHeader,
    limits: RotateLimits,
    frames: FrameLimits,
    current: Option<(CaptureWriter, Instant)>,
    next_index: u64,
}

impl CaptureDir {
    /// Creates `dir` (mode 0700) if needed. Files open lazily, at the first event, each with
    /// `header` (its `created_unix_ns` set to the time the file opens). Numbering goes on
    /// from the files of the same node already there.
    pub fn new(
        dir: &Path,
        header: CaptureHeader,
        limits: RotateLimits,
    ) -> Result<Self, CaptureError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating the capture directory", dir))?;
        let node = file_name_part(&header.node);
        let next_index = list(dir, &node)?.last().map_or(0, |f| f.index + 1);
        Ok(Self {
            dir: dir.to_owned(),
            node,
            header,
            limits,
            frames: FrameLimits::default(),
            current: None,
            next_index,
        })
    }

    pub fn with_frame_limits(mut self, frames: FrameLimits) -> Self {
        self.frames = frames;
        self
    }

    /// The file being written, if one is open.
    pub fn current(&self) -> Option<&Path> {
        self.current.as_ref().map(|(w, _)| w.path())
    }

    /// This node's capture files in the directory, oldest first.
    pub fn files(&self) -> Result<Vec<PathBuf>, CaptureError> {
        Ok(list(&self.dir, &self.node)?
            .into_iter()
            .map(|f| f.path)
            .collect())
    }

    pub fn write(&mut self, event: &proto::Event) -> Result<(), CaptureError> {
        if self.current.as_ref().is_some_and(|c| self.is_full(c)) {
            self.close()?;
        }
        if self.current.is_none() {
            self.open()?;
        }
        match &mut self.current {
            Some((writer, _)) => writer.write(event),
            None => Ok(()),
        }
    }

    /// Periodic work: closes the current file once past its age (the next event opens a
    /// new one), else writes its open frame out so that readers and a crash see it.
    pub fn tick(&mut self) -> Result<(), CaptureError> {
        let expired = self.current.as_ref().is_some_and(|(_, opened)| {
            self.limits
                .max_age
                .is_some_and(|age| opened.elapsed() >= age)
        });
        if expired {
            return self.close();
        }
        match &mut self.current {
            Some((writer, _)) => writer.flush(),
            None => Ok(()),
        }
    }

    /// Finishes the current file; the next event opens a new one.
    pub fn close(&mut self) -> Result<(), CaptureError> {
        match self.current.take() {
            Some((writer, _)) => writer.finish().map(drop),
            None => Ok(()),
        }
    }

    /// Finishes the current file.
    pub fn finish(mut self) -> Result<(), CaptureError> {
        self.close()
    }

    fn is_full(&self, (writer, opened): &(CaptureWriter, Instant)) -> bool {
        self.limits
            .max_bytes
            .is_some_and(|max| writer.bytes() >= max)
            || self
                .limits
                .max_age
                .is_some_and(|max| opened.elapsed() >= max)
    }

    fn open(&mut self) -> Result<(), CaptureError> {
        let created = now_unix_ns();
        let path = self.dir.join(format!(
            "vigil-{}-{}-{}.vcap",
            self.node,
            timestamp(created),
            self.next_index
        ));
        self.next_index += 1;
        let header = CaptureHeader {
            created_unix_ns: created,
            ..self.header.clone()
        };
        let writer = CaptureWriter::create_with(&path, &header, self.frames)?;
        tracing::debug!(path = %path.display(), "Opened a capture file.");
        self.current = Some((writer, Instant::now()));
        self.remove_oldest()
    }

    fn remove_oldest(&self) -> Result<(), CaptureError> {
        let Some(max) = self.limits.max_files else {
            return Ok(());
        };
        let files = list(&self.dir, &self.node)?;
        let excess = files.len().saturating_sub(max.max(1));
        for file in files.into_iter().take(excess) {
            if Some(file.path.as_path()) == self.current() {
                continue;
            }
            match std::fs::remove_file(&file.path) {
                Ok(()) => {
                    tracing::info!(path = %file.path.display(), "Deleted the oldest capture file (max_files).");
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        action: "deleting the old capture file",
                        path: file.path,
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

impl Drop for CaptureDir {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            tracing::error!(error = %error, "Finishing a capture file failed.");
        }
    }
}

struct Listed {
    index: u64,
    path: PathBuf,
}

/// `node`'s files in `dir`, by index (the index grows with every file, whatever the clock).
fn list(dir: &Path, node: &str) -> Result<Vec<Listed>, CaptureError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("listing", dir))? {
        let entry = entry.map_err(io("listing", dir))?;
        let name = entry.file_name();
        if let Some(index) = name.to_str().and_then(|n| parse_name(n, node)) {
            files.push(Listed {
                index,
                path: entry.path(),
            });
        }
    }
    files.sort_by_key(|f| f.index);
    Ok(files)
}

/// The index of `vigil-<node>-<time>-<index>.vcap`. Parsed from the right, since a node's
/// name may contain dashes (and `vigil-a-...` must not match node `a-b`'s files).
fn parse_name(name: &str, node: &str) -> Option<u64> {
    let rest = name.strip_prefix("vigil-")?.strip_suffix(".vcap")?;
    let (rest, index) = rest.rsplit_once('-')?;
    let (file_node, time) = rest.rsplit_once('-')?;
    (file_node == node && time.len() == 16 && time.ends_with('Z'))
        .then(|| index.parse().ok())
        .flatten()
}

/// A node name that is safe in a file name: anything but `[A-Za-z0-9._]` becomes `_`, so
/// neither `/` nor a dash can confuse the name's parsing.
fn file_name_part(node: &str) -> String {
    let safe: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.chars().all(|c| c == '.') {
        "unknown".into()
    } else {
        safe
    }
}

/// `20261101T120000Z` (UTC), sortable and free of `:`.
fn timestamp(unix_ns: i64) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ns)) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "00000000T000000Z".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_from_the_right_and_only_for_their_node() {
        assert_eq!(file_name_part("node-1/x"), "node_1_x");
        assert_eq!(file_name_part(".."), "unknown");
        let name = format!(
            "vigil-node_1-{}-12.vcap",
            timestamp(1_800_000_000_000_000_000)
        );
        assert_eq!(parse_name(&name, "node_1"), Some(12));
        assert_eq!(parse_name(&name, "node"), None);
        assert_eq!(parse_name("vigil-node_1-now-12.vcap", "node_1"), None);
        assert_eq!(parse_name("other.vcap", "node_1"), None);
    }
}
