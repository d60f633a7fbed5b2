//! Damage: every intact frame is read, every damaged range is reported, nothing panics.

use super::*;
use crate::forensics::capture::{
    DamageReason,
    format::{
        CODEC_ZSTD, FrameHeader, KIND_EVENTS, MAX_FRAME_BYTES, MAX_FRAME_RECORDS, PREAMBLE_LEN,
    },
};

/// A small finished file: 10 events in frames of 3 (4 frames and the end frame).
fn small(label: &str) -> (PathBuf, Vec<u8>, Vec<Frame>) {
    let path = temp_dir(label).join("a.vcap");
    write(&path, &events(10), 3);
    let bytes = std::fs::read(&path).expect("read back");
    let frames = frames(&path);
    assert_eq!(frames.len(), 5);
    (path, bytes, frames)
}

#[test]
fn a_file_cut_at_every_byte_yields_every_frame_before_the_cut() {
    let (path, bytes, frames) = small("cut");
    let header_end = frames[0].offset as usize;
    let cut_path = path.with_file_name("cut.vcap");
    for cut in 0..=bytes.len() {
        std::fs::write(&cut_path, &bytes[..cut]).expect("write");
        if cut < PREAMBLE_LEN {
            let error = CaptureReader::open(&cut_path).err().expect("no preamble");
            assert!(
                matches!(
                    error,
                    CaptureError::Empty { .. } | CaptureError::Truncated { .. }
                ),
                "cut {cut}: {error:?}"
            );
            continue;
        }
        let read = read(&cut_path).expect("open");
        let expected: Vec<_> = frames
            .iter()
            .filter(|f| f.offset + f.len <= cut as u64)
            .flat_map(|f| f.events.clone())
            .collect();
        assert_eq!(read.events, expected, "cut {cut}");
        if cut == bytes.len() {
            assert!(read.damage.is_empty() && read.finished, "cut {cut}");
            continue;
        }
        assert!(!read.finished, "cut {cut}");
        let [damage] = read.damage.as_slice() else {
            panic!("cut {cut}: one damage expected, got {:?}", read.damage);
        };
        assert_eq!(damage.end, cut as u64, "cut {cut}: {damage}");
        let at_boundary = frames.iter().any(|f| f.offset == cut as u64);
        let expected_reason = if cut < header_end {
            DamageReason::Header
        } else if at_boundary {
            DamageReason::Unfinished
        } else {
            DamageReason::Truncated
        };
        assert_eq!(damage.reason, expected_reason, "cut {cut}: {damage}");
        if expected_reason == DamageReason::Truncated {
            let frame = frames
                .iter()
                .rfind(|f| f.offset < cut as u64)
                .expect("a frame");
            assert_eq!(damage.start, frame.offset, "cut {cut}");
        }
    }
}

#[test]
fn a_flipped_byte_anywhere_in_a_frame_loses_that_frame_only() {
    let (path, bytes, frames) = small("flip");
    let victim = &frames[1];
    let others: Vec<_> = frames
        .iter()
        .filter(|f| f.offset != victim.offset)
        .flat_map(|f| f.events.clone())
        .collect();
    let flipped = path.with_file_name("flipped.vcap");
    for at in victim.offset..victim.offset + victim.len {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[at as usize] ^= mask;
            std::fs::write(&flipped, &bad).expect("write");
            let read = read(&flipped).expect("open");
            assert_eq!(read.events, others, "byte {at} ^ {mask:#x}");
            assert!(read.finished);
            let [damage] = read.damage.as_slice() else {
                panic!("byte {at}: one damage expected, got {:?}", read.damage);
            };
            assert_eq!(
                (damage.start, damage.end, damage.lost_records),
                (victim.offset, victim.offset + victim.len, Some(3)),
                "byte {at} ^ {mask:#x}: {damage}"
            );
            let in_header = at < victim.offset + 36;
            let reason = if in_header {
                DamageReason::NotAFrame
            } else {
                DamageReason::Checksum
            };
            assert_eq!(damage.reason, reason, "byte {at}");
        }
    }
}

#[test]
fn a_damaged_header_costs_the_header_only() {
    let (path, mut bytes, frames) = small("header");
    bytes[PREAMBLE_LEN + 3] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let read = read(&path).expect("open");
    assert_eq!(read.header, None);
    assert_eq!(read.events, events(10));
    assert_eq!(
        read.damage,
        vec![Damage {
            start: PREAMBLE_LEN as u64,
            end: frames[0].offset,
            reason: DamageReason::Header,
            lost_records: Some(0),
        }]
    );
}

