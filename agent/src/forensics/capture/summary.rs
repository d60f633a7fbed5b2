//! What a whole capture file holds, for `vigil inspect`.

use std::{collections::BTreeMap, path::PathBuf};

use super::{CaptureHeader, CaptureReader, Damage, FrameKind};

#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub path: PathBuf,
    pub version: u16,
    pub file_len: u64,
    /// `None` when the header is damaged (then the first damage is `DamageReason::Header`).
    pub header: Option<CaptureHeader>,
    /// Intact frames of events.
    pub frames: u64,
    /// Events in those frames.
    pub events: u64,
    /// Events by kind (`exec`, `connect`...).
    pub kinds: BTreeMap<String, u64>,
    /// The earliest and latest `time_unix_ns` among the events.
    pub first_time_unix_ns: Option<i64>,
    pub last_time_unix_ns: Option<i64>,
    /// Whether the file has its end frame.
    pub finished: bool,
    pub damage: Vec<Damage>,
}

impl Summary {
    /// Reads all of `reader`'s frames.
    pub fn of(mut reader: CaptureReader) -> Self {
        let mut summary = Self {
            path: reader.path().to_owned(),
            version: reader.version(),
            file_len: reader.file_len(),
            header: reader.header().cloned(),
            ..Self::default()
        };
        for item in &mut reader {
            let frame = match item {
                Ok(frame) => frame,
                Err(damage) => {
                    summary.damage.push(damage);
                    continue;
                }
            };
            if frame.kind == FrameKind::End {
                continue;
            }
            summary.frames += 1;
            summary.events += frame.events.len() as u64;
            for event in &frame.events {
                *summary.kinds.entry(event.kind.clone()).or_default() += 1;
                let t = event.time_unix_ns;
                summary.first_time_unix_ns =
                    Some(summary.first_time_unix_ns.map_or(t, |f| f.min(t)));
                summary.last_time_unix_ns = Some(summary.last_time_unix_ns.map_or(t, |l| l.max(t)));
            }
        }
        summary.finished = reader.finished();
        summary
    }

    /// Records lost in damaged ranges, as far as the intact frames tell; `None` when some
    /// damage runs to the end of the file, where the count is unknown.
    pub fn lost_records(&self) -> Option<u64> {
        self.damage
            .iter()
            .filter(|d| d.start != d.end)
            .map(|d| d.lost_records)
            .sum()
    }

    pub fn is_intact(&self) -> bool {
        self.damage.is_empty()
    }
}

impl CaptureReader {
    /// Reads the whole file: header, counts, time range, damage.
    pub fn summary(self) -> Summary {
        Summary::of(self)
    }
}
