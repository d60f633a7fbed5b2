//! What stops a capture file from being written or opened. Damage found while reading is
//! not an error: it is reported as [`super::Damage`] and the reader goes on.

use std::path::{Path, PathBuf};

use super::format::{MAX_FRAME_BYTES, VERSION};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is empty, not a capture file")]
    Empty { path: PathBuf },
    #[error("{path} is not a Vigil capture file (it does not start with the capture magic)")]
    NotACapture { path: PathBuf },
    #[error("{path} ends after {len} bytes, inside the capture preamble")]
    Truncated { path: PathBuf, len: u64 },
    #[error(
        "{path} is capture format version {found}; this Vigil reads versions 1 to {VERSION} (a newer Vigil wrote it?)"
    )]
    UnsupportedVersion { path: PathBuf, found: u16 },
    #[error("{path}: the capture header message is {len} bytes, larger than the format allows")]
    HeaderTooLarge { path: PathBuf, len: usize },
    #[error("{path}: an event of {len} bytes is larger than a frame may hold ({MAX_FRAME_BYTES})")]
    EventTooLarge { path: PathBuf, len: usize },
    #[error("{path}: encoding a record")]
    Encode {
        path: PathBuf,
        #[source]
        source: prost::EncodeError,
    },
    #[error("{path}: compressing a frame")]
    Compress {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// For `map_err`: an I/O error while doing `action` on `path`.
pub(super) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CaptureError + 'a {
    move |source| CaptureError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}
