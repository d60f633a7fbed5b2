use std::{
    io::{Read, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use super::*;

/// A directory of one test, removed when dropped.
struct Dir(crate::secure::scratch::Scratch);

impl Dir {
    fn new(label: &str) -> Self {
        Self(crate::secure::scratch::Scratch::new(&format!(
            "file-{label}"
        )))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn target(&self) -> PathBuf {
        self.path().join("events.jsonl")
    }

    /// File names in the directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        names
    }
}

fn rotation(max_bytes: u64, backups: usize) -> Rotation {
    Rotation {
        max_bytes,
        max_age: None,
        backups,
        compress: false,
    }
}

/// A JSON line of exactly `len` bytes (newline included) carrying `n`.
fn line(n: usize, len: usize) -> String {
    let head = format!("{{\"n\":{n},\"pad\":\"");
    let pad = len - head.len() - "\"}\n".len();
    format!("{head}{}\"}}\n", "x".repeat(pad))
}

/// The `n` of every line of `text`, checking that each is a whole JSON line.
fn numbers(text: &[u8]) -> Vec<u64> {
    if !text.is_empty() {
        assert_eq!(text.last(), Some(&b'\n'), "a file ends with a whole line");
    }
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let value: serde_json::Value = serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(l)));
            value["n"].as_u64().expect("n")
        })
        .collect()
}

/// Every file's content, oldest first: `<target>.N` ... `<target>.1`, then `<target>`.
fn contents_oldest_first(target: &Path, backups: usize, gz: bool) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for index in (1..=backups).rev() {
        let path = names::numbered(target, index);
        let path = if gz {
            names::with_suffix(&path, ".gz")
        } else {
            path
        };
        if let Ok(bytes) = std::fs::read(&path) {
            files.push(if gz { gunzip(&bytes) } else { bytes });
        }
    }
    files.push(std::fs::read(target).expect("the current file"));
    files
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// Writes lines `range` of `len` bytes in batches of `batch` lines.
fn write_batches(file: &mut RotatingFile, range: std::ops::Range<usize>, len: usize, batch: usize) {
    let lines: Vec<String> = range.map(|n| line(n, len)).collect();
    for chunk in lines.chunks(batch) {
        file.write_all(chunk.concat().as_bytes()).expect("write");
        file.flush().expect("flush");
    }
}

#[test]
fn rotates_at_the_size_limit_between_whole_lines_losing_nothing() {
    let dir = Dir::new("size");
    let target = dir.target();
    let mut file = RotatingFile::open(&target, rotation(1000, 100)).expect("open");
    // 100-byte lines in batches of 7: ten lines fill a file, so batches are split.
    write_batches(&mut file, 0..205, 100, 7);
    let mut expected = vec!["events.jsonl".to_owned()];
    expected.extend((1..=20).map(|i| format!("events.jsonl.{i}")));
    expected.sort();
    assert_eq!(dir.names(), expected, "20 full files and the current one");
    let files = contents_oldest_first(&target, 100, false);
    for full in &files[..20] {
        assert_eq!(full.len(), 1000);
    }
    let all: Vec<u64> = files.iter().flat_map(|f| numbers(f)).collect();
    assert_eq!(all, (0..205).collect::<Vec<u64>>(), "none lost or repeated");
}

