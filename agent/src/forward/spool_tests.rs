use std::time::{Duration, SystemTime};

use super::*;

fn limits(max_bytes: u64, segment_bytes: u64) -> Limits {
    Limits {
        max_bytes,
        max_age: Duration::from_secs(3600),
        segment_bytes,
        fsync: Fsync::Never,
    }
}

fn dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-spool-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn append(spool: &mut Spool, n: usize) -> Option<Dropped> {
    spool
        .append(0..n, |seq, _| format!("record {seq}").into_bytes())
        .expect("append")
}

fn seqs(records: &[(u64, Vec<u8>)]) -> Vec<u64> {
    records
        .iter()
        .map(|(seq, body)| {
            assert_eq!(body, format!("record {seq}").as_bytes());
            *seq
        })
        .collect()
}

#[test]
fn records_are_read_in_order_in_windows_across_segments() {
    let dir = dir("order");
    let mut spool = Spool::open(&dir, limits(1 << 20, 100), &["a"]).expect("open");
    assert_eq!(append(&mut spool, 25), None);
    let mut reader = spool.reader("a");
    let mut all = Vec::new();
    loop {
        let batch = spool.read(&mut reader, 4).expect("read");
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 4);
        all.extend(seqs(&batch));
    }
    assert_eq!(all, (1..=25).collect::<Vec<_>>());
    assert!(spool.segments.len() > 3, "100-byte segments rotate");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn acknowledged_segments_go_and_the_rest_survive_a_reopen() {
    let dir = dir("reopen");
    let mut spool = Spool::open(&dir, limits(1 << 20, 100), &["a", "b"]).expect("open");
    append(&mut spool, 20);
    let stream = spool.stream().to_owned();
    spool.ack("a", 20).expect("ack");
    assert!(spool.segments.len() > 3, "b holds every segment");
    spool.ack("b", 12).expect("ack");
    let first = spool.segments[0].first_seq;
    assert!(first <= 13 && first > 1, "segments up to 12 went: {first}");
    spool.close().expect("close");

    let mut spool = Spool::open(&dir, limits(1 << 20, 100), &["a", "b"]).expect("reopen");
    assert_eq!(spool.stream(), stream);
    assert_eq!(spool.next_seq(), 21);
    assert_eq!(spool.acked("a"), 20);
    assert_eq!(spool.acked("b"), 12);
    let mut reader = spool.reader("b");
    assert_eq!(
        seqs(&spool.read(&mut reader, 100).expect("read")),
        (13..=20).collect::<Vec<_>>()
    );
    append(&mut spool, 1);
    assert_eq!(seqs(&spool.read(&mut reader, 100).expect("read")), vec![21]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_torn_last_frame_is_cut_and_numbering_continues() {
    let dir = dir("torn");
    let mut spool = Spool::open(&dir, limits(1 << 20, 1 << 20), &["a"]).expect("open");
    append(&mut spool, 3);
    let path = spool.active().path.clone();
    spool.close().expect("close");
    // A crash in the middle of the fourth frame.
    let mut frame = Vec::new();
    encode_frame(4, b"record 4", &mut frame);
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    file.write_all(&frame[..frame.len() - 3]).expect("write");
    drop(file);

    let mut spool = Spool::open(&dir, limits(1 << 20, 1 << 20), &["a"]).expect("reopen");
    assert_eq!(spool.truncated(), frame.len() as u64 - 3);
    assert_eq!(spool.next_seq(), 4);
    append(&mut spool, 1);
    let mut reader = spool.reader("a");
    assert_eq!(
        seqs(&spool.read(&mut reader, 100).expect("read")),
        vec![1, 2, 3, 4]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_corrupt_frame_ends_the_segment() {
    let dir = dir("crc");
    let mut spool = Spool::open(&dir, limits(1 << 20, 1 << 20), &["a"]).expect("open");
    append(&mut spool, 3);
    let path = spool.active().path.clone();
    spool.close().expect("close");
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).expect("write");
    let spool = Spool::open(&dir, limits(1 << 20, 1 << 20), &["a"]).expect("reopen");
    assert_eq!(spool.next_seq(), 3, "frame 3 failed its CRC");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_size_limit_drops_the_oldest_and_says_how_many_were_unacknowledged() {
    let dir = dir("full");
    // Frames are 16 + 9..10 bytes: about 4 per 100-byte segment, 10 segments at most.
    let mut spool = Spool::open(&dir, limits(1000, 100), &["a"]).expect("open");
    append(&mut spool, 30);
    spool.ack("a", 2).expect("ack");
    let dropped = append(&mut spool, 20).expect("over the limit");
    assert_eq!(dropped.cause, DropCause::Full);
    assert_eq!(dropped.first_seq, 1);
    assert_eq!(
        dropped.count,
        dropped.last_seq - 2,
        "1 and 2 were acknowledged"
    );
    assert!(spool.bytes() <= 1000);
    assert_eq!(
        spool.acked("a"),
        dropped.last_seq,
        "the cursor skips what went"
    );
    let mut reader = Reader::default();
    let read = seqs(&spool.read(&mut reader, 100).expect("read"));
    assert_eq!(
        read,
        ((dropped.last_seq + 1)..=50).collect::<Vec<_>>(),
        "the rest is intact and in order"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_age_limit_drops_old_segments_on_tick() {
    let dir = dir("age");
    let mut spool = Spool::open(&dir, limits(1 << 20, 60), &["a"]).expect("open");
    append(&mut spool, 10);
    let later = SystemTime::now() + Duration::from_secs(7200);
    let dropped = spool.tick(later).expect("tick").expect("too old");
    assert_eq!(dropped.cause, DropCause::Age);
    assert_eq!(dropped.first_seq, 1);
    assert_eq!(spool.segments.len(), 1, "the active segment stays");
    assert_eq!(dropped.count, dropped.last_seq);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_reader_behind_a_dropped_segment_resumes_at_the_oldest_record() {
    let dir = dir("behind");
    let mut spool = Spool::open(&dir, limits(400, 100), &["a"]).expect("open");
    append(&mut spool, 4);
    let mut reader = spool.reader("a");
    assert_eq!(seqs(&spool.read(&mut reader, 2).expect("read")), vec![1, 2]);
    append(&mut spool, 40);
    let read = seqs(&spool.read(&mut reader, 1000).expect("read"));
    assert_eq!(read.first().copied(), Some(spool.segments[0].first_seq));
    assert_eq!(read.last().copied(), Some(44));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn stale_cursors_are_removed_and_new_destinations_start_at_the_oldest_record() {
    let dir = dir("cursors");
    let mut spool = Spool::open(&dir, limits(1 << 20, 1 << 20), &["old"]).expect("open");
    append(&mut spool, 5);
    spool.ack("old", 5).expect("ack");
    spool.close().expect("close");
    assert!(dir.join("cursor-old").exists());
    let spool = Spool::open(&dir, limits(1 << 20, 1 << 20), &["new"]).expect("reopen");
    assert!(!dir.join("cursor-old").exists());
    assert_eq!(
        spool.acked("new"),
        0,
        "everything kept is sent to a new destination"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_planted_link_is_never_written_through() {
    let dir = dir("links");
    std::fs::create_dir_all(&dir).expect("parent");
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").expect("victim");
    // A linked spool directory is refused by name.
    let linked = dir.join("linked");
    std::os::unix::fs::symlink(&dir, &linked).expect("directory link");
    let Err(error) = Spool::open(&linked, limits(1 << 20, 100), &["a"]) else {
        panic!("opened a spool through a directory link");
    };
    let text = crate::telemetry::chain(&error);
    assert!(text.contains("is a symbolic link"), "{text}");
    // A segment name linked to another file is refused, and the file is untouched.
    let spool_dir = dir.join("spool");
    std::fs::create_dir(&spool_dir).expect("spool dir");
    std::os::unix::fs::symlink(&victim, spool_dir.join(format!("{:020}.seg", 1)))
        .expect("segment link");
    let Err(error) = Spool::open(&spool_dir, limits(1 << 20, 100), &["a"]) else {
        panic!("opened a linked segment");
    };
    let text = crate::telemetry::chain(&error);
    assert!(text.contains("is a symbolic link"), "{text}");
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
    let _ = std::fs::remove_dir_all(&dir);
}
