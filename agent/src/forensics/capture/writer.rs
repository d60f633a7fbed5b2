//! Writes a capture file: the preamble and header, then events buffered into frames, each
//! written whole with one `write` so that a crash leaves at most one torn frame.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    path::{Path, PathBuf},
};

use prost::Message as _;

use super::{
    CaptureError, CaptureHeader,
    error::io,
    format::{
        CODEC_NONE, CODEC_ZSTD, FrameHeader, KIND_END, KIND_EVENTS, MAX_FRAME_BYTES,
        MAX_FRAME_RECORDS, MAX_HEADER_BYTES, Preamble, VERSION,
    },
};
use crate::api::proto;

/// When the writer closes a frame: at whichever limit comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Capped at `format::MAX_FRAME_RECORDS`.
    pub max_records: u32,
    /// Uncompressed bytes of records (capped at `format::MAX_FRAME_BYTES`).
    pub max_bytes: u32,
    /// zstd level (1 fast .. 19 small; 3 is zstd's default).
    pub level: i32,
}

impl Default for FrameLimits {
    /// About 1 MiB of records: large enough to compress well (events repeat paths, pods and
    /// images), small enough that damage costs little and a reader buffers little.
    fn default() -> Self {
        Self {
            max_records: 4096,
            max_bytes: 1 << 20,
            level: 3,
        }
    }
}

pub struct CaptureWriter {
    path: PathBuf,
    file: File,
    limits: FrameLimits,
    compressor: zstd::bulk::Compressor<'static>,
    /// Length-delimited records of the open frame.
    pending: Vec<u8>,
    pending_records: u32,
    /// Records in the frames already written.
    written_records: u64,
    written_bytes: u64,
    finished: bool,
}

impl CaptureWriter {
    /// Creates `path` (mode 0600; an existing file is never overwritten: it may be evidence)
    /// and writes the preamble and `header`.
    pub fn create(path: &Path, header: &CaptureHeader) -> Result<Self, CaptureError> {
        Self::create_with(path, header, FrameLimits::default())
    }

    pub fn create_with(
        path: &Path,
        header: &CaptureHeader,
        limits: FrameLimits,
    ) -> Result<Self, CaptureError> {
        let body = header.encode_to_vec();
        let header_len = u32::try_from(body.len())
            .ok()
            .filter(|&n| n <= MAX_HEADER_BYTES)
            .ok_or_else(|| CaptureError::HeaderTooLarge {
                path: path.to_owned(),
                len: body.len(),
            })?;
        let compressor =
            zstd::bulk::Compressor::new(limits.level).map_err(|source| CaptureError::Compress {
                path: path.to_owned(),
                source,
            })?;
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io("creating", path))?
        };
        let preamble = Preamble {
            version: VERSION,
            header_len,
            header_crc: crc32fast::hash(&body),
        };
        let mut start = preamble.encode().to_vec();
        start.extend_from_slice(&body);
        file.write_all(&start).map_err(io("writing", path))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            limits: FrameLimits {
                max_bytes: limits.max_bytes.min(MAX_FRAME_BYTES),
                max_records: limits.max_records.clamp(1, MAX_FRAME_RECORDS),
                ..limits
            },
            compressor,
            pending: Vec::new(),
            pending_records: 0,
            written_records: 0,
            written_bytes: start.len() as u64,
            finished: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file so far (the open frame is not counted until it is written).
    pub fn bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Events written, including those of the open frame.
    pub fn records(&self) -> u64 {
        self.written_records + u64::from(self.pending_records)
    }

    /// Adds `event` to the open frame, writing the frame out when it is full.
    pub fn write(&mut self, event: &proto::Event) -> Result<(), CaptureError> {
        let len = event.encoded_len();
        let framed = len + prost::length_delimiter_len(len);
        if framed > MAX_FRAME_BYTES as usize {
            return Err(CaptureError::EventTooLarge {
                path: self.path.clone(),
                len,
            });
        }
        if self.pending.len() + framed > MAX_FRAME_BYTES as usize {
            self.flush()?;
        }
        event
            .encode_length_delimited(&mut self.pending)
            .map_err(|source| CaptureError::Encode {
                path: self.path.clone(),
                source,
            })?;
        self.pending_records += 1;
        if self.pending_records >= self.limits.max_records
            || self.pending.len() >= self.limits.max_bytes as usize
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the open frame out (if it has records), so that a reader of the file, or a
    /// crash, sees them. Not an fsync: see [`CaptureWriter::sync`].
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        if self.pending_records == 0 {
            return Ok(());
        }
        let body =
            self.compressor
                .compress(&self.pending)
                .map_err(|source| CaptureError::Compress {
                    path: self.path.clone(),
                    source,
                })?;
        let header = FrameHeader {
            kind: KIND_EVENTS,
            codec: CODEC_ZSTD,
            // Both fit: the records are at most MAX_FRAME_BYTES and zstd's bound of that
            // is below u32::MAX.
            compressed_len: u32::try_from(body.len()).unwrap_or(u32::MAX),
            uncompressed_len: u32::try_from(self.pending.len()).unwrap_or(u32::MAX),
            record_count: self.pending_records,
            first_record: self.written_records,
            body_crc: crc32fast::hash(&body),
        };
        // The records count as written even if the write fails: a retry could duplicate a
        // torn frame, and the next frame's `first_record` then tells a reader what was lost.
        self.written_records += u64::from(self.pending_records);
        self.pending.clear();
        self.pending_records = 0;
        self.write_frame(&header, &body)
    }

    /// Makes what was flushed durable.
    pub fn sync(&mut self) -> Result<(), CaptureError> {
        self.file.sync_data().map_err(io("syncing", &self.path))
    }

    /// Writes the open frame and the end frame, and syncs: the file is complete. Returns
    /// the number of events in the file.
    pub fn finish(mut self) -> Result<u64, CaptureError> {
        self.flush()?;
        let end = FrameHeader {
            kind: KIND_END,
            codec: CODEC_NONE,
            compressed_len: 0,
            uncompressed_len: 0,
            record_count: 0,
            first_record: self.written_records,
            body_crc: crc32fast::hash(&[]),
        };
        self.write_frame(&end, &[])?;
        self.finished = true;
        self.file.sync_all().map_err(io("syncing", &self.path))?;
        Ok(self.written_records)
    }

    fn write_frame(&mut self, header: &FrameHeader, body: &[u8]) -> Result<(), CaptureError> {
        let mut frame = Vec::with_capacity(header.frame_len() as usize);
        frame.extend_from_slice(&header.encode());
        frame.extend_from_slice(body);
        self.file
            .write_all(&frame)
            .map_err(io("writing", &self.path))?;
        self.written_bytes += frame.len() as u64;
        Ok(())
    }
}

impl Drop for CaptureWriter {
    /// A writer dropped without `finish` (an error path, a panic elsewhere) still writes the
    /// events it holds; the file then reads as unfinished, which is the truth.
    fn drop(&mut self) {
        if self.finished || self.pending_records == 0 {
            return;
        }
        if let Err(error) = self.flush() {
            tracing::error!(path = %self.path.display(), error = %error, "Lost the last frame of a capture file.");
        }
    }
}
