//! Tests of the capture format: round trips, damage of every kind, randomized mutations,
//! directories of rotated files. Helpers here build events and files.

mod damage;
mod dir;
mod errors;
mod fuzz;
mod round_trip;

use std::path::{Path, PathBuf};

use super::{
    CaptureError, CaptureHeader, CaptureReader, CaptureWriter, Damage, Frame, FrameKind,
    FrameLimits, header,
};
use crate::api::proto::{self, event::Detail};

/// A fresh directory for one test.
fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-capture-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// A distinct, realistic event for each `i`.
fn event(i: u64) -> proto::Event {
    let kinds = ["exec", "connect", "exit", "file"];
    let kind = kinds[(i % kinds.len() as u64) as usize];
    let detail = match kind {
        "exec" => Detail::Exec(proto::Exec {
            filename: format!("/usr/bin/tool-{i}"),
            inode: i,
            dev: "8:1".into(),
            ..Default::default()
        }),
        "connect" => Detail::Network(proto::Network {
            op: "connect".into(),
            fd: 3,
            address: format!("10.0.{}.{}:443", i / 256 % 256, i % 256),
            ..Default::default()
        }),
        "exit" => Detail::Exit(proto::Exit {
            exit_code: Some((i % 3) as u32),
            ..Default::default()
        }),
        _ => Detail::File(proto::File {
            op: "open".into(),
            path: format!("/etc/file-{i}"),
            flags: Some(0o100),
            ..Default::default()
        }),
    };
    proto::Event {
        kind: kind.into(),
        time_unix_ns: 1_800_000_000_000_000_000 + i as i64 * 1000,
        time: String::new(),
        node: "node-a".into(),
        process: Some(proto::Process {
            pid: 1000 + i as u32,
            tgid: 1000 + i as u32,
            binary: "/usr/bin/bash".into(),
            args: vec!["bash".into(), "-c".into(), format!("echo {i}")],
            ..Default::default()
        }),
        detail: Some(detail),
        ..Default::default()
    }
}

fn events(n: u64) -> Vec<proto::Event> {
    (0..n).map(event).collect()
}

/// A header as `header()` makes it, with fixed times so that tests can compare it.
fn test_header() -> CaptureHeader {
    let mut header = header("node-a");
    header.boot_unix_ns = 1_799_000_000_000_000_000;
    header.created_unix_ns = 1_800_000_000_000_000_000;
    header
        .metadata
        .insert("trigger_rule".into(), "shell-in-container".into());
    header
}

/// Writes and finishes a capture of `events` at `path`, `per_frame` events a frame.
fn write(path: &Path, events: &[proto::Event], per_frame: u32) {
    let limits = FrameLimits {
        max_records: per_frame,
        ..FrameLimits::default()
    };
    let mut writer = CaptureWriter::create_with(path, &test_header(), limits).expect("create");
    for event in events {
        writer.write(event).expect("write");
    }
    assert_eq!(writer.finish().expect("finish"), events.len() as u64);
}

/// What a reader gets from a file.
#[derive(Debug, Default)]
struct Read {
    events: Vec<proto::Event>,
    damage: Vec<Damage>,
    finished: bool,
    header: Option<CaptureHeader>,
}

fn read(path: &Path) -> Result<Read, CaptureError> {
    let reader = CaptureReader::open(path)?;
    let mut read = Read {
        header: reader.header().cloned(),
        ..Read::default()
    };
    let mut items = reader.events();
    for item in &mut items {
        match item {
            Ok(event) => read.events.push(event),
            Err(damage) => read.damage.push(damage),
        }
    }
    read.finished = items.reader().finished();
    Ok(read)
}

/// The frames of an intact file, end frame included.
fn frames(path: &Path) -> Vec<Frame> {
    let frames: Vec<Frame> = CaptureReader::open(path)
        .expect("open")
        .map(|f| f.expect("an intact file"))
        .collect();
    assert_eq!(frames.last().map(|f| f.kind), Some(FrameKind::End));
    frames
}
