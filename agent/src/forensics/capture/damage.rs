//! A damaged byte range of a capture file: what the reader skipped, and why.

use std::fmt;

/// Bytes `start..end` of the file held no intact frame. The reader resumed at `end`: the
/// next intact frame, or the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub start: u64,
    pub end: u64,
    /// Why the frame at `start` was rejected (later bytes of the range were only scanned).
    pub reason: DamageReason,
    /// Records lost in the range, when an intact frame after it tells (frames carry the
    /// index of their first record); `None` when the damage runs to the end of the file.
    pub lost_records: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageReason {
    /// The header message after the preamble is unreadable (bad length or CRC, or not a
    /// `CaptureHeader`); the frames after it are still read.
    Header,
    /// No frame starts here (bad marker or frame-header CRC).
    NotAFrame,
    /// A frame runs past the end of the file: the file was cut.
    Truncated,
    /// The compressed body does not match its CRC.
    Checksum,
    /// A frame claims more bytes than the format allows (see `format::MAX_FRAME_BYTES`).
    TooLarge { uncompressed: u32, compressed: u32 },
    /// A frame kind or codec this version does not know.
    Unsupported { kind: u8, codec: u8 },
    /// zstd rejected the body, or it decompressed to another size than the header says.
    Decompress,
    /// The records are not the `vigil.v1.Event` messages the header counts.
    Records,
    /// The file has no end frame: the writer stopped without finishing (a crash, or it is
    /// still writing). `start == end ==` the file's length.
    Unfinished,
    /// Reading failed; the reader stopped here.
    Io(std::io::ErrorKind),
}

impl fmt::Display for DamageReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header => f.write_str("unreadable capture header"),
            Self::NotAFrame => f.write_str("not a frame"),
            Self::Truncated => f.write_str("frame cut short by the end of the file"),
            Self::Checksum => f.write_str("frame body fails its CRC"),
            Self::TooLarge {
                uncompressed,
                compressed,
            } => write!(
                f,
                "frame claims {uncompressed} bytes ({compressed} compressed), over the limit"
            ),
            Self::Unsupported { kind, codec } => {
                write!(f, "unknown frame kind {kind} or codec {codec}")
            }
            Self::Decompress => f.write_str("frame body does not decompress"),
            Self::Records => f.write_str("frame records are not valid events"),
            Self::Unfinished => f.write_str("no end frame (the writer did not finish)"),
            Self::Io(kind) => write!(f, "read error: {kind}"),
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bytes {}..{}: {}", self.start, self.end, self.reason)?;
        match self.lost_records {
            Some(n) => write!(f, " ({n} records lost)"),
            None => Ok(()),
        }
    }
}
