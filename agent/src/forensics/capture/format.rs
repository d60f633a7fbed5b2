//! The byte layout of a capture file (all integers little endian); docs/capture-format.md
//! says the same in prose.
//!
//! ```text
//! preamble  magic [8] | version u16 | reserved u16 | header_len u32 | header_crc u32
//! header    CaptureHeader protobuf, header_len bytes (header_crc is its CRC32)
//! frame*    marker [4] | kind u8 | codec u8 | reserved u16 | compressed_len u32
//!           | uncompressed_len u32 | record_count u32 | first_record u64 | body_crc u32
//!           | header_crc u32 (of the 32 bytes before it) | body, compressed_len bytes
//! ```

/// The first bytes of every capture file. As in PNG's signature: the high bit catches a
/// 7-bit transfer, CR LF a newline conversion, and 0x1a stops `type` on a console.
pub const MAGIC: [u8; 8] = *b"\x89VCAP\r\n\x1a";
/// The format version this code writes, and the newest it reads.
pub const VERSION: u16 = 1;
pub const PREAMBLE_LEN: usize = 20;
/// A header message larger than this is damage, not a header (it is a few hundred bytes,
/// or tens of KiB with a descriptor set).
pub const MAX_HEADER_BYTES: u32 = 1 << 20;

/// Starts every frame; a reader that lost its place scans for it.
pub const FRAME_MARKER: [u8; 4] = *b"VCFR";
pub const FRAME_HEADER_LEN: usize = 36;
/// A frame may hold at most this many bytes of records: a frame claiming more is rejected
/// before anything is allocated, so a crafted file cannot be a decompression bomb. Not
/// more, because decoding multiplies memory too: an empty repeated string takes 2 bytes
/// on the wire and a 24-byte `String` (more as the `Vec` grows) once decoded.
pub const MAX_FRAME_BYTES: u32 = 16 << 20;
/// zstd's bound for MAX_FRAME_BYTES of incompressible input is about 16 MiB + 64 KiB.
pub const MAX_COMPRESSED_BYTES: u32 = MAX_FRAME_BYTES + (1 << 20);
/// At most this many records per frame, for the same reason: an empty record is one byte
/// on the wire and a whole default `Event` in memory.
pub const MAX_FRAME_RECORDS: u32 = 1 << 16;

/// A frame of events.
pub const KIND_EVENTS: u8 = 1;
/// The last frame of a finished file: no body; `first_record` is the number of records.
pub const KIND_END: u8 = 2;
/// No body (end frames only).
pub const CODEC_NONE: u8 = 0;
pub const CODEC_ZSTD: u8 = 1;

/// The fixed fields of the preamble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    pub version: u16,
    pub header_len: u32,
    pub header_crc: u32,
}

impl Preamble {
    pub fn encode(&self) -> [u8; PREAMBLE_LEN] {
        let mut out = [0u8; PREAMBLE_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.version.to_le_bytes());
        out[12..16].copy_from_slice(&self.header_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.header_crc.to_le_bytes());
        out
    }

    /// The fields, once the caller has checked the magic. The reserved bytes are ignored so
    /// that a later version 1 writer may use them for hints a reader can do without.
    pub fn decode(bytes: &[u8; PREAMBLE_LEN]) -> Self {
        Self {
            version: u16::from_le_bytes([bytes[8], bytes[9]]),
            header_len: u32_at(bytes, 12),
            header_crc: u32_at(bytes, 16),
        }
    }
}

/// The fixed header of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: u8,
    pub codec: u8,
    pub compressed_len: u32,
    pub uncompressed_len: u32,
    pub record_count: u32,
    /// The index in the file of the frame's first record: a gap between two intact frames
    /// tells how many records a damaged range held.
    pub first_record: u64,
    /// CRC32 of the compressed body.
    pub body_crc: u32,
}

impl FrameHeader {
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[0..4].copy_from_slice(&FRAME_MARKER);
        out[4] = self.kind;
        out[5] = self.codec;
        out[8..12].copy_from_slice(&self.compressed_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.uncompressed_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.record_count.to_le_bytes());
        out[20..28].copy_from_slice(&self.first_record.to_le_bytes());
        out[28..32].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = crc32fast::hash(&out[..32]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// `None` unless `bytes` start with the marker and their CRC holds: damage, or bytes that
    /// only happen to contain the marker.
    pub fn decode(bytes: &[u8; FRAME_HEADER_LEN]) -> Option<Self> {
        if bytes[0..4] != FRAME_MARKER || crc32fast::hash(&bytes[..32]) != u32_at(bytes, 32) {
            return None;
        }
        Some(Self {
            kind: bytes[4],
            codec: bytes[5],
            compressed_len: u32_at(bytes, 8),
            uncompressed_len: u32_at(bytes, 12),
            record_count: u32_at(bytes, 16),
            first_record: u64::from_le_bytes([
                bytes[20], bytes[21], bytes[22], bytes[23], bytes[24], bytes[25], bytes[26],
                bytes[27],
            ]),
            body_crc: u32_at(bytes, 28),
        })
    }

    /// The whole frame's length in the file.
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.compressed_len)
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_round_trip_and_reject_any_changed_byte() {
        let header = FrameHeader {
            kind: KIND_EVENTS,
            codec: CODEC_ZSTD,
            compressed_len: 1234,
            uncompressed_len: 5678,
            record_count: 9,
            first_record: 1 << 40,
            body_crc: 0xdead_beef,
        };
        let bytes = header.encode();
        assert_eq!(FrameHeader::decode(&bytes), Some(header));
        for at in 0..FRAME_HEADER_LEN {
            let mut bad = bytes;
            bad[at] ^= 0x10;
            assert_eq!(FrameHeader::decode(&bad), None, "byte {at} changed");
        }
    }

    #[test]
    fn preambles_round_trip() {
        let preamble = Preamble {
            version: VERSION,
            header_len: 77,
            header_crc: 42,
        };
        let bytes = preamble.encode();
        assert_eq!(bytes[..8], MAGIC);
        assert_eq!(Preamble::decode(&bytes), preamble);
    }
}
