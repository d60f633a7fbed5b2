//! `vigil replay` and `vigil inspect` on intact and damaged capture files, as the binary runs
//! them: what they print, the damage they name, their exit status; and every single-byte
//! flip and every truncation of a small file through both, with no panic and no damage
//! that goes unreported.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    Outcome,
    inspect::{self, InspectArgs},
    replay::{ReplayArgs, replay_files},
};
use crate::{
    api::{convert, proto},
    clock::BootClock,
    forensics::{
        capture::{CaptureReader, CaptureWriter, Frame, FrameLimits, format},
        replay::replay,
        restore::corpus,
    },
    policy::{PolicySet, load},
};

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-command-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

fn default_pack() -> Arc<PolicySet> {
    Arc::new(load::compile(&load::default_sources()).expect("the default pack compiles"))
}

/// Recorded messages that set off the default pack: the behaviour cases' events and the
/// decoded kernel records, as the API sends them.
fn messages() -> Vec<proto::Event> {
    let clock = BootClock::with_offset(1_700_000_000_000_000_000);
    let mut events = corpus::cases();
    events.extend(
        corpus::decoded()
            .into_iter()
            .map(|e| (corpus::NODE.to_owned(), e)),
    );
    events
        .iter()
        .map(|(node, e)| convert::event(e, node, &clock))
        .collect()
}

/// A finished capture of `messages`, `per_frame` a frame; its frames, end frame included.
fn capture(path: &Path, messages: &[proto::Event], per_frame: u32) -> Vec<Frame> {
    let limits = FrameLimits {
        max_records: per_frame,
        ..FrameLimits::default()
    };
    let mut writer =
        CaptureWriter::create_with(path, &crate::forensics::capture::header("node-1"), limits)
            .expect("create");
    for message in messages {
        writer.write(message).expect("write");
    }
    writer.finish().expect("finish");
    CaptureReader::open(path)
        .expect("open")
        .map(|f| f.expect("intact"))
        .collect()
}

/// What one run printed.
struct Ran {
    outcome: Outcome,
    out: String,
    err: String,
}

fn replay_run(set: &Arc<PolicySet>, files: &[&Path], json: bool) -> Ran {
    let args = ReplayArgs {
        files: files.iter().map(|f| f.to_path_buf()).collect(),
        policy: None,
        with_default: false,
        node: None,
        json,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = replay_files(set.clone(), &args, &mut out, &mut err).expect("replay runs");
    Ran {
        outcome,
        out: String::from_utf8(out).expect("UTF-8"),
        err: String::from_utf8(err).expect("UTF-8"),
    }
}

/// `vigil inspect FILE` (`tree`: `--tree`); `Err`: the file could not be opened.
fn inspect_run(file: &Path, tree: bool) -> Result<Ran, String> {
    let args = InspectArgs {
        file: file.to_owned(),
        tree,
        pid: None,
        container: None,
        json: false,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = inspect::run(&args, &mut out, &mut err).map_err(|e| format!("{e:#}"))?;
    Ok(Ran {
        outcome,
        out: String::from_utf8(out).expect("UTF-8"),
        err: String::from_utf8(err).expect("UTF-8"),
    })
}

/// The rule names of the findings `replay` gives for `messages`.
fn expected_rules(set: &Arc<PolicySet>, messages: Vec<proto::Event>) -> Vec<String> {
    replay(messages, set.clone(), None)
        .findings
        .iter()
        .map(|r| match &r.event.detail {
            crate::event::Detail::Finding(f) => f.rule.name.clone(),
            other => panic!("a finding, not {}", other.kind()),
        })
        .collect()
}

/// The rule of each `--json` line.
fn printed_rules(out: &str) -> Vec<String> {
    out.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            value["detail"]["Finding"]["rule"]
                .as_str()
                .expect("a finding's rule")
                .to_owned()
        })
        .collect()
}

