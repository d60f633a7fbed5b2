//! The on-disk spool between the pipeline and the destinations: an append-only log of
//! numbered records in segment files, with one acknowledged position per destination.
//!
//! Layout of the spool directory:
//! - `stream`: this spool's random identity (hex); sequence numbers are unique within it.
//! - `<first seq, 20 digits>.seg`: segments, each a run of frames
//!   `len u32 | crc32 u32 | seq u64 | payload` (little endian; the CRC covers seq and payload).
//! - `cursor-<destination>`: the last sequence number that destination acknowledged.
//!
//! A frame torn by a crash (short, or with a bad CRC) ends its segment: opening truncates it
//! there. Segments go when every destination has acknowledged them, or, unacknowledged, when
//! the size or age limit is reached: those records are dropped, counted and reported.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

mod frame;

pub use frame::MAX_PAYLOAD;
use frame::{HEADER, encode_frame, read_frame};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("record of {0} bytes is larger than the spool accepts ({MAX_PAYLOAD})")]
    TooLarge(usize),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// When written records reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// After every batch: an OS crash loses nothing acknowledged by the write.
    Always,
    /// On the forwarder's tick (`fsync_interval_ms`): an OS crash can lose that much.
    Interval,
    /// Left to the kernel. An agent crash never loses written records, whatever the policy.
    Never,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_age: Duration,
    pub segment_bytes: u64,
    pub fsync: Fsync,
}

/// Why records were dropped before delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    Full,
    Age,
}

impl DropCause {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Full => "spool_full",
            Self::Age => "spool_age",
        }
    }
}

/// Records dropped by one limit, to report downstream as one loss record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub first_seq: u64,
    pub last_seq: u64,
    /// Unacknowledged by at least one destination.
    pub count: u64,
    pub cause: DropCause,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    /// `first_seq - 1` while empty.
    last_seq: u64,
    bytes: u64,
    modified: SystemTime,
    path: PathBuf,
}

#[derive(Debug)]
struct Cursor {
    name: String,
    acked: u64,
    /// Acknowledged since the cursor file was last written.
    dirty: bool,
}

/// Where a destination reads next: the sequence number and, when known, the file offset.
#[derive(Clone, Debug, Default)]
pub struct Reader {
    next_seq: u64,
    /// `(segment first_seq, offset of next_seq's frame)`.
    position: Option<(u64, u64)>,
}

