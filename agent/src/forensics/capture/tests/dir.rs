//! A directory of rotated capture files.

use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use super::*;
use crate::forensics::capture::{CaptureDir, RotateLimits};

fn events_in(files: &[PathBuf]) -> Vec<proto::Event> {
    files
        .iter()
        .flat_map(|f| {
            let read = read(f).expect("read");
            assert!(read.finished && read.damage.is_empty(), "{}", f.display());
            read.events
        })
        .collect()
}

#[test]
fn files_rotate_by_size_and_the_oldest_go_beyond_max_files() {
    let dir = temp_dir("dir-size").join("out");
    let limits = RotateLimits {
        max_bytes: Some(2000),
        max_age: None,
        max_files: Some(3),
    };
    let frames = FrameLimits {
        max_records: 4,
        ..FrameLimits::default()
    };
    let mut out = CaptureDir::new(&dir, test_header(), limits)
        .expect("create")
        .with_frame_limits(frames);
    let all = events(200);
    for event in &all {
        out.write(event).expect("write");
    }
    let current = out.current().expect("a file is open").to_owned();
    out.finish().expect("finish");

    let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let files = CaptureDir::new(&dir, test_header(), limits)
        .expect("reopen")
        .files()
        .expect("list");
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files.last(), Some(&current));
    // The files kept hold the last events, in order, and none over the limit by more than
    // a frame and the end frame.
    let kept = events_in(&files);
    assert_eq!(kept, all[all.len() - kept.len()..]);
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            name.starts_with("vigil-node_a-") && name.ends_with(".vcap"),
            "{name}"
        );
        assert!(
            std::fs::metadata(file).expect("stat").len() < 2000 + 1000,
            "{name}"
        );
    }
}

#[test]
fn numbering_goes_on_across_runs_and_other_nodes_are_left_alone() {
    let dir = temp_dir("dir-runs");
    let other = dir.join("vigil-node_b-20260101T000000Z-0.vcap");
    std::fs::write(&other, b"another node's file").expect("write");
    let limits = RotateLimits {
        max_files: Some(2),
        ..RotateLimits::default()
    };
    for run in 0..3u64 {
        let mut out = CaptureDir::new(&dir, test_header(), limits).expect("create");
        out.write(&event(run)).expect("write");
        out.finish().expect("finish");
    }
    let out = CaptureDir::new(&dir, test_header(), limits).expect("create");
    let files = out.files().expect("list");
    let names: Vec<_> = files
        .iter()
        .map(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_owned()
        })
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].ends_with("-1.vcap") && names[1].ends_with("-2.vcap"),
        "{names:?}"
    );
    assert_eq!(events_in(&files), vec![event(1), event(2)]);
    assert!(other.exists());
}

#[test]
fn an_old_file_is_closed_by_tick_and_the_next_event_opens_another() {
    let dir = temp_dir("dir-age");
    let limits = RotateLimits {
        max_age: Some(Duration::from_millis(50)),
        ..RotateLimits::default()
    };
    let mut out = CaptureDir::new(&dir, test_header(), limits).expect("create");
    out.write(&event(0)).expect("write");
    out.tick().expect("tick");
    assert!(
        out.current().is_some(),
        "young: kept open, its frame flushed"
    );
    std::thread::sleep(Duration::from_millis(60));
    out.tick().expect("tick");
    assert_eq!(out.current(), None);
    out.tick().expect("an idle tick");
    out.write(&event(1)).expect("write");
    std::thread::sleep(Duration::from_millis(60));
    out.write(&event(2)).expect("write: rotates first");
    drop(out);
    let files = CaptureDir::new(&dir, test_header(), limits)
        .expect("create")
        .files()
        .expect("list");
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(events_in(&files), events(3));
}