#[test]
fn garbage_between_frames_is_skipped() {
    let (path, bytes, frames) = small("garbage");
    let at = frames[2].offset as usize;
    // Includes a marker with no valid header after it.
    let garbage: Vec<u8> = b"VCFR"
        .iter()
        .copied()
        .chain((0..96u8).map(|b| b.wrapping_mul(37)))
        .collect();
    let mut bad = bytes[..at].to_vec();
    bad.extend_from_slice(&garbage);
    bad.extend_from_slice(&bytes[at..]);
    std::fs::write(&path, &bad).expect("write");
    let read = read(&path).expect("open");
    assert_eq!(read.events, events(10));
    assert_eq!(
        read.damage,
        vec![Damage {
            start: at as u64,
            end: (at + garbage.len()) as u64,
            reason: DamageReason::NotAFrame,
            lost_records: Some(0),
        }]
    );
}

#[test]
fn a_damaged_end_frame_makes_the_file_unfinished() {
    let (path, mut bytes, frames) = small("end");
    let end = frames.last().expect("end frame").offset;
    bytes[end as usize + 5] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let read = read(&path).expect("open");
    assert_eq!(read.events, events(10));
    assert!(!read.finished);
    assert_eq!(read.damage.len(), 1);
    assert_eq!(
        (read.damage[0].start, read.damage[0].end),
        (end, bytes.len() as u64)
    );
}

/// A frame with valid CRCs: what a hostile file can hold.
fn crafted(header: FrameHeader, body: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        compressed_len: u32::try_from(body.len()).expect("small"),
        body_crc: crc32fast::hash(body),
        ..header
    };
    let mut frame = header.encode().to_vec();
    frame.extend_from_slice(body);
    frame
}

#[test]
fn frames_claiming_too_much_are_rejected_before_allocating() {
    let (path, bytes, frames) = small("bomb");
    let events_frame = FrameHeader {
        kind: KIND_EVENTS,
        codec: CODEC_ZSTD,
        compressed_len: 0,
        uncompressed_len: 1 << 20,
        record_count: 1,
        first_record: 3,
        body_crc: 0,
    };
    // A real bomb: 64 MiB of zeros in a few KiB, claiming 1 MiB.
    let zeros = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).expect("compress");
    assert!(zeros.len() < 64 << 10);
    let bombs = [
        (
            crafted(
                FrameHeader {
                    uncompressed_len: MAX_FRAME_BYTES + 1,
                    ..events_frame
                },
                b"x",
            ),
            DamageReason::TooLarge {
                uncompressed: MAX_FRAME_BYTES + 1,
                compressed: 1,
            },
        ),
        (
            crafted(
                FrameHeader {
                    record_count: MAX_FRAME_RECORDS + 1,
                    ..events_frame
                },
                b"x",
            ),
            DamageReason::TooLarge {
                uncompressed: 1 << 20,
                compressed: 1,
            },
        ),
        (crafted(events_frame, &zeros), DamageReason::Decompress),
        (
            crafted(
                FrameHeader {
                    kind: 9,
                    ..events_frame
                },
                b"x",
            ),
            DamageReason::Unsupported {
                kind: 9,
                codec: CODEC_ZSTD,
            },
        ),
    ];
    let at = frames[1].offset as usize;
    for (bomb, reason) in bombs {
        let mut bad = bytes[..at].to_vec();
        bad.extend_from_slice(&bomb);
        bad.extend_from_slice(&bytes[at..]);
        std::fs::write(&path, &bad).expect("write");
        let read = read(&path).expect("open");
        assert_eq!(read.events, events(10));
        assert_eq!(
            read.damage,
            vec![Damage {
                start: at as u64,
                end: (at + bomb.len()) as u64,
                reason,
                lost_records: Some(0),
            }]
        );
    }
}

#[test]
fn empty_records_claiming_a_plausible_count_are_not_events() {
    let (path, bytes, frames) = small("records");
    // 100 zero-length records are 100 default events: the count says 99.
    let body = zstd::bulk::compress(&[0u8; 100], 3).expect("compress");
    let frame = crafted(
        FrameHeader {
            kind: KIND_EVENTS,
            codec: CODEC_ZSTD,
            compressed_len: 0,
            uncompressed_len: 100,
            record_count: 99,
            first_record: 3,
            body_crc: 0,
        },
        &body,
    );
    let at = frames[1].offset as usize;
    let mut bad = bytes[..at].to_vec();
    bad.extend_from_slice(&frame);
    bad.extend_from_slice(&bytes[at..]);
    std::fs::write(&path, &bad).expect("write");
    let read = read(&path).expect("open");
    assert_eq!(read.events, events(10));
    assert_eq!(read.damage.len(), 1);
    assert_eq!(read.damage[0].reason, DamageReason::Records);
}
