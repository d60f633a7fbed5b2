use std::sync::Arc;

use super::*;
use crate::{
    enforce::KernelAction,
    event::Loss,
    policy::{Action, Finding, Mode, Outcome, RuleInfo, Severity},
};

fn finding(rule: &str, action: Action, target: Target, status: Status) -> Event {
    let finding = Finding {
        rule: Arc::new(RuleInfo {
            name: rule.into(),
            description: String::new(),
            severity: Severity::High,
            tags: Vec::new(),
            source: "t.yaml".into(),
        }),
        mode: Mode::Enforce,
        action,
        outcome: Outcome {
            action: action.name(),
            target: Some(target),
            status,
            error: None,
            latency_ns: 0,
        },
        trigger: Detail::Loss(Loss::default()),
    };
    Event::new(1_000, 42, None, None, Detail::Finding(Box::new(finding)))
}

fn kernel(rule: Option<&str>, tgid: u32) -> Report {
    Report::Kernel {
        action: KernelAction {
            action: "exec_killed",
            rule_id: 3,
            time_ns: 1_500,
            pid: tgid,
            tgid,
            cgroup_id: 9,
            comm: "x".into(),
            dev: 1,
            ino: 2,
            destination: None,
        },
        rule: rule.map(str::to_owned),
        binary: Some("/x".into()),
    }
}

fn outcome(event: &Event) -> &Outcome {
    match &event.detail {
        Detail::Finding(f) => &f.outcome,
        other => panic!("not a finding: {other:?}"),
    }
}

#[test]
fn a_kernel_record_completes_its_finding_in_either_order() {
    let mut c = Correlator::new(1_000_000);
    let mut out = vec![finding(
        "r",
        Action::KillOnExec,
        Target::Exec { tgid: 42 },
        Status::Pending,
    )];
    c.hold(&mut out, 0);
    assert!(out.is_empty(), "held");
    c.on_report(kernel(Some("r"), 42), 10, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].detail.kind(), "enforcement");
    assert_eq!(outcome(&out[1]).status, Status::Ok);
    assert_eq!(outcome(&out[1]).latency_ns, 500);

    // The record first.
    let mut out = Vec::new();
    c.on_report(kernel(Some("r"), 43), 10, &mut out);
    assert!(out.is_empty(), "waits for its finding");
    let mut out = vec![finding(
        "r",
        Action::KillOnExec,
        Target::Exec { tgid: 43 },
        Status::Pending,
    )];
    c.hold(&mut out, 20);
    assert_eq!(out.len(), 2);
    assert_eq!(outcome(&out[1]).status, Status::Ok);
    assert_eq!(c.actions(), vec![("exec_killed", "ok", 2)]);
}

#[test]
fn without_a_record_a_kernel_finding_fails_and_an_operator_record_goes_at_once() {
    let mut c = Correlator::new(1_000);
    let mut out = vec![finding(
        "r",
        Action::KillOnExec,
        Target::Exec { tgid: 42 },
        Status::Pending,
    )];
    c.hold(&mut out, 0);
    c.expire(500, &mut out);
    assert!(out.is_empty());
    c.expire(1_000, &mut out);
    assert_eq!(outcome(&out[0]).status, Status::Failed);
    // Let out once, never held again.
    c.hold(&mut out, 2_000);
    assert_eq!(out.len(), 1);

    let mut out = Vec::new();
    c.on_report(kernel(None, 7), 0, &mut out);
    assert_eq!(
        out.len(),
        1,
        "an operator's rule has no finding to wait for"
    );
}

#[test]
fn a_userspace_outcome_completes_its_finding_and_drops_are_counted() {
    let mut c = Correlator::new(1_000_000);
    let target = Target::Process {
        tgid: 42,
        exec_id: "e".into(),
    };
    let mut out = vec![
        finding("k", Action::Kill, target.clone(), Status::Pending),
        finding("k", Action::Kill, target.clone(), Status::Dropped),
    ];
    c.hold(&mut out, 0);
    assert_eq!(out.len(), 1, "the dropped finding goes at once");
    let done = Enforcement {
        action: "kill",
        by: By::Userspace,
        rule: Some("k".into()),
        rule_id: None,
        target: target.to_string(),
        tgid: 42,
        pid: 42,
        comm: String::new(),
        cgroup_id: 0,
        binary: None,
        destination: None,
        outcome: "ok",
        error: None,
        latency_ns: 1234,
        operator: None,
    };
    let mut out = Vec::new();
    c.on_report(Report::Done(Box::new(done)), 5, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(outcome(&out[1]).status, Status::Ok);
    assert_eq!(outcome(&out[1]).latency_ns, 1234);
    assert_eq!(c.actions(), vec![("kill", "dropped", 1), ("kill", "ok", 1)]);
}
