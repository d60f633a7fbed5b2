//! Check errors (each class, with file, line, column and field), actions the kernel cannot
//! enforce, monitor and enforce modes, the finding's JSON, the default pack's behaviour cases
//! and reload atomicity.

use super::*;

/// `(line, column, field suffix, message fragment)` of the first error of `text`.
fn first_error(text: &str) -> crate::policy::CheckError {
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
  - {name: g, action: deny_open, mode: enforce, match: {kind: file, file.path: {prefix: /etc/vigil-secret/}, process.cgroup: /t}}
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
            "{name: r, action: deny_open, match: {kind: file, file.path: {glob: '/etc/*'}}}",
            "match.file.path",
            "cannot test",
        ),
        (
            "{name: r, action: deny_open, match: {kind: [file, exec], file.path: /etc/shadow}}",
            "match.kind",
            "needs `kind: file` alone",
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
        process::{ExecId, Image, Origin, Process, ProcessKey},
    };
    let key = ProcessKey::new(77, 5);
    Process {
        key,
        exec_id: ExecId::new(key, 6),
        ppid: 1,
        parent: None,
        parent_exec_id: None,
        image: Arc::new(Image {
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
            comm: b"sh".to_vec(),
            cgroup_path: Vec::new(),
            json: Default::default(),
        }),
        creds: Creds::default(),
        cgroup_id: 1,
        origin: Origin::Exec,
        parent_json: Default::default(),
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
        filename: p.binary.path.clone(),
        filename_truncated: false,
        args_unreadable: false,
        image: p.image.clone(),
        cgroup_truncated: false,
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
    let config = crate::policy::PolicyConfig {
        default_pack: false,
        directory: dir.display().to_string(),
        ..crate::policy::PolicyConfig::default()
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

#[test]
fn the_daemon_refuses_policies_others_could_write_and_policy_check_still_reads_them() {
    let dir = crate::secure::scratch::Scratch::new("policy-trust");
    let file = dir.file(
        "a.yaml",
        "rules:\n  - {name: a, match: {kind: exec}}\n",
        0o666,
    );
    let config = crate::policy::PolicyConfig {
        default_pack: false,
        directory: dir.path().display().to_string(),
        ..crate::policy::PolicyConfig::default()
    };
    let error = load::load(&config)
        .expect_err("a world-writable policy")
        .to_string();
    assert!(
        error.contains(&format!("refusing {}:", file.display())),
        "{error}"
    );
    assert!(error.contains("chmod go-w"), "{error}");
    // `vigil policy check` reads what a user hands it.
    let sources = load::read(&load::files(&[dir.path().to_owned()]).expect("list")).expect("read");
    load::compile(&sources).expect("checks");

    crate::secure::scratch::chmod(&file, 0o644);
    crate::secure::scratch::chmod(dir.path(), 0o757);
    let error = load::load(&config)
        .expect_err("a world-writable directory")
        .to_string();
    assert!(
        error.contains(&format!("refusing {}:", dir.path().display())),
        "{error}"
    );
    crate::secure::scratch::chmod(dir.path(), 0o755);
    assert_eq!(load::load(&config).expect("trusted again").rules().len(), 1);
}
