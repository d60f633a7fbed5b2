//! One spool record on disk: `len u32 | crc32 u32 | seq u64 | payload`, little endian; the
//! CRC covers seq and payload, so a torn or corrupt frame is recognised and ends its segment.

use std::io::Read;

pub(super) const HEADER: usize = 16;
/// A payload larger than this is refused (a record is one event).
pub const MAX_PAYLOAD: usize = 4 << 20;

pub(super) fn encode_frame(seq: u64, body: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(body);
    let len = u32::try_from(body.len()).expect("bounded by MAX_PAYLOAD");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(body);
}

/// The next whole, intact frame; `None` at the end or at a torn or corrupt frame.
pub(super) fn read_frame(file: &mut impl Read) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    let mut header = [0u8; HEADER];
    if !read_exact_or_eof(file, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if len > MAX_PAYLOAD {
        return Ok(None);
    }
    let mut body = vec![0u8; len];
    if !read_exact_or_eof(file, &mut body)? {
        return Ok(None);
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..16]);
    hasher.update(&body);
    Ok((hasher.finalize() == crc).then_some((seq, body)))
}

fn read_exact_or_eof(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
