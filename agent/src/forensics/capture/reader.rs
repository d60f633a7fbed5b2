//! Reads a capture file frame by frame. Nothing in the file is trusted: a frame is used only
//! when its header and body CRCs hold, it decompresses to the size it claims and its records
//! decode; otherwise the bytes up to the next intact frame header are reported as
//! [`Damage`] and reading goes on from there. Every step moves forward, so a reader always
//! ends, and at most one frame (bounded by `format::MAX_*`) is in memory at a time.

use std::{
    fs::File,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
};

use prost::Message as _;

use super::{
    CaptureError, CaptureHeader, Damage, DamageReason,
    error::io,
    format::{
        CODEC_NONE, CODEC_ZSTD, FRAME_HEADER_LEN, FRAME_MARKER, FrameHeader, KIND_END, KIND_EVENTS,
        MAGIC, MAX_COMPRESSED_BYTES, MAX_FRAME_BYTES, MAX_FRAME_RECORDS, MAX_HEADER_BYTES,
        PREAMBLE_LEN, Preamble, VERSION,
    },
};
use crate::api::proto;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Events,
    /// The end frame of a finished file.
    End,
}

/// One intact frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub offset: u64,
    /// Bytes in the file, header included.
    pub len: u64,
    pub kind: FrameKind,
    /// The index of the first event in the file (for an end frame: the number of events).
    pub first_record: u64,
    pub compressed_len: u32,
    pub uncompressed_len: u32,
    pub events: Vec<proto::Event>,
}

pub struct CaptureReader {
    path: PathBuf,
    file: File,
    /// The length at open: a file still being written is read up to there.
    len: u64,
    version: u16,
    header: Option<CaptureHeader>,
    header_damage: Option<Damage>,
    /// Where the next frame should start.
    pos: u64,
    /// The index of the record expected next, to count what a damaged range lost.
    next_record: u64,
    finished: bool,
    /// The end of the last damaged range reported.
    damaged_to: u64,
    done: bool,
    decompressor: zstd::bulk::Decompressor<'static>,
}

impl CaptureReader {
    /// Opens `path` and reads its preamble and header. Fails only when the file is not a
    /// capture this version can read; a damaged header is reported as the first damage.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(io("opening", path))?;
        let len = file.metadata().map_err(io("reading", path))?.len();
        if len == 0 {
            return Err(CaptureError::Empty {
                path: path.to_owned(),
            });
        }
        let mut raw = [0u8; PREAMBLE_LEN];
        let n = read_full_at(&file, 0, &mut raw).map_err(io("reading", path))?;
        let magic = n.min(MAGIC.len());
        if raw[..magic] != MAGIC[..magic] {
            return Err(CaptureError::NotACapture {
                path: path.to_owned(),
            });
        }
        if n < PREAMBLE_LEN {
            return Err(CaptureError::Truncated {
                path: path.to_owned(),
                len,
            });
        }
        let preamble = Preamble::decode(&raw);
        if preamble.version == 0 || preamble.version > VERSION {
            return Err(CaptureError::UnsupportedVersion {
                path: path.to_owned(),
                found: preamble.version,
            });
        }
        let decompressor = zstd::bulk::Decompressor::new().map_err(io("reading", path))?;
        let mut reader = Self {
            path: path.to_owned(),
            file,
            len,
            version: preamble.version,
            header: None,
            header_damage: None,
            pos: PREAMBLE_LEN as u64,
            next_record: 0,
            finished: false,
            damaged_to: 0,
            done: false,
            decompressor,
        };
        reader.read_header(&preamble);
        Ok(reader)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format version of the file.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// `None` when the header is damaged (the first damage says so).
    pub fn header(&self) -> Option<&CaptureHeader> {
        self.header.as_ref()
    }

    /// The file's length when it was opened.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Whether the end frame has been read: the writer finished the file.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The events, with damage in between, in file order.
    pub fn events(self) -> Events {
        Events {
            reader: self,
            pending: Vec::new().into_iter(),
        }
    }

