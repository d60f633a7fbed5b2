//! Round trips domain -> API message -> domain over a corpus of every kind: the restored
//! event must match the same rules (the default pack plus rules on every kind of field), be
//! equal to the original but for what the message does not carry, and convert to the same
//! message again.

use std::sync::Arc;

use super::{corpus, event};
use crate::{
    api::{convert, proto},
    clock::BootClock,
    event::{Detail, Event, TaskCreds},
    policy::{PolicySet, PolicyStage, load},
    process::Process,
};

/// Rules on every kind of field and operator: numbers, CIDRs, regexes (on raw bytes too),
/// ancestors, labels, syscall arguments of each type, presence.
const FIELD_RULES: &str = r#"
rules:
  - {name: t-node, match: {node: node-1}}
  - {name: t-uid, match: {process.uid: {gte: 1000}}}
  - {name: t-loginuid, match: {process.loginuid: {exists: false}}}
  - {name: t-pid, match: {process.pid: {in: [301, 1000]}}}
  - {name: t-tgid-ppid, match: {process.tgid: 300, process.ppid: 200}}
  - {name: t-parent-pid, match: {parent.pid: {lt: 250}}}
  - {name: t-binary-byte, match: {process.binary: {regex: '(?-u)\xff'}}}
  - {name: t-args-regex, match: {process.args: {regex: '^caf(?-u)\xe9 \\x41$'}}}
  - {name: t-args-backslash, match: {process.args: 'back\slash'}}
  - {name: t-args-empty, match: {process.args: ''}}
  - {name: t-cwd, match: {process.cwd: {prefix: /srv/}}}
  - {name: t-comm, match: {process.comm: {in: [tool, sh, x]}}}
  - {name: t-cgroup, match: {process.cgroup: {glob: '/kubepods/**'}}}
  - {name: t-exec-id, match: {process.exec_id: {regex: '^12c-bb8-'}}}
  - {name: t-ancestor-binary, match: {ancestors.binary: {glob: '**/nginx'}}}
  - {name: t-ancestor-comm, match: {ancestors.comm: init}}
  - {name: t-ancestor-pid, match: {ancestors.pid: 1}}
  - {name: t-parent-args, match: {parent.args: {contains: daemon}}}
  - {name: t-container, match: {container.id: {prefix: '0123'}, container.runtime: containerd}}
  - {name: t-container-bare, match: {container.id: {exists: true}, container.name: {exists: false}}}
  - {name: t-image, match: {container.image: {glob: 'registry.example/*'}, container.image_digest: {prefix: 'sha256:'}}}
  - {name: t-docker, match: {container.runtime: docker}}
  - {name: t-pod, match: {pod.name: app-0, pod.namespace: shop, pod.uid: '1234'}}
  - {name: t-label, match: {pod.labels.app: web}}
  - {name: t-label-absent, match: {pod.labels.tier: {exists: false}, pod.name: {exists: true}}}
  - {name: t-exec-filename, match: {kind: exec, exec.filename: {suffix: tool}}}
  - {name: t-exec-inode, match: {kind: exec, exec.inode: {gt: 10}}}
  - {name: t-memfd, match: {kind: exec, exec.memfd: true}}
  - {name: t-deleted, match: {kind: exec, exec.deleted: true, exec.memfd: false}}
  - {name: t-cidr, match: {network.dst_ip: {cidr: [10.0.0.0/8, 'fd00::/8']}}}
  - {name: t-dst-ip, match: {network.dst_ip: 203.0.113.7}}
  - {name: t-src, match: {network.src_ip: {cidr: 127.0.0.0/8}, network.src_port: {gte: 1024}}}
  - {name: t-dst-port, match: {network.dst_port: {in: [443, 3333, 14444, 8080]}}}
  - {name: t-family, match: {network.family: {in: [unix, other, inet6]}}}
  - {name: t-unix-path, match: {network.path: {prefix: /run/}}}
  - {name: t-unix-abstract, match: {network.path: {regex: '^@abstract(?-u)\xff$'}}}
  - {name: t-protocol, match: {network.protocol: {in: [tcp, udp]}}}
  - {name: t-no-addr, match: {kind: [connect, accept, bind, listen], network.family: {exists: false}}}
  - {name: t-file, match: {file.path: {glob: '/etc/*'}, file.op: open}}
  - {name: t-file-flags, match: {file.flags: O_CREAT, file.mode: 0o644}}
  - {name: t-file-new, match: {file.new_path: {regex: '(?-u)^/usr/bin/\xff'}}}
  - {name: t-file-syscall, match: {file.syscall: [fchmodat, unlinkat, renameat2], file.ret: {gte: 0}}}
  - {name: t-file-mode, match: {file.mode: {gte: 0o4000}}}
  - {name: t-syscall-name, match: {syscall.name: [memfd_create, unknown]}}
  - {name: t-syscall-ret, match: {syscall.ret: {lt: 0}}}
  - {name: t-arg-str, match: {syscall.args.name: {regex: '^pay(?-u)\xffload$'}}}
  - {name: t-arg-named, match: {syscall.args.flags: {contains: MS_BIND}}}
  - {name: t-arg-named-raw, match: {syscall.args.flags: 1}}
  - {name: t-arg-int, match: {syscall.args.pid: {gt: 4000}}}
  - {name: t-arg-id, match: {syscall.args.uid: -1}}
  - {name: t-arg-uint, match: {syscall.args.len: 65536}}
  - {name: t-arg-hex, match: {syscall.args.arg5: 6}}
  - {name: t-arg-unread, match: {syscall.args.path: {exists: true}, kind: syscall}}
  - {name: t-never-unread-as-str, match: {syscall.args.path: {regex: '.*'}}}
  - {name: t-arg-mixed, match: {syscall.args.target: [/mnt/\host, 5]}}
  - {name: t-dns, match: {dns.name: {suffix: pool.example}, dns.type: TXT}}
  - {name: t-dns-any, match: {kind: dns}}
  - {name: t-kinds, match: {kind: [fork, exit, cred_change, loss, close]}}
  - name: t-kill
    match: {kind: exec, process.binary: {prefix: /tmp/}}
    action: kill
    mode: enforce
  - name: t-freeze
    match: {kind: connect, container.id: {exists: true}}
    action: freeze