#[test]
fn lines_of_mixed_sizes_stay_whole_and_a_long_one_gets_its_own_file() {
    // One line of 700 bytes, longer than max_bytes; the others 30..=119 bytes.
    let lines: Vec<String> = (0..120)
        .map(|n| line(n, if n == 50 { 700 } else { 30 + (n * 37) % 90 }))
        .collect();
    let dir = Dir::new("mixed");
    let target = dir.target();
    let mut file = RotatingFile::open(&target, rotation(300, 1000)).expect("open");
    // Batches of whole lines, of 1 to 9 lines, as the exporter writes them.
    let mut rest = &lines[..];
    while !rest.is_empty() {
        let (batch, tail) = rest.split_at((rest.len() % 9 + 1).min(rest.len()));
        file.write_all(batch.concat().as_bytes()).expect("write");
        rest = tail;
    }
    let files = contents_oldest_first(&target, 1000, false);
    assert!(files.len() > 10, "{} files", files.len());
    let all: Vec<u64> = files.iter().flat_map(|f| numbers(f)).collect();
    assert_eq!(all, (0..120).collect::<Vec<u64>>());
    for f in &files {
        assert!(f.len() <= 300 || numbers(f) == [50], "{} bytes", f.len());
    }

    // Cut anywhere, as a buffered writer would: still whole lines, none lost.
    let dir = Dir::new("cut");
    let target = dir.target();
    let mut file = RotatingFile::open(&target, rotation(300, 1000)).expect("open");
    for piece in lines.concat().as_bytes().chunks(173) {
        file.write_all(piece).expect("write");
    }
    let files = contents_oldest_first(&target, 1000, false);
    let all: Vec<u64> = files.iter().flat_map(|f| numbers(f)).collect();
    assert_eq!(all, (0..120).collect::<Vec<u64>>());
}

#[test]
fn keeps_only_the_newest_backups() {
    let dir = Dir::new("prune");
    let target = dir.target();
    // A backup beyond the limit, left by a run with more backups, goes too.
    std::fs::write(names::numbered(&target, 7), "{\"n\":999}\n").expect("old backup");
    let mut file = RotatingFile::open(&target, rotation(1000, 2)).expect("open");
    write_batches(&mut file, 0..100, 100, 10);
    assert_eq!(
        dir.names(),
        ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    );
    let all: Vec<u64> = contents_oldest_first(&target, 2, false)
        .iter()
        .flat_map(|f| numbers(f))
        .collect();
    assert_eq!(all, (70..100).collect::<Vec<u64>>(), "the newest 30 lines");

    let dir = Dir::new("none-kept");
    let target = dir.target();
    let mut file = RotatingFile::open(&target, rotation(1000, 0)).expect("open");
    write_batches(&mut file, 0..25, 100, 5);
    assert_eq!(dir.names(), ["events.jsonl"]);
    assert_eq!(
        numbers(&std::fs::read(&target).expect("read")),
        (20..25).collect::<Vec<u64>>()
    );
}

#[test]
fn rotates_a_file_older_than_max_age() {
    let dir = Dir::new("age");
    let target = dir.target();
    let start = SystemTime::now();
    let seconds = Arc::new(AtomicU64::new(0));
    let clock = {
        let seconds = seconds.clone();
        Box::new(move || start + Duration::from_secs(seconds.load(Ordering::Relaxed)))
    };
    let config = Rotation {
        max_bytes: 0,
        max_age: Some(Duration::from_secs(60)),
        backups: 5,
        compress: false,
    };
    let mut file = RotatingFile::with_clock(target.clone(), config, clock).expect("open");
    write_batches(&mut file, 0..3, 50, 3);
    seconds.store(59, Ordering::Relaxed);
    write_batches(&mut file, 3..6, 50, 3);
    assert_eq!(dir.names(), ["events.jsonl"], "not yet a minute old");
    seconds.store(60, Ordering::Relaxed);
    write_batches(&mut file, 6..9, 50, 3);
    assert_eq!(dir.names(), ["events.jsonl", "events.jsonl.1"]);
    // The new file's age counts from its rotation.
    seconds.store(119, Ordering::Relaxed);
    write_batches(&mut file, 9..10, 50, 1);
    assert_eq!(dir.names().len(), 2);
    let files = contents_oldest_first(&target, 5, false);
    assert_eq!(numbers(&files[0]), [0, 1, 2, 3, 4, 5]);
    assert_eq!(numbers(&files[1]), [6, 7, 8, 9]);
}