    /// The next intact frame, or the damaged range before it; `None` at the end.
    pub fn next_frame(&mut self) -> Option<Result<Frame, Damage>> {
        if let Some(damage) = self.header_damage.take() {
            return Some(Err(damage));
        }
        if self.done {
            return None;
        }
        if self.pos >= self.len {
            self.done = true;
            let unfinished = !self.finished && self.damaged_to < self.len;
            return unfinished.then_some(Err(Damage {
                start: self.len,
                end: self.len,
                reason: DamageReason::Unfinished,
                lost_records: None,
            }));
        }
        let start = self.pos;
        let reason = match self.read_frame(start) {
            Ok(frame) => {
                self.pos = start + frame.len;
                match frame.kind {
                    FrameKind::End => self.finished = true,
                    FrameKind::Events => {
                        self.next_record = frame.first_record + frame.events.len() as u64;
                    }
                }
                return Some(Ok(frame));
            }
            Err(Failure::Damaged(reason)) => reason,
            Err(Failure::Io(error)) => return Some(Err(self.stop(start, &error))),
        };
        match self.find_frame(start + 1) {
            Ok(next) => Some(Err(self.skip_to(start, next, reason))),
            Err(error) => Some(Err(self.stop(start, &error))),
        }
    }

    /// The damage `start..` up to the next intact frame header (or the end of the file).
    fn skip_to(
        &mut self,
        start: u64,
        next: Option<(u64, FrameHeader)>,
        reason: DamageReason,
    ) -> Damage {
        let (end, lost_records) = match next {
            Some((offset, header)) => {
                let lost = header.first_record.checked_sub(self.next_record);
                self.next_record = header.first_record;
                (offset, lost)
            }
            None => (self.len, None),
        };
        self.pos = end;
        self.damaged_to = end;
        Damage {
            start,
            end,
            reason,
            lost_records,
        }
    }

    /// A read error: nothing after `start` can be trusted to be read.
    fn stop(&mut self, start: u64, error: &std::io::Error) -> Damage {
        tracing::warn!(path = %self.path.display(), offset = start, error = %error, "Reading a capture file failed; stopped there.");
        self.done = true;
        self.damaged_to = self.len;
        Damage {
            start,
            end: self.len,
            reason: DamageReason::Io(error.kind()),
            lost_records: None,
        }
    }

    fn read_header(&mut self, preamble: &Preamble) {
        let body_start = PREAMBLE_LEN as u64;
        let body_end = body_start + u64::from(preamble.header_len);
        if preamble.header_len <= MAX_HEADER_BYTES && body_end <= self.len {
            let mut body = vec![0u8; preamble.header_len as usize];
            if let Ok(n) = read_full_at(&self.file, body_start, &mut body)
                && n == body.len()
                && crc32fast::hash(&body) == preamble.header_crc
                && let Ok(header) = CaptureHeader::decode(body.as_slice())
            {
                self.header = Some(header);
                self.pos = body_end;
                return;
            }
        }
        // Scan from right after the preamble: the length itself may be what is damaged.
        let damage = match self.find_frame(body_start) {
            Ok(next) => self.skip_to(body_start, next, DamageReason::Header),
            Err(error) => self.stop(body_start, &error),
        };
        self.header_damage = Some(damage);
    }

    fn read_frame(&mut self, offset: u64) -> Result<Frame, Failure> {
        let mut raw = [0u8; FRAME_HEADER_LEN];
        let n = read_full_at(&self.file, offset, &mut raw)?;
        if n < FRAME_HEADER_LEN {
            let seen = n.min(FRAME_MARKER.len());
            return Err(Failure::Damaged(if raw[..seen] == FRAME_MARKER[..seen] {
                DamageReason::Truncated
            } else {
                DamageReason::NotAFrame
            }));
        }
        let header = FrameHeader::decode(&raw).ok_or(Failure::Damaged(DamageReason::NotAFrame))?;
        let kind = match (header.kind, header.codec, header.compressed_len) {
            (KIND_EVENTS, CODEC_ZSTD, _) => FrameKind::Events,
            (KIND_END, CODEC_NONE, 0) => FrameKind::End,
            (kind, codec, _) => {
                return Err(Failure::Damaged(DamageReason::Unsupported { kind, codec }));
            }
        };
        if header.uncompressed_len > MAX_FRAME_BYTES
            || header.compressed_len > MAX_COMPRESSED_BYTES
            || header.record_count > MAX_FRAME_RECORDS
        {
            return Err(Failure::Damaged(DamageReason::TooLarge {
                uncompressed: header.uncompressed_len,
                compressed: header.compressed_len,
            }));
        }
        if offset + header.frame_len() > self.len {
            return Err(Failure::Damaged(DamageReason::Truncated));
        }
        let events = match kind {
            FrameKind::End => Vec::new(),
            FrameKind::Events => self.read_events(offset, &header)?,
        };
        Ok(Frame {
            offset,
            len: header.frame_len(),
            kind,
            first_record: header.first_record,
            compressed_len: header.compressed_len,
            uncompressed_len: header.uncompressed_len,
            events,
        })
    }

