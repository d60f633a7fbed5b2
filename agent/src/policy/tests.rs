//! Unit tests: each operator, each class of check error, the default pack's behaviour cases,
//! reload atomicity and the finding's JSON.

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

/// `(line, column, field suffix, message fragment)` of the first error of `text`.
fn first_error(text: &str) -> super::CheckError {
    let errors = compile(text).expect_err("invalid policy").0;
    errors.into_iter().next().expect("an error")
}

#[test]
fn check_errors_name_file_line_column_and_field() {
    let e = first_error("rules:\n  - name: r\n    match: {kind: exec}\n    colour: red\n");
    assert_eq!((e.file.as_str(), e.line, e.column), ("t.yaml", 4, 5));
    assert_eq!(e.field, "rules[0].colour");
    assert!(e.message.starts_with("unknown field `colour`"), "{e}");

    let e =
        first_error("rules:\n  - name: r\n    match:\n      kind: exec\n      process.bin: /x\n");
    assert_eq!((e.line, e.column), (5, 7));
    assert_eq!(e.field, "rules[0](r).match.process.bin");

    let e = first_error(
        "rules:\n  - name: r\n    match: {kind: exec, process.binary: {regex: 'a(b'}}\n",
    );
    assert!(e.message.starts_with("bad regex `a(b`"), "{e}");
    assert_eq!(e.field, "rules[0](r).match.process.binary.regex");
    assert_eq!(e.line, 3);

    let e = first_error(
        "rules:\n  - name: r\n    match: {kind: connect, network.dst_ip: {cidr: 10.0.0.0/40}}\n",
    );
    assert!(e.message.contains("is not a CIDR"), "{e}");

    let e = first_error(
        "rules:\n  - name: r\n    match: {kind: exec, process.binary: {glob: 'a[b'}}\n",
    );
    assert!(e.message.starts_with("bad glob"), "{e}");

    let e = first_error(
        "rules:\n  - name: r\n    match: {kind: exec, process.uid: {cidr: 10.0.0.0/8}}\n",
    );
    assert!(e.message.contains("does not apply to a number"), "{e}");

    let e = first_error("rules:\n  - name: r\n    match: {kind: exec, process.uid: root}\n");
    assert!(e.message.contains("expected an integer"), "{e}");

    let e = first_error("rules:\n  - name: r\n    match: {kind: exce}\n");
    assert!(e.message.starts_with("unknown kind `exce`"), "{e}");

    let e = first_error("rules:\n  - name: r\n    match: {kind: exec, file.path: /x}\n");
    assert!(
        e.message.contains("never present in events of kind exec"),
        "{e}"
    );

    let e = first_error("rules:\n  - name: r\n    match: {kind: exec}\n    action: explode\n");
    assert!(e.message.starts_with("unknown action `explode`"), "{e}");

    let e = first_error(
        "rules:\n  - {name: r, match: {kind: exec}}\n  - {name: r, match: {kind: exit}}\n",
    );
    assert_eq!(e.line, 3);
    assert!(e.message.contains("already defined at t.yaml:2:5"), "{e}");

    let e = first_error("rules:\n  - name: r\n    match: {kind: exec\n");
    assert_eq!(e.field, "yaml");
}

