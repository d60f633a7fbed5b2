use std::sync::Arc;

use super::*;
use crate::{
    api::convert, clock::BootClock, event::Detail, forensics::restore::corpus, policy::load,
};

fn default_pack() -> Arc<PolicySet> {
    Arc::new(load::compile(&load::default_sources()).expect("the default pack compiles"))
}

/// Rule, action, status and trigger kind of each finding event.
fn summary(findings: &[Event]) -> Vec<String> {
    findings
        .iter()
        .map(|e| match &e.detail {
            Detail::Finding(f) => format!(
                "{} {} {} {}",
                f.rule.name,
                f.outcome.action,
                f.outcome.status.name(),
                f.trigger.kind()
            ),
            other => panic!("a finding, not {}", other.kind()),
        })
        .collect()
}

#[test]
fn replay_finds_what_live_evaluation_found() {
    let set = default_pack();
    let mut events = corpus::cases();
    events.extend(
        corpus::decoded()
            .into_iter()
            .map(|e| (corpus::NODE.to_owned(), e)),
    );
    // Live: the pipeline's policy stage, one stage per node as the agents had.
    let mut live = Vec::new();
    for (node, event) in &events {
        let mut stage = PolicyStage::new(set.clone(), node.clone());
        let mut batch = vec![event.clone()];
        stage.process(&mut batch, 0);
        live.extend(batch.drain(1..));
    }
    assert!(!live.is_empty(), "the corpus sets off the default pack");
    let clock = BootClock::with_offset(1_700_000_000_000_000_000);
    let messages: Vec<_> = events
        .iter()
        .map(|(node, e)| convert::event(e, node, &clock))
        .collect();
    let report = replay(messages.clone(), set, None);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let replayed: Vec<Event> = report.findings.iter().map(|r| r.event.clone()).collect();
    assert_eq!(summary(&replayed), summary(&live));
    assert_eq!(report.stats.evaluated, events.len() as u64);
    assert_eq!(report.stats.findings, live.len() as u64);
    // Printed at the time they were recorded, on the node they were recorded on.
    for (r, l) in report.findings.iter().zip(&live) {
        let printed = convert::event(&r.event, &r.node, &restore::clock());
        let original = convert::event(l, &r.node, &clock);
        assert_eq!(printed.time_unix_ns, original.time_unix_ns);
        assert_eq!(printed.time, original.time);
    }
}

#[test]
fn bad_messages_are_reported_and_the_rest_replayed() {
    let set = Arc::new(
        load::compile(&vec![(
            "r.yaml".to_owned(),
            "rules:\n  - {name: on-node-2, match: {kind: exec, node: node-2}}\n".to_owned(),
        )])
        .expect("compiles"),
    );
    let exec = corpus::decoded()
        .into_iter()
        .find(|e| e.detail.kind() == "exec")
        .expect("an exec");
    let clock = BootClock::with_offset(0);
    let on = |node: &str| convert::event(&exec, node, &clock);
    let mut broken = on("node-2");
    broken.kind = "exit".into();
    let finding = {
        let mut stage = PolicyStage::new(set.clone(), "node-2".into());
        let mut batch = vec![exec.clone()];
        stage.process(&mut batch, 0);
        convert::event(&batch[1], "node-2", &clock)
    };
    let messages = vec![on("node-1"), broken, on("node-2"), finding];
    let report = replay(messages.clone(), set.clone(), None);
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].node, "node-2");
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].0, 1);
    assert_eq!(report.errors[0].1.field(), "kind");
    assert_eq!(
        report.stats,
        ReplayStats {
            read: 4,
            evaluated: 2,
            skipped: 1,
            errors: 1,
            findings: 1,
        }
    );
    // As if every event had been seen on node-2.
    let report = replay(messages, set, Some("node-2"));
    assert_eq!(report.findings.len(), 2);
}
