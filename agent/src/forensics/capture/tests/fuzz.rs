//! Randomized damage (a libFuzzer-free fuzz test, deterministic): thousands of mutated
//! files, each read to the end with no panic, no endless loop, and only real events out.

use std::collections::HashSet;

use prost::Message as _;

use super::*;
use crate::forensics::capture::format::{FRAME_MARKER, FrameHeader};

/// splitmix64: small, fast, and the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.push(rng.next() as u8);
        return;
    }
    let at = rng.below(bytes.len());
    match rng.below(8) {
        0 => bytes[at] ^= 1 << rng.below(8),
        1 => bytes[at] = rng.next() as u8,
        2 => bytes.truncate(at),
        3 => {
            let noise: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, noise);
        }
        4 => {
            let end = (at + 1 + rng.below(200)).min(bytes.len());
            bytes.drain(at..end);
        }
        5 => {
            // A copied run: repeated frames, or a frame's start without its end.
            let end = (at + 1 + rng.below(400)).min(bytes.len());
            let run = bytes[at..end].to_vec();
            let to = rng.below(bytes.len());
            bytes.splice(to..to, run);
        }
        6 => {
            let end = (at + FRAME_MARKER.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&FRAME_MARKER[..end - at]);
        }
        _ => {
            // A frame header with valid CRC and random fields: the reader must not trust it.
            let header = FrameHeader {
                kind: rng.below(4) as u8,
                codec: rng.below(3) as u8,
                compressed_len: rng.next() as u32 >> rng.below(32),
                uncompressed_len: rng.next() as u32 >> rng.below(32),
                record_count: rng.next() as u32 >> rng.below(32),
                first_record: rng.next() >> rng.below(64),
                body_crc: rng.next() as u32,
            };
            bytes.splice(at..at, header.encode());
        }
    }
}

#[test]
fn random_mutations_never_panic_loop_or_invent_events() {
    let dir = temp_dir("fuzz");
    let original = dir.join("original.vcap");
    let all = events(40);
    write(&original, &all, 5);
    let known: HashSet<Vec<u8>> = all.iter().map(|e| e.encode_to_vec()).collect();
    let bytes = std::fs::read(&original).expect("read");
    let path = dir.join("mutated.vcap");
    let mut rng = Rng(0x5eed_cafe);
    let mut outcomes = [0usize; 3];
    for round in 0..2000 {
        let mut mutated = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut mutated);
        }
        std::fs::write(&path, &mutated).expect("write");
        let Ok(reader) = CaptureReader::open(&path) else {
            outcomes[0] += 1;
            continue;
        };
        let len = mutated.len() as u64;
        // Every item moves the reader forward by a byte at least, or is an event of a
        // frame: more than this is a loop.
        let bound = len as usize + 4 * all.len() + 2;
        let mut last_end = 0;
        let mut items = 0;
        let mut damaged = false;
        for item in reader.events() {
            items += 1;
            assert!(items <= bound, "round {round}: endless reading");
            match item {
                Ok(event) => assert!(
                    known.contains(&event.encode_to_vec()),
                    "round {round}: invented {event:?}"
                ),
                Err(damage) => {
                    damaged = true;
                    assert!(
                        damage.start <= damage.end && damage.end <= len,
                        "round {round}: {damage}"
                    );
                    assert!(damage.start >= last_end, "round {round}: {damage} overlaps");
                    last_end = damage.end;
                }
            }
        }
        outcomes[1 + usize::from(damaged)] += 1;
    }
    // The mix reached both the refusals (magic, version) and the recovery paths.
    assert!(outcomes[0] > 0 && outcomes[2] > 1000, "{outcomes:?}");
}
