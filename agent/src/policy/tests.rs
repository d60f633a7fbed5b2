//! Unit tests of the language: each operator and the workload fields; `checks` has the check
//! errors, the modes, the finding's JSON, the default pack and reload.

use std::{path::Path, sync::Arc};

use super::{cases, load, stage::PolicyStage};
use crate::event::{Detail, Event};

/// Compiles one policy text (named `t.yaml`).
fn compile(text: &str) -> Result<super::PolicySet, super::CheckErrors> {
    load::compile(&vec![("t.yaml".to_owned(), text.to_owned())])
}

/// Runs the case text `cases` against the policy `policy` (written to a temp dir).
fn run(policy: &str, cases: &str) -> cases::Report {
    let dir = std::env::temp_dir().join(format!(
        "vigil-policy-test-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("p.yaml"), policy).expect("write policy");
    let text = format!("policies: [p.yaml]\n{cases}");
    let report = cases::run_text(&text, "cases.yaml", &dir).expect("cases run");
    let _ = std::fs::remove_dir_all(&dir);
    report
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Asserts that the rule with condition `cond` (YAML flow mapping entries) fires on exactly
/// the events marked true.
fn check_operator(kind: &str, cond: &str, events: &[(&str, bool)]) {
    let policy = format!("rules:\n  - name: r\n    match: {{kind: {kind}, {cond}}}\n");
    let mut cases = String::from("cases:\n");
    for (i, (event, fires)) in events.iter().enumerate() {
        let expect = if *fires { "[r]" } else { "[]" };
        cases.push_str(&format!(
            "  - name: c{i}\n    event: {{kind: {kind}, {event}}}\n    expect: {expect}\n"
        ));
    }
    let report = run(&policy, &cases);
    assert!(report.failures.is_empty(), "{cond}: {:#?}", report.failures);
    assert_eq!(report.passed, events.len());
}

#[test]
fn equals_and_in() {
    check_operator(
        "exec",
        "process.binary: /bin/sh",
        &[
            ("process: {binary: /bin/sh}", true),
            ("process: {binary: /bin/bash}", false),
        ],
    );
    check_operator(
        "exec",
        "process.binary: [/bin/sh, /bin/bash]",
        &[
            ("process: {binary: /bin/bash}", true),
            ("process: {binary: /bin/zsh}", false),
        ],
    );
    check_operator(
        "exec",
        "process.uid: {in: [0, 33]}",
        &[
            ("process: {uid: 33}", true),
            ("process: {uid: 1000}", false),
        ],
    );
}

#[test]
fn prefix_suffix_contains() {
    check_operator(
        "exec",
        "process.cwd: {prefix: /home/}",
        &[
            ("process: {cwd: /home/ana}", true),
            ("process: {cwd: /root}", false),
        ],
    );
    check_operator(
        "exec",
        "process.binary: {suffix: [/nc, /ncat]}",
        &[
            ("process: {binary: /usr/bin/ncat}", true),
            ("process: {binary: /usr/bin/sync}", false),
        ],
    );
    check_operator(
        "syscall",
        "syscall.args.flags: {contains: CLONE_NEWUSER}",
        &[
            (
                "syscall: {name: unshare, args: {flags: CLONE_NEWNS|CLONE_NEWUSER}}",
                true,
            ),
            (
                "syscall: {name: unshare, args: {flags: CLONE_NEWNS}}",
                false,
            ),
        ],
    );
}

#[test]
fn glob_keeps_star_within_a_component() {
    check_operator(
        "exec",
        "process.binary: {glob: '/usr/*/python*'}",
        &[
            ("process: {binary: /usr/bin/python3.12}", true),
            ("process: {binary: /usr/local/bin/python3}", false),
        ],
    );
    check_operator(
        "exec",
        "process.binary: {glob: '/usr/**/python*'}",
        &[("process: {binary: /usr/local/bin/python3}", true)],
    );
}

#[test]
fn regex_searches_unanchored() {
    check_operator(
        "exec",
        "process.args: {regex: '^-(e|-exec)$'}",
        &[
            ("process: {args: [nc, -e, /bin/sh]}", true),
            ("process: {args: [nc, -v]}", false),
        ],
    );
    check_operator(
        "exec",
        "process.binary: {regex: 'minerd|xmrig'}",
        &[("process: {binary: /opt/xmrig-6/xmrig}", true)],
    );
}

#[test]
fn cidr_and_ip_equality() {
    check_operator(
        "connect",
        "network.dst_ip: {cidr: [10.0.0.0/8, 'fd00::/8']}",
        &[
            ("network: {dst_ip: 10.1.2.3, dst_port: 80}", true),
            ("network: {dst_ip: '::ffff:10.1.2.3', dst_port: 80}", true),
            ("network: {dst_ip: 'fd12::1', dst_port: 80}", true),
            ("network: {dst_ip: 192.168.1.1, dst_port: 80}", false),
            ("network: {path: /run/x.sock}", false),
        ],
    );
    check_operator(
        "connect",
        "network.dst_ip: 169.254.169.254",
        &[
            ("network: {dst_ip: 169.254.169.254, dst_port: 80}", true),
            ("network: {dst_ip: 169.254.169.253, dst_port: 80}", false),
        ],
    );
}

#[test]
fn numeric_comparisons() {
    check_operator(
        "connect",
        "network.dst_port: {gte: 1024, lt: 2048}",
        &[
            ("network: {dst_ip: 1.2.3.4, dst_port: 1024}", true),
            ("network: {dst_ip: 1.2.3.4, dst_port: 2047}", true),
            ("network: {dst_ip: 1.2.3.4, dst_port: 2048}", false),
            ("network: {dst_ip: 1.2.3.4, dst_port: 80}", false),
        ],
    );
    check_operator(
        "exec",
        "process.uid: {gt: 999, lte: 60000}",
        &[
            ("process: {uid: 1000}", true),
            ("process: {uid: 999}", false),
        ],
    );
}

#[test]
fn not_exists_any_all() {
    // Operand-level not: per value; absent fields satisfy nothing.
    check_operator(
        "exec",
        "container.image: {not: {prefix: 'registry.example/'}}",
        &[
            ("container: {id: a, image: 'docker.io/x'}", true),
            ("container: {id: a, image: 'registry.example/x'}", false),
            ("process: {binary: /x}", false),
        ],
    );
    // Condition-level not: true when absent.
    check_operator(
        "exec",
        "not: {container.image: {prefix: 'registry.example/'}}",
        &[
            ("process: {binary: /x}", true),
            ("container: {id: a, image: 'registry.example/x'}", false),
        ],
    );
    check_operator(
        "exec",
        "container.id: {exists: false}",
        &[
            ("process: {binary: /x}", true),
            ("container: {id: a}", false),
        ],
    );
    check_operator(
        "exec",
        "any: [{process.uid: 0}, {process.euid: 0}]",
        &[
            ("process: {uid: 1, euid: 0}", true),
            ("process: {uid: 1, euid: 1}", false),
        ],
    );
    check_operator(
        "exec",
        "all: [{process.uid: 0}, {process.cwd: /}]",
        &[
            ("process: {uid: 0, cwd: /}", true),
            ("process: {uid: 0, cwd: /tmp}", false),
        ],
    );
    // Several operators in one mapping hold for the same value.
    check_operator(
        "exec",
        "process.args: {prefix: '--', suffix: '=1'}",
        &[
            ("process: {args: [x, '--debug=1']}", true),
            ("process: {args: [x, '--debug', 'a=1']}", false),
        ],
    );
}

#[test]
fn workload_and_ancestor_fields() {
    check_operator(
        "exec",
        "pod.labels.app: web",
        &[
            ("pod: {namespace: shop, labels: {app: web}}", true),
            ("pod: {namespace: shop, labels: {app: db}}", false),
        ],
    );
    check_operator(
        "exec",
        "ancestors.binary: {suffix: /sshd}",
        &[
            ("parent: {binary: /usr/sbin/sshd}", true),
            (
                "parent: {binary: /bin/bash}, ancestors: [{binary: /usr/sbin/sshd}]",
                true,
            ),
            ("parent: {binary: /bin/bash}", false),
        ],
    );
    check_operator(
        "file",
        "file.flags: [O_WRONLY, O_RDWR]",
        &[
            ("file: {path: /etc/x, flags: [O_RDWR, O_CREAT]}", true),
            ("file: {path: /etc/x, flags: [O_RDONLY]}", false),
        ],
    );
    check_operator(
        "dns",
        "dns.name: {suffix: .example.com}",
        &[
            ("dns: {name: a.example.com}", true),
            ("dns: {name: example.org}", false),
        ],
    );
}

#[test]
fn every_matching_rule_produces_its_finding_and_scope_limits() {
    let policy = "rules:
  - {name: a, match: {kind: exec, process.binary: /bin/sh}}
  - {name: b, match: {kind: exec}, scope: {namespaces: ['prod-*']}}
  - {name: c, match: {kind: exec}, exceptions: [{process.binary: /bin/sh}]}
  - {name: d, match: {kind: exec}, enabled: false}
  - {name: e, match: {kind: exec}, scope: {nodes: [node-9]}}
";
    let report = run(policy, "cases:
  - {name: all, event: {kind: exec, process: {binary: /bin/sh}, pod: {namespace: prod-eu}}, expect: [a, b]}
  - {name: other, event: {kind: exec, process: {binary: /bin/ls}, pod: {namespace: dev}}, expect: [c]}
  - {name: node, node: node-9, event: {kind: exec, process: {binary: /bin/ls}}, expect: [c, e]}
");
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.passed, 3);
}

mod checks;
