//! The capture-file reader on arbitrary bytes: it must open or refuse, read every frame
//! and damaged range to the end, report ranges in order and inside the file, and never
//! panic, loop or allocate past the format's limits. The reader takes a path, so each input
//! is written to a file in memory (/dev/shm) first.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use vigil::forensics::capture::CaptureReader;

fn scratch() -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("vigil-fuzz-{}.vcap", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(&path, data).expect("the scratch file");
    let Ok(reader) = CaptureReader::open(&path) else {
        return;
    };
    let len = data.len() as u64;
    let mut last_end = 0;
    // An endless loop shows as libFuzzer's timeout, a bomb as its memory limit.
    for item in reader.events() {
        if let Err(damage) = item {
            assert!(damage.start <= damage.end && damage.end <= len, "{damage}");
            assert!(damage.start >= last_end, "{damage} overlaps the one before");
            last_end = damage.end;
        }
    }
    let summary = CaptureReader::open(&path).expect("opened once").summary();
    assert!(summary.file_len == len);
});