    fn read_events(
        &mut self,
        offset: u64,
        header: &FrameHeader,
    ) -> Result<Vec<proto::Event>, Failure> {
        let mut body = vec![0u8; header.compressed_len as usize];
        let n = read_full_at(&self.file, offset + FRAME_HEADER_LEN as u64, &mut body)?;
        if n < body.len() {
            // The file shrank since it was opened.
            return Err(Failure::Damaged(DamageReason::Truncated));
        }
        if crc32fast::hash(&body) != header.body_crc {
            return Err(Failure::Damaged(DamageReason::Checksum));
        }
        // The capacity bounds the output: zstd fails rather than grow past it.
        let records = self
            .decompressor
            .decompress(&body, header.uncompressed_len as usize)
            .ok()
            .filter(|data| data.len() == header.uncompressed_len as usize)
            .ok_or(Failure::Damaged(DamageReason::Decompress))?;
        decode_records(&records, header.record_count).ok_or(Failure::Damaged(DamageReason::Records))
    }

    /// The first offset from `from` on where an intact frame header starts.
    fn find_frame(&self, from: u64) -> std::io::Result<Option<(u64, FrameHeader)>> {
        const CHUNK: usize = 64 * 1024;
        // Each read overlaps the next by a header, so a header across chunks is seen whole.
        let mut buf = vec![0u8; CHUNK + FRAME_HEADER_LEN];
        let mut at = from;
        while at < self.len {
            let n = read_full_at(&self.file, at, &mut buf)?;
            let data = &buf[..n];
            for i in 0..n.min(CHUNK) {
                if data[i] != FRAME_MARKER[0] || !data[i..].starts_with(&FRAME_MARKER) {
                    continue;
                }
                if let Some(raw) = data.get(i..i + FRAME_HEADER_LEN)
                    && let Ok(raw) = <&[u8; FRAME_HEADER_LEN]>::try_from(raw)
                    && let Some(header) = FrameHeader::decode(raw)
                {
                    return Ok(Some((at + i as u64, header)));
                }
            }
            if n < buf.len() {
                break;
            }
            at += CHUNK as u64;
        }
        Ok(None)
    }
}

impl Iterator for CaptureReader {
    type Item = Result<Frame, Damage>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame()
    }
}

/// The events of a capture file, in order, with a `Damage` wherever frames were lost.
pub struct Events {
    reader: CaptureReader,
    pending: std::vec::IntoIter<proto::Event>,
}

impl Events {
    /// The reader, for its header, and once the events are all read, `finished`.
    pub fn reader(&self) -> &CaptureReader {
        &self.reader
    }
}

impl Iterator for Events {
    type Item = Result<proto::Event, Damage>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.pending.next() {
                return Some(Ok(event));
            }
            match self.reader.next_frame()? {
                Ok(frame) => self.pending = frame.events.into_iter(),
                Err(damage) => return Some(Err(damage)),
            }
        }
    }
}

enum Failure {
    Damaged(DamageReason),
    Io(std::io::Error),
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// Exactly `count` length-delimited events filling `data`, or `None`.
fn decode_records(mut data: &[u8], count: u32) -> Option<Vec<proto::Event>> {
    // Not `with_capacity(count)`: the count is checked as records are found, not trusted.
    let mut events = Vec::new();
    while !data.is_empty() {
        if events.len() >= count as usize {
            return None;
        }
        events.push(proto::Event::decode_length_delimited(&mut data).ok()?);
    }
    (events.len() == count as usize).then_some(events)
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
fn read_full_at(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