#[test]
fn an_intact_capture_replays_to_the_engines_findings() {
    let dir = temp_dir("intact");
    let set = default_pack();
    let all = messages();
    let (first, second) = all.split_at(all.len() / 2);
    let (a, b) = (dir.join("a.vcap"), dir.join("b.vcap"));
    capture(&a, first, 7);
    capture(&b, second, 7);
    let ran = replay_run(&set, &[&a, &b], true);
    assert_eq!(ran.outcome.exit_code(), 0, "{}", ran.err);
    let expected = expected_rules(&set, all.clone());
    assert!(!expected.is_empty(), "the corpus sets off the default pack");
    assert_eq!(printed_rules(&ran.out), expected);
    assert_eq!(ran.outcome.findings, expected.len() as u64);
    assert!(
        ran.err
            .contains(&format!("{}: {} records", a.display(), first.len())),
        "{}",
        ran.err
    );
    // The readable form: one line a finding, naming its rule.
    let readable = replay_run(&set, &[&a, &b], false);
    assert_eq!(readable.out.lines().count(), expected.len());
    assert!(
        readable
            .out
            .lines()
            .zip(&expected)
            .all(|(line, rule)| line.contains(" finding ")
                && line.contains(&format!("rule={rule} "))),
        "{}",
        readable.out
    );
}

#[test]
fn damaged_files_name_the_damage_and_replay_what_is_intact() {
    let dir = temp_dir("damaged");
    let set = default_pack();
    let all = messages();
    let path = dir.join("intact.vcap");
    let frames = capture(&path, &all, 7);
    assert!(frames.len() > 4, "several frames");
    let bytes = std::fs::read(&path).expect("read");
    let bad = dir.join("bad.vcap");
    let intact_of = |keep: &dyn Fn(&Frame) -> bool| -> Vec<proto::Event> {
        frames
            .iter()
            .filter(|f| keep(f))
            .flat_map(|f| f.events.clone())
            .collect()
    };

    // A flipped byte in the body of the second frame: that frame alone is lost.
    let victim = &frames[1];
    let mut flipped = bytes.clone();
    flipped[(victim.offset + victim.len - 3) as usize] ^= 0x20;
    std::fs::write(&bad, &flipped).expect("write");
    let ran = replay_run(&set, &[&bad], true);
    assert_eq!(ran.outcome.exit_code(), 3);
    let range = format!(
        "{}: damaged: bytes {}..{}: frame body fails its CRC ({} records lost)",
        bad.display(),
        victim.offset,
        victim.offset + victim.len,
        victim.events.len()
    );
    assert!(ran.err.contains(&range), "{}", ran.err);
    let expected = expected_rules(&set, intact_of(&|f| f.offset != victim.offset));
    assert_eq!(printed_rules(&ran.out), expected);
    let summary = inspect_run(&bad, false).expect("opens");
    assert_eq!(summary.outcome.exit_code(), 3);
    assert!(summary.out.contains("damage: bytes"), "{}", summary.out);
    let tree = inspect_run(&bad, true).expect("opens");
    assert_eq!(tree.outcome.exit_code(), 3);
    assert!(
        tree.err.contains(&range.replace("vigil replay", "")),
        "{}",
        tree.err
    );

    // Cut inside the third frame: the frames before it are replayed, the cut is named.
    let cut_frame = &frames[2];
    let cut = cut_frame.offset + cut_frame.len / 2;
    std::fs::write(&bad, &bytes[..cut as usize]).expect("write");
    let ran = replay_run(&set, &[&bad], true);
    assert_eq!(ran.outcome.exit_code(), 3);
    assert!(
        ran.err.contains(&format!(
            "damaged: bytes {}..{cut}: frame cut short by the end of the file",
            cut_frame.offset
        )),
        "{}",
        ran.err
    );
    assert!(ran.err.contains("(unfinished file)"), "{}", ran.err);
    let expected = expected_rules(&set, intact_of(&|f| f.offset < cut_frame.offset));
    assert_eq!(printed_rules(&ran.out), expected);

    // Not a capture, and a future format version: the file is named, the rest replayed.
    let good = dir.join("good.vcap");
    capture(&good, &all[..10], 7);
    let mut future = bytes.clone();
    future[8..10].copy_from_slice(&(format::VERSION + 1).to_le_bytes());
    for (contents, says) in [
        (
            b"{\"kind\":\"exec\"}\n".to_vec(),
            "is not a Vigil capture file".to_owned(),
        ),
        (
            future,
            format!(
                "is capture format version {}; this Vigil reads versions 1 to {}",
                format::VERSION + 1,
                format::VERSION
            ),
        ),
    ] {
        std::fs::write(&bad, &contents).expect("write");
        let ran = replay_run(&set, &[&bad, &good], true);
        assert_eq!(ran.outcome.exit_code(), 1, "{}", ran.err);
        assert_eq!(ran.outcome.unreadable, 1);
        let named = format!("vigil replay: {} {says}", bad.display());
        assert!(ran.err.contains(&named), "{named} in {}", ran.err);
        assert_eq!(
            printed_rules(&ran.out),
            expected_rules(&set, all[..10].to_vec())
        );
        let error = inspect_run(&bad, false).err().expect("not readable");
        assert!(error.contains(&says), "{error}");
        assert!(error.contains(&bad.display().to_string()), "{error}");
    }
}

