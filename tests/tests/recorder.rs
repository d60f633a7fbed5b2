//! The flight recorder with the real sensor: a rule with `action: capture` fires on an exec
//! in a shell's process tree; the dump written to a capture file holds what that tree did
//! before the trigger and after it, and nothing of an unrelated process.

use std::{path::Path, process::Command, time::Duration};

use vigil::{api::proto::event::Detail, config::Config, forensics::capture::CaptureReader};
use vigil_tests::{
    Harness,
    daemon::wait_until,
    spawn::{TempDir, install_executable, run_to_end},
};

const RULE: &str = "recorder-test-trigger";

#[test]
fn a_capture_rule_dumps_the_tree_before_and_after_its_trigger() {
    let dir = TempDir::new("recorder");
    let d = dir.path();
    for name in [
        "vigil-rec-before",
        "vigil-rec-trigger",
        "vigil-rec-after",
        "vigil-rec-other",
    ] {
        install_executable(Path::new("/bin/true"), d, name);
    }
    std::fs::create_dir_all(d.join("policies")).expect("policy dir");
    std::fs::write(
        d.join("policies/capture.yaml"),
        format!(
            "rules:\n  - name: {RULE}\n    severity: high\n    mode: enforce\n    action: capture\n    \
             match:\n      kind: exec\n      process.binary: {{suffix: /vigil-rec-trigger}}\n"
        ),
    )
    .expect("policy");
    let mut config = Config::default();
    config.api.enabled = false;
    config.policy.default_pack = false;
    config.policy.directory = d.join("policies").display().to_string();
    config.recorder.dir = d.join("captures");
    config.recorder.post_trigger_s = 1;
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    // Unrelated, before the trigger: in the ring, not in the dump.
    run_to_end(
        &mut Command::new(d.join("vigil-rec-other")),
        Duration::from_secs(10),
    );
    let script = format!(
        "{d}/vigil-rec-before before; sleep 0.2; {d}/vigil-rec-trigger now; sleep 0.2; {d}/vigil-rec-after after",
        d = d.display()
    );
    let shell = run_to_end(
        Command::new("/bin/sh").args(["-c", &script]),
        Duration::from_secs(10),
    );

    let captures = d.join("captures");
    wait_until(
        Duration::from_secs(15),
        "a dump in the capture directory",
        || std::fs::read_dir(&captures).is_ok_and(|mut entries| entries.next().is_some()),
    );
    // The file is complete once the writer has finished it.
    let path = std::fs::read_dir(&captures)
        .expect("captures")
        .flatten()
        .next()
        .expect("a file")
        .path();
    let mut events = Vec::new();
    wait_until(Duration::from_secs(15), "a finished capture file", || {
        let Ok(reader) = CaptureReader::open(&path) else {
            return false;
        };
        let mut items = reader.events();
        let mut all = Vec::new();
        let mut intact = true;
        for item in &mut items {
            match item {
                Ok(event) => all.push(event),
                Err(_) => intact = false,
            }
        }
        events = all;
        intact && items.reader().finished()
    });
    let _ = agent.stop();
    let header = CaptureReader::open(&path)
        .expect("open")
        .header()
        .cloned()
        .expect("header");
    assert_eq!(
        header.metadata.get("trigger").map(String::as_str),
        Some(format!("rule:{RULE}").as_str())
    );
    let execs: Vec<String> = events
        .iter()
        .filter(|e| matches!(e.detail, Some(Detail::Exec(_))))
        .filter_map(|e| e.process.as_ref().map(|p| p.binary.clone()))
        .collect();
    let has = |name: &str| execs.iter().any(|b| b.ends_with(name));
    assert!(
        has("/vigil-rec-before"),
        "before the trigger, same tree: {execs:?}"
    );
    assert!(has("/vigil-rec-trigger"), "the trigger: {execs:?}");
    assert!(
        has("/vigil-rec-after"),
        "after the trigger, within 1 s: {execs:?}"
    );
    assert!(!has("/vigil-rec-other"), "an unrelated process: {execs:?}");
    // The finding says the capture was done.
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.detail, Some(Detail::Finding(f)) if f.rule == RULE))
    );

    // `vigil inspect --tree` shows the shell with its three children.
    if let Some(vigil) = vigil_tests::binary::vigil_binary() {
        let out = Command::new(vigil)
            .args(["inspect", "--tree", "--pid"])
            .arg(shell.pid.to_string())
            .arg(&path)
            .output()
            .expect("vigil inspect");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(text.starts_with(&format!("{} ", shell.pid)), "{text}");
        for name in ["vigil-rec-before", "vigil-rec-trigger", "vigil-rec-after"] {
            assert!(text.contains(name), "{name} in {text}");
        }
    }
}
