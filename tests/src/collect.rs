//! `vigil collect` as the collector of a test's agent, and checks of what it wrote.

use std::{collections::BTreeSet, ffi::OsStr, path::Path, process::Command, time::Duration};

use crate::daemon::{Daemon, json_lines};

/// How long `vigil collect` may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `vigil collect` on 127.0.0.1:`port` with the arguments `extra` (TLS), writing to
/// `out` and logging to `log` (appended across restarts); returns once it listens.
pub fn start(vigil: &Path, port: u16, out: &Path, log: &Path, extra: &[&OsStr]) -> Daemon {
    // Counted before the start: a collector that is quick logs its line before a count
    // taken after the spawn, and the wait would then look for one line too many.
    let starts = std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("Collecting.")
        .count()
        + 1;
    let mut collector = Daemon::start(
        Command::new(vigil)
            .arg("collect")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--out")
            .arg(out)
            .args(extra),
        log,
    );
    collector.wait_for_log("Collecting.", starts, START_TIMEOUT);
    collector
}

/// Checks that the records in `out` are one stream, numbered 1, 2, 3... in file order with
/// no gap and no repeat, with no loss record; returns how many there are.
#[track_caller]
pub fn assert_one_stream_in_order(out: &Path) -> u64 {
    let records = json_lines(out);
    let streams: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r["stream"].as_str())
        .collect();
    assert_eq!(streams.len(), 1, "streams: {streams:?}");
    let seqs: Vec<u64> = records.iter().filter_map(|r| r["seq"].as_u64()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "sequence numbers in order, once each");
    assert!(
        records.iter().all(|r| r.get("loss").is_none()),
        "no loss record"
    );
    seqs.len() as u64
}

/// What the collector's runs said when they stopped: `(records written, duplicates skipped)`.
pub fn runs(log: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (written, rest) = l
                .strip_prefix("vigil collect: ")?
                .split_once(" records written, ")?;
            let skipped = rest.strip_suffix(" duplicates skipped")?;
            Some((written.parse().ok()?, skipped.parse().ok()?))
        })
        .collect()
}
