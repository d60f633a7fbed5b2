use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::forensics::capture::{DamageReason, RECORD_TYPE};

#[test]
fn many_events_round_trip_across_frames_with_the_header() {
    let dir = temp_dir("round-trip");
    let path = dir.join("a.vcap");
    let all = events(10_000);
    write(&path, &all, 700);

    let read = read(&path).expect("read");
    assert_eq!(read.events, all);
    assert_eq!(read.damage, vec![]);
    assert!(read.finished);
    let header = read.header.expect("intact header");
    assert_eq!(header, test_header());
    assert!(!header.kernel_release.is_empty() && !header.agent_version.is_empty());
    assert_eq!(header.record_type, RECORD_TYPE);
    assert_eq!(header.metadata["trigger_rule"], "shell-in-container");

    let frames = frames(&path);
    assert_eq!(
        frames.len(),
        10_000 / 700 + 1 + 1,
        "15 frames of events and the end"
    );
    let mut next = 0;
    for frame in &frames {
        assert_eq!(frame.first_record, next);
        next += frame.events.len() as u64;
    }

    let summary = CaptureReader::open(&path).expect("open").summary();
    assert_eq!(summary.events, 10_000);
    assert_eq!(summary.frames, 15);
    assert_eq!(summary.kinds["exec"], 2500);
    assert_eq!(summary.first_time_unix_ns, Some(all[0].time_unix_ns));
    assert_eq!(summary.last_time_unix_ns, Some(all[9999].time_unix_ns));
    assert!(summary.finished && summary.is_intact());
    assert_eq!(summary.lost_records(), Some(0));
    // The frames compress: events repeat most of their fields.
    let raw: usize = all.iter().map(prost::Message::encoded_len).sum();
    assert!(
        summary.file_len < raw as u64 / 3,
        "{} of {raw}",
        summary.file_len
    );
}

#[test]
fn frames_close_at_the_byte_limit_too() {
    let dir = temp_dir("byte-limit");
    let path = dir.join("a.vcap");
    let limits = FrameLimits {
        max_records: 1_000_000,
        max_bytes: 1000,
        level: 1,
    };
    let mut writer = CaptureWriter::create_with(&path, &test_header(), limits).expect("create");
    let all = events(100);
    for event in &all {
        writer.write(event).expect("write");
    }
    writer.finish().expect("finish");
    let frames = frames(&path);
    assert!(frames.len() > 5, "{} frames", frames.len());
    assert!(frames.iter().all(|f| f.uncompressed_len < 1000 + 200));
    assert_eq!(read(&path).expect("read").events, all);
}

#[test]
fn files_are_private_and_never_overwritten() {
    let dir = temp_dir("mode");
    let path = dir.join("a.vcap");
    write(&path, &events(3), 10);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let error = CaptureWriter::create(&path, &test_header())
        .err()
        .expect("an existing file is evidence");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    assert_eq!(read(&path).expect("read").events.len(), 3);
}

#[test]
fn a_writer_dropped_unfinished_keeps_its_events_and_reads_as_unfinished() {
    let dir = temp_dir("unfinished");
    let path = dir.join("a.vcap");
    let all = events(25);
    {
        let limits = FrameLimits {
            max_records: 10,
            ..FrameLimits::default()
        };
        let mut writer = CaptureWriter::create_with(&path, &test_header(), limits).expect("create");
        for event in &all {
            writer.write(event).expect("write");
        }
        assert_eq!(writer.records(), 25);
    }
    let read = read(&path).expect("read");
    assert_eq!(read.events, all);
    assert!(!read.finished);
    let len = std::fs::metadata(&path).expect("stat").len();
    assert_eq!(
        read.damage,
        vec![Damage {
            start: len,
            end: len,
            reason: DamageReason::Unfinished,
            lost_records: None,
        }]
    );
}

#[test]
fn a_file_with_no_events_is_intact() {
    let dir = temp_dir("no-events");
    let path = dir.join("a.vcap");
    write(&path, &[], 10);
    let read = read(&path).expect("read");
    assert!(read.events.is_empty() && read.damage.is_empty() && read.finished);
}

#[test]
fn a_header_can_carry_the_schema_and_the_types_move_across_threads() {
    let dir = temp_dir("schema");
    let path = dir.join("a.vcap");
    let mut header = test_header();
    header.descriptor_set = proto::FILE_DESCRIPTOR_SET.to_vec();
    let mut writer = CaptureWriter::create(&path, &header).expect("create");
    writer.write(&event(1)).expect("write");
    writer.finish().expect("finish");
    let read = read(&path).expect("read");
    assert_eq!(read.header, Some(header));
    assert_eq!(read.events, vec![event(1)]);

    // Writers and readers do blocking I/O: callers run them on a blocking task or thread.
    fn send<T: Send>() {}
    send::<CaptureWriter>();
    send::<CaptureReader>();
    send::<crate::forensics::capture::CaptureDir>();
    send::<crate::forensics::capture::Events>();
}