impl Reader {
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

pub struct Spool {
    dir: PathBuf,
    limits: Limits,
    stream: String,
    segments: VecDeque<Segment>,
    writer: BufWriter<File>,
    next_seq: u64,
    cursors: Vec<Cursor>,
    unsynced: bool,
    /// Bytes cut from a torn tail at open.
    truncated: u64,
}

impl Spool {
    /// Opens (or creates) the spool in `dir` for `destinations`.
    pub fn open(dir: &Path, limits: Limits, destinations: &[&str]) -> Result<Self, SpoolError> {
        crate::secure::write::private_dir(dir).map_err(io("creating the spool directory", dir))?;
        let stream = stream_id(dir)?;
        let mut segments = list_segments(dir)?;
        let mut truncated = 0;
        if let Some(last) = segments.back_mut() {
            truncated = scan_tail(last)?;
        }
        // Segments before the last end where the next one starts.
        for i in 1..segments.len() {
            let next_first = segments[i].first_seq;
            segments[i - 1].last_seq = next_first - 1;
        }
        let next_seq = segments.back().map_or(1, |s| s.last_seq + 1);
        if segments.is_empty() {
            segments.push_back(new_segment(dir, next_seq)?);
        }
        let oldest = segments.front().map_or(next_seq, |s| s.first_seq);
        let cursors = destinations
            .iter()
            .map(|name| {
                let acked = read_cursor(dir, name)?
                    .unwrap_or(oldest - 1)
                    .clamp(oldest - 1, next_seq - 1);
                Ok(Cursor {
                    name: (*name).to_owned(),
                    acked,
                    dirty: false,
                })
            })
            .collect::<Result<_, SpoolError>>()?;
        remove_stale_cursors(dir, destinations);
        let writer = open_append(segments.back().map(|s| s.path.as_path()).unwrap_or(dir))?;
        let mut spool = Self {
            dir: dir.to_owned(),
            limits,
            stream,
            segments,
            writer,
            next_seq,
            cursors,
            unsynced: false,
            truncated,
        };
        spool.remove_acked()?;
        Ok(spool)
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The sequence number the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Bytes cut from a torn last frame when the spool was opened.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    pub fn acked(&self, destination: &str) -> u64 {
        self.cursor(destination).map_or(0, |c| c.acked)
    }

    /// A reader positioned after `destination`'s acknowledged records.
    pub fn reader(&self, destination: &str) -> Reader {
        Reader {
            next_seq: self.acked(destination) + 1,
            position: None,
        }
    }

    /// Appends one record per payload, numbered from [`Spool::next_seq`]; `payload` builds
    /// each record's bytes from its sequence number. Returns what the size limit dropped.
    pub fn append<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut payload: impl FnMut(u64, T) -> Vec<u8>,
    ) -> Result<Option<Dropped>, SpoolError> {
        let mut frame = Vec::new();
        for item in items {
            let seq = self.next_seq;
            let body = payload(seq, item);
            if body.len() > MAX_PAYLOAD {
                return Err(SpoolError::TooLarge(body.len()));
            }
            if self.active().bytes >= self.limits.segment_bytes {
                self.rotate()?;
            }
            frame.clear();
            encode_frame(seq, &body, &mut frame);
            let path = self.active().path.clone();
            self.writer
                .write_all(&frame)
                .map_err(io("appending to", &path))?;
            let active = self.active_mut();
            active.bytes += frame.len() as u64;
            active.last_seq = seq;
            self.next_seq += 1;
        }
        let path = self.active().path.clone();
        self.writer.flush().map_err(io("writing", &path))?;
        let active = self.active_mut();
        active.modified = SystemTime::now();
        self.unsynced = true;
        if self.limits.fsync == Fsync::Always {
            self.sync()?;
        }
        self.enforce_size()
    }

    /// Up to `max` records from `reader` on, in order.
    pub fn read(&self, reader: &mut Reader, max: usize) -> Result<Vec<(u64, Vec<u8>)>, SpoolError> {
        let mut out = Vec::new();
        let oldest = self.segments.front().map_or(self.next_seq, |s| s.first_seq);
        if reader.next_seq < oldest {
            // Dropped by a limit meanwhile.
            *reader = Reader {
                next_seq: oldest,
                position: None,
            };
        }
        while out.len() < max && reader.next_seq < self.next_seq {
            let Some(segment) = self
                .segments
                .iter()
                .find(|s| s.first_seq <= reader.next_seq && reader.next_seq <= s.last_seq)
            else {
                break;
            };
            let offset = match reader.position {
                Some((first, offset)) if first == segment.first_seq => offset,
                _ => 0,
            };
            let mut file =
                BufReader::new(File::open(&segment.path).map_err(io("opening", &segment.path))?);
            file.seek(SeekFrom::Start(offset))
                .map_err(io("seeking in", &segment.path))?;
            let mut at = offset;
            while out.len() < max && at < segment.bytes {
                let Some((seq, body)) =
                    read_frame(&mut file).map_err(io("reading", &segment.path))?
                else {
                    break;
                };
                at += (HEADER + body.len()) as u64;
                if seq >= reader.next_seq {
                    reader.next_seq = seq + 1;
                    out.push((seq, body));
                }
                reader.position = Some((segment.first_seq, at));
            }
            if reader.next_seq <= segment.last_seq && out.len() < max {
                // The segment ended early (cannot happen unless it was changed under us).
                reader.next_seq = segment.last_seq + 1;
            }
        }
        Ok(out)
    }