"#;

fn rule_set() -> Arc<PolicySet> {
    let mut sources = load::default_sources();
    sources.push(("fields.yaml".into(), FIELD_RULES.into()));
    Arc::new(load::compile(&sources).expect("the rules compile"))
}

/// Every event of the corpus, with its node.
fn corpus(set: &Arc<PolicySet>) -> Vec<(String, Event)> {
    let mut events = corpus::cases();
    events.extend(
        corpus::decoded()
            .into_iter()
            .map(|e| (corpus::NODE.to_owned(), e)),
    );
    let records = corpus::records(set, &events);
    events.extend(records.into_iter().map(|e| (corpus::NODE.to_owned(), e)));
    events
}

/// As the API sends it: boot time is Unix time here (a zero offset), so the restored
/// event's time is the original's.
fn message(event: &Event, node: &str) -> proto::Event {
    convert::event(event, node, &BootClock::with_offset(0))
}

/// The findings of `event`: rule, action, status, target.
fn findings(set: &Arc<PolicySet>, event: &Event, node: &str) -> Vec<String> {
    let mut stage = PolicyStage::new(set.clone(), node.to_owned());
    let mut batch = vec![event.clone()];
    stage.process(&mut batch, 0);
    batch[1..]
        .iter()
        .map(|e| match &e.detail {
            Detail::Finding(f) => format!(
                "{} {} {} {:?}",
                f.rule.name,
                f.outcome.action,
                f.outcome.status.name(),
                f.outcome.target
            ),
            _ => unreachable!("the stage appends findings only"),
        })
        .collect()
}

