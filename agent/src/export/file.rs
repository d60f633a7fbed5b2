//! The output file (`[output] target` = a path): JSON lines appended to a file that rotates by
//! size and age, keeps `backups` rotated files (`<target>.1` newest) and may gzip them.
//!
//! Rotation happens only where the last byte written ended a line, so every file holds whole
//! lines whoever writes and however the writes are cut: a batch larger than the room left is
//! split between lines, and a single line longer than `max_bytes` gets a file of its own.
//! The size bound is exact for writes of whole lines (the JSON exporter's batches); a writer
//! that cuts a line across writes can pass it by the rest of that line, never split it.
//! These are security events: the files are created with mode 0600.

mod compress;
mod names;
#[cfg(test)]
mod tests;

use std::{
    fs::{File, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::{FileExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use compress::Compressor;

/// Mode of the output file and of every rotated file.
const MODE: u32 = crate::secure::write::FILE_MODE;

/// When and how the output file rotates (from `[output]`, see `config/default.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a write would take the file past this many bytes; 0: never.
    pub max_bytes: u64,
    /// Rotate before writing to a file older than this; `None`: never.
    pub max_age: Option<Duration>,
    /// Rotated files kept; older ones are deleted.
    pub backups: usize,
    /// Gzip rotated files on a thread of their own.
    pub compress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open output file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write output file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rename {from} to {to}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list {dir} for rotated output files")]
    List {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FileError {
    fn source_io(&self) -> &io::Error {
        match self {
            Self::Open { source, .. }
            | Self::Write { source, .. }
            | Self::Rename { source, .. }
            | Self::Remove { source, .. }
            | Self::List { source, .. } => source,
        }
    }
}

impl From<FileError> for io::Error {
    /// The exporter's errors travel as `io::Error` and are reported as text: the message keeps
    /// the path and the cause, the kind stays the cause's.
    fn from(error: FileError) -> Self {
        let cause = error.source_io();
        io::Error::new(cause.kind(), format!("{error}: {cause}"))
    }
}

/// Where "now" comes from for `max_age` (a test sets it).
pub type Clock = Box<dyn Fn() -> SystemTime + Send>;

/// An append-only file that rotates between lines.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    /// Bytes in the current file.
    len: u64,
    /// When the current file was started, for `max_age`.
    born: SystemTime,
    /// Whether the last byte written ended a line: only there may the file rotate.
    at_line_start: bool,
    /// False for a FIFO or a device (`/dev/stdout`): those are written, never rotated.
    regular: bool,
    clock: Clock,
    compressor: Compressor,
}

impl RotatingFile {
    /// Opens (or creates) `path` for appending.
    pub fn open(path: impl Into<PathBuf>, rotation: Rotation) -> Result<Self, FileError> {
        Self::with_clock(path.into(), rotation, Box::new(SystemTime::now))
    }

    /// [`RotatingFile::open`] with the clock `max_age` is measured by.
    pub fn with_clock(path: PathBuf, rotation: Rotation, clock: Clock) -> Result<Self, FileError> {
        let (mut file, metadata) = open_append(&path)?;
        let regular = metadata.file_type().is_file();
        let now = clock();
        let len = metadata.len();
        let born = match metadata.created() {
            Ok(created) if regular && len > 0 => created,
            _ => now,
        };
        let mut compressor = Compressor::default();
        if regular {
            end_cut_line(&path, &mut file, len).map_err(|source| FileError::Open {
                path: path.clone(),
                source,
            })?;
            // Left by a run that stopped while compressing: finish the job now.
            let leftovers = names::tidy(&path)?;
            if rotation.compress {
                compressor.start(leftovers);
            }
        }
        let len = file.metadata().map_or(len, |m| m.len());
        Ok(Self {
            path,
            rotation,
            file,
            len,
            born,
            at_line_start: true,
            regular,
            clock,
            compressor,
        })
    }

    /// Waits until the rotated files are compressed (tests, and callers that exit next).
    pub fn wait_for_compression(&mut self) {
        self.compressor.wait();
    }

    /// Whether the current file must rotate before `buf`, which starts a line, is written.
    fn due(&self, buf: &[u8]) -> bool {
        let first_line = buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |i| i + 1);
        let too_big =
            self.rotation.max_bytes > 0 && self.len + first_line as u64 > self.rotation.max_bytes;
        let too_old = self.rotation.max_age.is_some_and(|age| {
            (self.clock)()
                .duration_since(self.born)
                .is_ok_and(|lived| lived >= age)
        });
        too_big || too_old
    }

    /// What of `buf` goes into the current file: the whole lines that fit, else (the file is
    /// new, or a line is under way) the first line alone, whatever its size.
    fn chunk<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        if !self.regular || self.rotation.max_bytes == 0 {
            return buf;
        }
        let room = self.rotation.max_bytes.saturating_sub(self.len);
        let fits = usize::try_from(room).map_or(buf.len(), |room| room.min(buf.len()));
        if let Some(end) = buf[..fits].iter().rposition(|&b| b == b'\n') {
            return &buf[..=end];
        }
        let first_line = buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |i| i + 1);
        &buf[..first_line]
    }

    /// Moves the current file to `<path>.1` (the older ones up by one, past `backups`
    /// deleted), starts a new one and, if asked, compresses `<path>.1` in the background.
    fn rotate(&mut self) -> Result<(), FileError> {
        // The previous compression works on `<path>.1`: it must finish before names shift.
        // Only rotations faster than gzip make the pipeline wait here.
        self.compressor.wait();
        names::shift(&self.path, self.rotation.backups)?;
        let (file, _) = open_append(&self.path)?;
        self.file = file;
        self.len = 0;
        self.born = (self.clock)();
        if self.rotation.compress && self.rotation.backups > 0 {
            self.compressor.start(vec![names::numbered(&self.path, 1)]);
        }
        tracing::debug!(path = %self.path.display(), "Rotated the output file.");
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.regular && self.at_line_start && self.len > 0 && self.due(buf) {
            self.rotate()?;
        }
        let chunk = self.chunk(buf);
        let written = self.file.write(chunk).map_err(|source| FileError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.len += written as u64;
        if let Some(last) = chunk[..written].last() {
            self.at_line_start = *last == b'\n';
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Opens `path` to append, created with mode 0600; a regular file that others could read
/// (as an older Vigil created them) is set to 0600 too.
fn open_append(path: &Path) -> Result<(File, std::fs::Metadata), FileError> {
    let error = |source| FileError::Open {
        path: path.to_owned(),
        source,
    };
    let file = crate::secure::write::open(path, OpenOptions::new().create(true).append(true))
        .map_err(error)?;
    let metadata = file.metadata().map_err(error)?;
    if metadata.file_type().is_file() && metadata.permissions().mode() & 0o077 != 0 {
        file.set_permissions(Permissions::from_mode(MODE))
            .map_err(error)?;
    }
    Ok((file, metadata))
}

/// Ends a last line that a previous run left cut short (it stopped mid-write), so that the
/// first line of this run starts whole.
fn end_cut_line(path: &Path, file: &mut File, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8];
    File::open(path)?.read_exact_at(&mut last, len - 1)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}