#[test]
fn actions_the_kernel_cannot_enforce_are_check_errors() {
    let ok = "rules:
  - {name: a, action: kill_on_exec, mode: enforce, match: {kind: exec, process.binary: {prefix: /tmp/}, container.id: {exists: true}}}
  - {name: b, action: kill_on_exec, match: {kind: exec, exec.inode: [12, 13]}}
  - {name: c, action: deny_connect, match: {kind: connect, network.dst_ip: {cidr: 10.0.0.0/8}, network.dst_port: {gte: 1000}}}
  - {name: d, action: freeze, match: {kind: exec, container.id: {exists: true}}}
  - {name: e, action: isolate, match: {kind: connect}, scope: {namespaces: [prod]}}
  - {name: f, action: kill_tree, match: {kind: [exec, file]}}
";
    compile(ok).expect("enforceable");
    for (text, field, fragment) in [
        (
            "{name: r, action: kill_on_exec, match: {kind: [exec, file], process.binary: /x}}",
            "match.kind",
            "needs `kind: exec` alone",
        ),
        (
            "{name: r, action: kill_on_exec, match: {kind: exec, process.binary: {glob: '/tmp/*'}}}",
            "match.process.binary",
            "cannot test",
        ),
        (
            "{name: r, action: kill_on_exec, match: {kind: exec, process.uid: 0}}",
            "match.process.uid",
            "cannot test",
        ),
        (
            "{name: r, action: kill_on_exec, match: {kind: exec, container.id: {exists: true}}}",
            "match",
            "needs a match on",
        ),
        (
            "{name: r, action: kill_on_exec, match: {kind: exec, process.binary: /x}, scope: {images: ['x*']}}",
            "scope.images",
            "knows cgroups",
        ),
        (
            "{name: r, action: deny_connect, match: {kind: connect, any: [{network.dst_port: 1}]}}",
            "match.any",
            "plain list",
        ),
        (
            "{name: r, action: deny_connect, match: {kind: connect, network.dst_port: 1}, exceptions: [{process.uid: 0}]}",
            "exceptions",
            "cannot evaluate exceptions",
        ),
        (
            "{name: r, action: deny_connect, match: {kind: connect, network.dst_ip: {not: 1.1.1.1}}}",
            "match.network.dst_ip",
            "cannot test",
        ),
        (
            "{name: r, action: freeze, match: {kind: exec}}",
            "action",
            "acts on a container",
        ),
        (
            "{name: r, action: kill, match: {process.uid: 0}}",
            "match.kind",
            "needs a process",
        ),
    ] {
        let e = first_error(&format!("rules:\n  - {text}\n"));
        assert_eq!(e.field, format!("rules[0](r).{field}"), "{text}: {e}");
        assert!(e.message.contains(fragment), "{text}: {e}");
    }
}

#[test]
fn monitor_reports_would_and_enforce_asks_the_responder() {
    let set = Arc::new(
        compile(
            "rules:
  - {name: m, action: kill, match: {kind: exec}}
  - {name: n, action: kill, mode: enforce, match: {kind: exec}}
  - {name: o, match: {kind: exec}}
",
        )
        .expect("valid"),
    );
    let mut stage = PolicyStage::new(set, "n1".into());
    let mut out = vec![exec_event()];
    stage.process(&mut out, 0);
    let outcomes: Vec<_> = out[1..]
        .iter()
        .map(|e| match &e.detail {
            Detail::Finding(f) => (
                f.rule.name.as_str(),
                f.outcome.action,
                f.outcome.status.name(),
            ),
            _ => panic!("findings follow the batch"),
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("m", "would_kill", "dry_run"),
            ("n", "kill", "not_implemented"),
            ("o", "none", "none")
        ]
    );
    // Findings are never evaluated again.
    let before = out.len();
    stage.process(&mut out, 1);
    assert_eq!(out.len(), before);
}

fn exec_event() -> Event {
    let mut event = Event::new(
        1,
        77,
        Some(Arc::new(proc_sh())),
        None,
        Detail::Exec(exec_detail()),
    );
    event.container = None;
    event
}

fn proc_sh() -> crate::process::Process {
    use crate::{
        event::{Creds, WalkedPath},
        process::{ExecId, Origin, Process, ProcessKey},
    };
    let key = ProcessKey::new(77, 5);
    Process {
        key,
        exec_id: ExecId::new(key, 6),
        ppid: 1,
        parent: None,
        parent_exec_id: None,
        binary: WalkedPath {
            path: b"/bin/sh".to_vec(),
            truncated: false,
        },
        args: vec![b"sh".to_vec()],
        args_truncated: false,
        cwd: WalkedPath {
            path: b"/".to_vec(),
            truncated: false,
        },
        creds: Creds::default(),
        comm: b"sh".to_vec(),
        cgroup_id: 1,
        cgroup_path: Vec::new(),
        origin: Origin::Exec,
    }
}