#[test]
fn the_corpus_has_every_kind() {
    let set = rule_set();
    let mut kinds: Vec<&str> = corpus(&set).iter().map(|(_, e)| e.detail.kind()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut all = crate::policy::kind::KINDS.to_vec();
    all.extend(["finding", "enforcement"]);
    all.sort_unstable();
    assert_eq!(kinds, all);
}

#[test]
fn restored_events_match_the_same_rules() {
    let set = rule_set();
    let mut fired = vec![0usize; set.rules().len()];
    for (i, (node, original)) in corpus(&set).iter().enumerate() {
        let restored = event(&message(original, node))
            .unwrap_or_else(|e| panic!("event {i} ({}): {e}", original.detail.kind()));
        let (mut want, mut got) = (Vec::new(), Vec::new());
        set.evaluate(original, node, &mut want);
        set.evaluate(&restored, node, &mut got);
        assert_eq!(got, want, "event {i}: {original:#?}");
        assert_eq!(
            findings(&set, &restored, node),
            findings(&set, original, node),
            "event {i}"
        );
        for rule in want {
            fired[rule as usize] += 1;
        }
    }
    // Each field rule must have been put to the test, or it proves nothing (`t-never-`:
    // rules that must not fire, such as an unread string taken for a string).
    for (rule, n) in set.rules().iter().zip(&fired) {
        if rule.info.name.starts_with("t-never-") {
            assert_eq!(*n, 0, "rule {} fired", rule.info.name);
        } else if rule.info.name.starts_with("t-") {
            assert!(*n > 0, "rule {} fired on no event", rule.info.name);
        }
    }
}

#[test]
fn restored_events_equal_the_originals_but_for_what_is_not_carried() {
    let set = rule_set();
    // Every difference at once: one run tells all that a change to the message broke.
    let mut wrong = Vec::new();
    let mut same = |i: usize, what: &str, restored: String, original: String| {
        if restored != original {
            wrong.push(format!("event {i} {what}:\n  {restored}\n  != {original}"));
        }
    };
    for (i, (node, original)) in corpus(&set).iter().enumerate() {
        let restored = event(&message(original, node)).expect("restores");
        let processes = |e: &Event| -> Vec<Process> {
            e.process
                .iter()
                .chain(&e.parent)
                .chain(&e.ancestors)
                .map(|p| carried_process(p))
                .collect()
        };
        let parent = original.parent.is_some();
        let pid = |e: &Event| e.process.as_ref().map(|_| e.pid);
        for (what, r, o) in [
            (
                "time",
                format!("{}", restored.time_ns),
                format!("{}", original.time_ns),
            ),
            (
                "pid",
                format!("{:?}", pid(&restored)),
                format!("{:?}", pid(original)),
            ),
            (
                "processes",
                format!("{:?}", processes(&restored)),
                format!("{:?}", processes(original)),
            ),
            (
                "container",
                format!("{:?}", restored.container),
                format!("{:?}", original.container),
            ),
            (
                "pod",
                format!("{:?}", restored.pod),
                format!("{:?}", original.pod),
            ),
            (
                "detail",
                format!("{:?}", carried(&restored.detail, parent)),
                format!("{:?}", carried(&original.detail, parent)),
            ),
        ] {
            same(i, what, r, o);
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn restoring_then_converting_gives_the_same_message() {
    let set = rule_set();
    for (i, (node, original)) in corpus(&set).iter().enumerate() {
        let sent = message(original, node);
        let restored = event(&sent).expect("restores");
        assert_eq!(
            convert::event(&restored, node, &super::clock()),
            sent,
            "event {i}"
        );
    }
}

/// A process as the message carries it: not whether its walks were cut, nor its parent's
/// start time when the parent is not in the event.
fn carried_process(p: &Process) -> Process {
    let mut p = p.clone();
    let image = Arc::make_mut(&mut p.image);
    image.binary.truncated = false;
    image.cwd.truncated = false;
    p.parent = None;
    p
}

/// `detail` without what the message does not carry (as the docs of `super::detail` and
/// `super::record` list it). Without the parent in the event, its start time is not either.
fn carried(detail: &Detail, parent: bool) -> Detail {
    let mut d = detail.clone();
    let creds = |c: &mut TaskCreds| {
        *c = TaskCreds {
            uid: c.uid,
            gid: c.gid,
            euid: c.euid,
            egid: c.egid,
            cap_effective: c.cap_effective,
            cap_permitted: c.cap_permitted,
            ..TaskCreds::default()
        };
    };
    match &mut d {
        Detail::Exec(e) => {
            if !parent {
                e.parent.start_time_ns = 0;
            }
            let image = Arc::make_mut(&mut e.image);
            image.binary.truncated = false;
            image.cwd.truncated = false;
            e.cgroup_truncated = false;
        }
        Detail::Syscall(s) => {
            s.exit_time_ns = s.task.time_ns;
            s.strings_dropped = false;
        }
        Detail::Network(n) => n.exit_time_ns = n.task.time_ns,
        Detail::TcpState(t) => {
            t.old_state = 0;
            t.new_state = 0;
        }
        Detail::File(f) => {
            f.exit_time_ns = f.task.time_ns;
            f.uid = None;
            f.gid = None;
            f.path_truncated = false;
            f.path_resolved = true;
        }
        Detail::Dns(d) => {
            d.wire_len = 0;
            d.payload_truncated = false;
            if let Ok(q) = &mut d.question {
                q.response = false;
                q.opcode.clear();
                q.questions = 1;
            }
        }
        Detail::CredChange(c) => {
            c.exit_time_ns = c.task.time_ns;
            creds(&mut c.before);
            creds(&mut c.after);
        }
        Detail::Finding(f) => {
            let mut rule = (*f.rule).clone();
            rule.source.clear();
            f.rule = Arc::new(rule);
            f.outcome.error = None;
            f.outcome.latency_ns = 0;
            f.trigger = carried(&f.trigger, parent);
        }
        Detail::Enforcement(e) => {
            e.rule_id = None;
            e.comm.clear();
            e.cgroup_id = 0;
            e.binary = None;
            e.latency_ns = 0;
        }
        Detail::Fork(f) if !parent => f.parent.start_time_ns = 0,
        Detail::Fork(_) | Detail::Exit(_) | Detail::Loss(_) => {}
    }
    d
}