    /// `destination` has stored everything up to `seq`.
    pub fn ack(&mut self, destination: &str, seq: u64) -> Result<(), SpoolError> {
        let last = self.next_seq - 1;
        if let Some(cursor) = self.cursors.iter_mut().find(|c| c.name == destination)
            && seq > cursor.acked
        {
            cursor.acked = seq.min(last);
            cursor.dirty = true;
        }
        self.remove_acked()
    }

    /// Periodic work: write cursors, fsync on the interval policy, drop what is too old.
    pub fn tick(&mut self, now: SystemTime) -> Result<Option<Dropped>, SpoolError> {
        self.save_cursors()?;
        if self.limits.fsync == Fsync::Interval {
            self.sync()?;
        }
        let mut dropped = None;
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let age = now.duration_since(oldest.modified).unwrap_or_default();
            if age <= self.limits.max_age {
                break;
            }
            merge(&mut dropped, self.drop_oldest(DropCause::Age)?);
        }
        Ok(dropped)
    }

    /// Makes written records and cursors durable (also done on drop of the forwarder).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.unsynced {
            let path = self.active().path.clone();
            self.writer
                .get_ref()
                .sync_data()
                .map_err(io("syncing", &path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    pub fn close(mut self) -> Result<(), SpoolError> {
        self.save_cursors()?;
        if self.limits.fsync != Fsync::Never {
            self.sync()?;
        }
        Ok(())
    }

    fn cursor(&self, destination: &str) -> Option<&Cursor> {
        self.cursors.iter().find(|c| c.name == destination)
    }

    fn active(&self) -> &Segment {
        self.segments
            .back()
            .expect("the spool always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("the spool always has a segment")
    }

    fn min_acked(&self) -> u64 {
        self.cursors
            .iter()
            .map(|c| c.acked)
            .min()
            .unwrap_or(self.next_seq - 1)
    }

    fn rotate(&mut self) -> Result<(), SpoolError> {
        if self.limits.fsync != Fsync::Never {
            self.sync()?;
        }
        let segment = new_segment(&self.dir, self.next_seq)?;
        self.writer = open_append(&segment.path)?;
        self.segments.push_back(segment);
        if self.limits.fsync != Fsync::Never
            && let Ok(dir) = File::open(&self.dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Deletes the segments every destination has acknowledged (never the active one).
    fn remove_acked(&mut self) -> Result<(), SpoolError> {
        let acked = self.min_acked();
        while self.segments.len() > 1 && self.segments[0].last_seq <= acked {
            let segment = self.segments.pop_front().expect("checked");
            remove(&segment.path)?;
        }
        Ok(())
    }

    fn enforce_size(&mut self) -> Result<Option<Dropped>, SpoolError> {
        let mut dropped = None;
        while self.segments.len() > 1 && self.bytes() > self.limits.max_bytes {
            merge(&mut dropped, self.drop_oldest(DropCause::Full)?);
        }
        Ok(dropped)
    }

    fn drop_oldest(&mut self, cause: DropCause) -> Result<Option<Dropped>, SpoolError> {
        let segment = self.segments.pop_front().expect("caller checked");
        remove(&segment.path)?;
        let acked = self.min_acked();
        for cursor in &mut self.cursors {
            if cursor.acked < segment.last_seq {
                cursor.acked = segment.last_seq;
                cursor.dirty = true;
            }
        }
        let unacked = segment
            .last_seq
            .saturating_sub(acked.max(segment.first_seq - 1));
        Ok((unacked > 0).then_some(Dropped {
            first_seq: segment.first_seq,
            last_seq: segment.last_seq,
            count: unacked,
            cause,
        }))
    }

    fn save_cursors(&mut self) -> Result<(), SpoolError> {
        for cursor in self.cursors.iter_mut().filter(|c| c.dirty) {
            let path = self.dir.join(format!("cursor-{}", cursor.name));
            let tmp = self.dir.join(format!(".cursor-{}.tmp", cursor.name));
            crate::secure::write::replace(&path, &tmp, cursor.acked.to_string().as_bytes())
                .map_err(io("writing", &path))?;
            cursor.dirty = false;
        }
        Ok(())
    }
}

fn merge(into: &mut Option<Dropped>, more: Option<Dropped>) {
    *into = match (*into, more) {
        (Some(a), Some(b)) => Some(Dropped {
            first_seq: a.first_seq.min(b.first_seq),
            last_seq: a.last_seq.max(b.last_seq),
            count: a.count + b.count,
            cause: a.cause,
        }),
        (a, b) => a.or(b),
    };
}

/// Finds the last intact frame of `segment`, truncating anything after it; returns the
/// bytes cut.
fn scan_tail(segment: &mut Segment) -> Result<u64, SpoolError> {
    let path = segment.path.clone();
    let file = File::open(&path).map_err(io("opening", &path))?;
    let len = file.metadata().map_err(io("reading", &path))?.len();
    let mut reader = BufReader::new(file);
    let mut at = 0u64;
    let mut expected = segment.first_seq;
    while let Some((seq, body)) = read_frame(&mut reader).map_err(io("reading", &path))? {
        if seq != expected {
            break;
        }
        at += (HEADER + body.len()) as u64;
        expected += 1;
    }
    segment.last_seq = expected - 1;
    segment.bytes = at;
    if at < len {
        let file = crate::secure::write::open(&path, OpenOptions::new().write(true))
            .map_err(io("opening", &path))?;
        file.set_len(at)
            .map_err(io("truncating a torn frame in", &path))?;
        tracing::warn!(path = %path.display(), bytes = len - at, "Cut a torn record from the forwarding spool.");
    }
    Ok(len - at)
}

fn list_segments(dir: &Path) -> Result<VecDeque<Segment>, SpoolError> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("listing", dir))? {
        let entry = entry.map_err(io("listing", dir))?;
        let name = entry.file_name();
        let Some(first_seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&n| n > 0)
        else {
            continue;
        };
        let metadata = entry.metadata().map_err(io("reading", &entry.path()))?;
        segments.push(Segment {
            first_seq,
            last_seq: first_seq - 1,
            bytes: metadata.len(),
            modified: metadata.modified().unwrap_or_else(|_| SystemTime::now()),
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments.into())
}

fn new_segment(dir: &Path, first_seq: u64) -> Result<Segment, SpoolError> {
    let path = dir.join(format!("{first_seq:020}.seg"));
    open_append(&path)?;
    Ok(Segment {
        first_seq,
        last_seq: first_seq - 1,
        bytes: 0,
        modified: SystemTime::now(),
        path,
    })
}

fn open_append(path: &Path) -> Result<BufWriter<File>, SpoolError> {
    crate::secure::write::open(path, OpenOptions::new().create(true).append(true))
        .map(|f| BufWriter::with_capacity(64 * 1024, f))
        .map_err(io("opening", path))
}

fn remove(path: &Path) -> Result<(), SpoolError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SpoolError::Io {
            action: "removing",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn read_cursor(dir: &Path, name: &str) -> Result<Option<u64>, SpoolError> {
    let path = dir.join(format!("cursor-{name}"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SpoolError::Io {
            action: "reading",
            path,
            source,
        }),
    }
}

/// Cursors of destinations no longer configured would hold segments forever.
fn remove_stale_cursors(dir: &Path, destinations: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(dest) = name.to_str().and_then(|n| n.strip_prefix("cursor-"))
            && !destinations.contains(&dest)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn stream_id(dir: &Path) -> Result<String, SpoolError> {
    let path = dir.join("stream");
    if let Ok(text) = std::fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok(text.trim().to_owned());
    }
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io("reading", Path::new("/dev/urandom")))?;
    let id = format!("{:016x}", u64::from_le_bytes(bytes));
    crate::secure::write::replace(&path, &dir.join(".stream.tmp"), id.as_bytes())
        .map_err(io("writing", &path))?;
    Ok(id)
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
