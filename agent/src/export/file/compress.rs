//! Gzip of rotated files on a thread of their own, so that a rotation costs the pipeline two
//! renames, not the compression of `max_bytes`.
//!
//! Crash-safe by order: `<f>.gz.tmp` is written and synced, renamed to `<f>.gz`, and only then
//! is `<f>` deleted. A stop at any point leaves either the plain file or a complete `.gz`
//! (possibly both; the next start keeps the `.gz`, see `names::tidy`).

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter},
    path::{Path, PathBuf},
    thread::JoinHandle,
};

use flate2::{Compression, write::GzEncoder};

use super::{FileError, names};

/// At most one compression job at a time.
#[derive(Debug, Default)]
pub(super) struct Compressor {
    running: Option<JoinHandle<()>>,
}

impl Compressor {
    /// Compresses `files` one after the other on a new thread (after the previous job).
    pub fn start(&mut self, files: Vec<PathBuf>) {
        self.wait();
        if files.is_empty() {
            return;
        }
        let job = move || {
            for file in &files {
                if let Err(error) = gzip(file) {
                    // The plain file stays: nothing is lost, it is only bigger.
                    tracing::warn!(%error, cause = %error_cause(&error), "Compressing a rotated output file failed; it stays uncompressed.");
                }
            }
        };
        match std::thread::Builder::new()
            .name("vigil-gzip".into())
            .spawn(job)
        {
            Ok(handle) => self.running = Some(handle),
            Err(error) => tracing::warn!(
                %error,
                "Cannot start the compression thread; rotated files stay uncompressed."
            ),
        }
    }

    /// Returns once the job under way, if any, is done.
    pub fn wait(&mut self) {
        if let Some(handle) = self.running.take() {
            let _ = handle.join();
        }
    }
}

fn error_cause(error: &FileError) -> String {
    std::error::Error::source(error).map_or_else(String::new, ToString::to_string)
}

/// `plain` to `plain.gz`, then `plain` deleted.
pub(super) fn gzip(plain: &Path) -> Result<PathBuf, FileError> {
    let gz = names::with_suffix(plain, ".gz");
    let tmp = names::with_suffix(plain, ".gz.tmp");
    let write_error = |source| FileError::Write {
        path: tmp.clone(),
        source,
    };
    let mut input = File::open(plain).map_err(|source| FileError::Open {
        path: plain.to_owned(),
        source,
    })?;
    let output = crate::secure::write::open(
        &tmp,
        OpenOptions::new().write(true).create(true).truncate(true),
    )
    .map_err(|source| FileError::Open {
        path: tmp.clone(),
        source,
    })?;
    let written = (|| -> io::Result<()> {
        let mut encoder = GzEncoder::new(BufWriter::new(output), Compression::default());
        io::copy(&mut input, &mut encoder)?;
        let output = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
        output.sync_all()
    })();
    if let Err(source) = written {
        let _ = names::remove(&tmp);
        return Err(write_error(source));
    }
    std::fs::rename(&tmp, &gz).map_err(|source| FileError::Rename {
        from: tmp.clone(),
        to: gz.clone(),
        source,
    })?;
    names::remove(plain)?;
    Ok(gz)
}