#[test]
fn gzip_round_trip_with_mode_0600() {
    let dir = Dir::new("gzip");
    let target = dir.target();
    let config = Rotation {
        compress: true,
        ..rotation(1000, 3)
    };
    let mut file = RotatingFile::open(&target, config).expect("open");
    write_batches(&mut file, 0..45, 100, 10);
    file.wait_for_compression();
    assert_eq!(
        dir.names(),
        [
            "events.jsonl",
            "events.jsonl.1.gz",
            "events.jsonl.2.gz",
            "events.jsonl.3.gz"
        ]
    );
    let all: Vec<u64> = contents_oldest_first(&target, 3, true)
        .iter()
        .flat_map(|f| numbers(f))
        .collect();
    assert_eq!(
        all,
        (10..45).collect::<Vec<u64>>(),
        "the newest 3 files and the current"
    );
    for name in dir.names() {
        let mode = std::fs::metadata(dir.path().join(&name))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
}

#[test]
fn a_start_finishes_what_a_stopped_compression_left() {
    let dir = Dir::new("recover");
    let target = dir.target();
    let plain = line(1, 60) + &line(2, 60);
    std::fs::write(names::numbered(&target, 1), &plain).expect("plain .1");
    std::fs::write(dir.path().join("events.jsonl.1.gz.tmp"), b"\x1f\x8b cut").expect("partial");
    // Stopped between the rename of the .gz and the removal of the plain file.
    std::fs::write(names::numbered(&target, 2), "{\"n\":0}\n").expect("plain .2");
    let gz = gzip_bytes(b"{\"n\":0}\n");
    std::fs::write(dir.path().join("events.jsonl.2.gz"), gz).expect(".2.gz");
    // The previous run was killed mid-line.
    std::fs::write(&target, "{\"n\":3}\n{\"n\":").expect("cut line");

    let config = Rotation {
        compress: true,
        ..rotation(0, 5)
    };
    let mut file = RotatingFile::open(&target, config).expect("open");
    file.write_all(line(4, 40).as_bytes()).expect("write");
    file.wait_for_compression();
    assert_eq!(
        dir.names(),
        ["events.jsonl", "events.jsonl.1.gz", "events.jsonl.2.gz"]
    );
    let restored = gunzip(&std::fs::read(dir.path().join("events.jsonl.1.gz")).expect("read"));
    assert_eq!(restored, plain.as_bytes());
    let current = std::fs::read_to_string(&target).expect("read");
    assert_eq!(current, format!("{{\"n\":3}}\n{{\"n\":\n{}", line(4, 40)));
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("compress");
    encoder.finish().expect("finish")
}

#[test]
fn an_existing_readable_file_is_made_0600_and_errors_name_the_path() {
    let dir = Dir::new("mode");
    let target = dir.target();
    std::fs::write(&target, "").expect("create");
    std::fs::set_permissions(&target, Permissions::from_mode(0o644)).expect("chmod");
    drop(RotatingFile::open(&target, rotation(0, 1)).expect("open"));
    let mode = std::fs::metadata(&target)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let missing = dir.path().join("no-such-dir").join("events.jsonl");
    let Err(error) = RotatingFile::open(&missing, rotation(0, 1)) else {
        panic!("opened a file in a missing directory");
    };
    let error: io::Error = error.into();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );
}

#[test]
fn a_device_is_written_and_never_rotated() {
    let mut file = RotatingFile::open("/dev/null", rotation(10, 1)).expect("open /dev/null");
    write_batches(&mut file, 0..10, 50, 2);
    let mode = std::fs::metadata("/dev/null")
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o666, 0o666, "left as it was");
}

#[test]
fn a_planted_link_at_the_target_is_refused_and_its_target_untouched() {
    let dir = Dir::new("link");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").expect("victim");
    let target = dir.target();
    std::os::unix::fs::symlink(&victim, &target).expect("plant a link");
    let Err(error) = RotatingFile::open(&target, rotation(0, 1)) else {
        panic!("opened the output through a link");
    };
    let error: io::Error = error.into();
    let text = error.to_string();
    assert!(text.contains(&target.display().to_string()), "{text}");
    assert!(text.contains("is a symbolic link"), "{text}");
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
}
