//! What `vigil contain` and `vigil enforcement list` print: the same lines whether the agent
//! answered or the pinned maps were read.

use std::fmt::Write as _;

use crate::api::{proto, rules::describe};

/// One line for the outcome of a containment command:
/// `rule 7: deny_exec /tmp/x (254:1) node-wide`, `thawed cgroup:/c (released rules 3)`.
pub fn outcome(reply: &proto::ContainReply) -> String {
    let Some(e) = &reply.enforcement else {
        return "done".into();
    };
    match (e.action.as_str(), e.rule_id, &e.record) {
        ("thaw", _, _) => {
            let ids: Vec<String> = reply.released.iter().map(u32::to_string).collect();
            if ids.is_empty() {
                format!("thawed {}", e.target)
            } else {
                format!("thawed {} (released rules {})", e.target, ids.join(", "))
            }
        }
        ("release", Some(id), Some(record)) => {
            format!("released rule {id} ({} {})", record.kind, describe(record))
        }
        (action, Some(id), Some(record)) => format!("rule {id}: {action} {}", describe(record)),
        (action, Some(id), None) => format!("rule {id}: {action} {}", e.target),
        (action, None, _) => format!("{action} {}", e.target),
    }
}

/// The text of `vigil enforcement list`.
pub fn listing(reply: &proto::ListActionsReply) -> String {
    let mut out = String::new();
    let pinned = if reply.pinned_programs.is_empty() {
        "none".to_owned()
    } else {
        reply.pinned_programs.join(", ")
    };
    let _ = writeln!(out, "pinned programs ({}/links): {pinned}", reply.bpffs_dir);
    if reply.rules.is_empty() {
        let _ = writeln!(out, "no rules");
    }
    for rule in &reply.rules {
        let hits = rule.hits.map(|h| format!(" hits={h}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>4}  {:<12} {}{hits}  (origin {})",
            rule.id,
            rule.kind,
            describe(rule),
            rule.origin
        );
    }
    for program in &reply.programs {
        if program.run_count > 0 {
            let _ = writeln!(
                out,
                "program {}: {} runs, {} ns per run",
                program.name,
                program.run_count,
                program.run_time_ns / program.run_count
            );
        }
    }
    if !reply.counters.is_empty() {
        let mut counters: Vec<(&String, &u64)> = reply.counters.iter().collect();
        counters.sort();
        let text: Vec<String> = counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "kernel counters: {}", text.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_rule_and_its_origin() {
        let rule = proto::EnforcementRule {
            id: 7,
            kind: "isolate".into(),
            origin: "api:uid=0".into(),
            cgroup: "/c".into(),
            hits: Some(3),
            ..Default::default()
        };
        let reply = proto::ContainReply {
            enforcement: Some(proto::Enforcement {
                action: "isolate".into(),
                rule_id: Some(7),
                record: Some(rule.clone()),
                ..Default::default()
            }),
            released: vec![],
        };
        assert_eq!(outcome(&reply), "rule 7: isolate /c");
        let text = listing(&proto::ListActionsReply {
            rules: vec![rule],
            bpffs_dir: "/sys/fs/bpf/vigil".into(),
            ..Default::default()
        });
        assert_eq!(
            text,
            "pinned programs (/sys/fs/bpf/vigil/links): none\n   7  isolate      /c hits=3  (origin api:uid=0)\n"
        );
    }
}