fn exec_detail() -> crate::event::Exec {
    let p = proc_sh();
    crate::event::Exec {
        task: crate::event::Task {
            pid: 77,
            key: p.key,
            cgroup_id: 1,
            time_ns: 1,
        },
        parent: crate::process::ProcessKey::new(1, 1),
        creds: p.creds,
        comm: p.comm.clone(),
        filename: p.binary.path.clone(),
        filename_truncated: false,
        args: p.args.clone(),
        args_truncated: false,
        args_unreadable: false,
        binary: p.binary.clone(),
        cwd: p.cwd.clone(),
        cgroup_path: Default::default(),
        exe_inode: 42,
        exe_unlinked: false,
        exe_dev: 0,
    }
}

#[test]
fn finding_renders_as_a_json_line() {
    let set = Arc::new(
        compile("rules:\n  - {name: sh, severity: high, tags: [T1059.004], description: A shell., action: kill, match: {kind: exec}}\n")
            .expect("valid"),
    );
    let mut stage = PolicyStage::new(set, "n1".into());
    let mut out = vec![exec_event()];
    stage.process(&mut out, 0);
    let mut line = Vec::new();
    crate::export::json::JsonRenderer::new("n1".into(), crate::clock::BootClock::with_offset(0))
        .render(&out[1], &mut line);
    let json: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
    assert_eq!(json["kind"], "finding");
    assert_eq!(json["process"]["binary"], "/bin/sh");
    assert_eq!(json["exec"]["inode"], 42);
    assert_eq!(
        json["finding"],
        serde_json::json!({
            "rule": "sh", "description": "A shell.", "severity": "high", "tags": ["T1059.004"],
            "mode": "monitor", "event_kind": "exec", "source": "t.yaml",
            "action": {"name": "would_kill", "target": "process:77:4d-5-6", "status": "dry_run", "latency_ns": 0}
        })
    );
}

#[test]
fn default_pack_checks_and_its_cases_pass_and_cover_every_rule() {
    let set = load::compile(&load::default_sources()).expect("the default pack checks");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/tests");
    let files = cases::files(&[dir]).expect("case files");
    assert!(!files.is_empty());
    let (mut passed, mut failures, mut covered) = (0, Vec::new(), Vec::new());
    for file in files {
        let report = cases::run_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        passed += report.passed;
        failures.extend(report.failures);
        covered.extend(report.covered);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(passed >= set.rules().len());
    for rule in set.rules() {
        assert!(
            covered.contains(&rule.info.name),
            "no case expects rule `{}`",
            rule.info.name
        );
        assert!(
            !rule.info.tags.is_empty(),
            "rule `{}` has no MITRE tag",
            rule.info.name
        );
    }
}

#[test]
fn an_invalid_reload_keeps_the_set_in_force() {
    let dir = std::env::temp_dir().join(format!(
        "vigil-policy-reload-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("a.yaml"),
        "rules:\n  - {name: a, match: {kind: exec}}\n",
    )
    .expect("write");
    let config = super::PolicyConfig {
        default_pack: false,
        directory: dir.display().to_string(),
        ..super::PolicyConfig::default()
    };
    let first = load::load(&config).expect("valid");
    assert_eq!(first.rules().len(), 1);
    let before = load::fingerprint(&dir);
    std::fs::write(
        dir.join("b.yaml"),
        "rules:\n  - {name: b, match: {kind: exec, bogus: 1}}\n",
    )
    .expect("write");
    assert_ne!(
        load::fingerprint(&dir),
        before,
        "a new file changes the fingerprint"
    );
    let error = load::load(&config).expect_err("invalid set");
    assert!(error.to_string().contains("b.yaml:2:"), "{error}");
    let mut stage = PolicyStage::new(Arc::new(first), String::new());
    // The stage only ever receives whole, valid sets: an error leaves it as it was.
    assert_eq!(stage.set().rules().len(), 1);
    std::fs::write(
        dir.join("b.yaml"),
        "rules:\n  - {name: b, match: {kind: exit}}\n",
    )
    .expect("write");
    stage.replace(Arc::new(load::load(&config).expect("valid again")));
    assert_eq!(stage.set().rules().len(), 2);
    assert_eq!(stage.stats().reloads, 1);
    let _ = std::fs::remove_dir_all(&dir);
}