/// Every single-byte flip (three masks) and every truncation of a small capture, through
/// `vigil replay` and `vigil inspect`: no panic, and never a silent success: any change
/// (outside the preamble's reserved bytes) is either refused with the file named, or named
/// as damage (exit status 3).
#[test]
fn every_flip_and_every_cut_of_a_small_file_is_refused_or_named() {
    let dir = temp_dir("exhaustive");
    let set = default_pack();
    let all = messages();
    let small: Vec<proto::Event> = all.into_iter().take(12).collect();
    let path = dir.join("small.vcap");
    capture(&path, &small, 4);
    let bytes = std::fs::read(&path).expect("read");
    let bad = dir.join("mutated.vcap");
    let intact_findings = replay_run(&set, &[&path], true).outcome.findings;
    let mut outcomes = [0usize; 2];
    let mut check = |mutated: &[u8], what: &str| {
        std::fs::write(&bad, mutated).expect("write");
        let ran = replay_run(&set, &[&bad], true);
        let code = ran.outcome.exit_code();
        assert_ne!(code, 0, "{what}: a damaged file replayed as intact");
        assert!(
            ran.outcome.findings <= intact_findings,
            "{what}: invented findings"
        );
        assert!(
            ran.err.contains(&bad.display().to_string()),
            "{what}: {}",
            ran.err
        );
        match inspect_run(&bad, false) {
            Ok(summary) => {
                assert_eq!(code, 3, "{what}");
                assert_eq!(summary.outcome.exit_code(), 3, "{what}: {}", summary.out);
                let tree = inspect_run(&bad, true).expect("it opened once");
                assert_eq!(tree.outcome.exit_code(), 3, "{what}");
                outcomes[1] += 1;
            }
            Err(error) => {
                assert_eq!(code, 1, "{what}");
                assert!(
                    error.contains(&bad.display().to_string()),
                    "{what}: {error}"
                );
                outcomes[0] += 1;
            }
        }
    };
    // The preamble's reserved bytes are ignored by design (docs/capture-format.md): a
    // version 1 writer may set them. They are the only bytes a flip can go unnoticed in.
    let reserved = 10..12;
    for at in reserved.clone() {
        let mut mutated = bytes.clone();
        mutated[at] ^= 0xff;
        std::fs::write(&bad, &mutated).expect("write");
        assert_eq!(replay_run(&set, &[&bad], true).outcome.exit_code(), 0);
    }
    for at in (0..bytes.len()).filter(|at| !reserved.contains(at)) {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut mutated = bytes.clone();
            mutated[at] ^= mask;
            check(&mutated, &format!("byte {at} ^ {mask:#x}"));
        }
    }
    for cut in 0..bytes.len() {
        check(&bytes[..cut], &format!("cut at {cut}"));
    }
    // Both paths were taken: refusals (preamble) and recoveries (the rest).
    assert!(outcomes[0] > 0 && outcomes[1] > outcomes[0], "{outcomes:?}");
}
