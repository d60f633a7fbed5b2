//! Bad messages: each is refused with an error that names the field at fault.

use super::{RestoreError, corpus, event};
use crate::{
    api::{convert, proto},
    clock::BootClock,
};

/// A message that restores, to break one field at a time.
fn good() -> proto::Event {
    let exec = corpus::decoded()
        .into_iter()
        .find(|e| e.detail.kind() == "exec" && !e.ancestors.is_empty())
        .expect("an exec with ancestors");
    convert::event(&exec, corpus::NODE, &BootClock::with_offset(0))
}

/// Breaks one field of a good message.
type Break = Box<dyn Fn(&mut proto::Event)>;

fn field_of(message: &proto::Event) -> String {
    match event(message) {
        Ok(_) => panic!("a bad message restored"),
        Err(error) => {
            // Every error says which field, in its text too.
            assert!(error.to_string().contains(error.field()), "{error}");
            error.field().to_owned()
        }
    }
}

#[test]
fn bad_messages_name_the_field_at_fault() {
    use proto::event::Detail as Pd;
    assert!(event(&good()).is_ok());
    let cases: Vec<(&str, Break)> = vec![
        ("detail", Box::new(|m| m.detail = None)),
        ("kind", Box::new(|m| m.kind = "exit".into())),
        ("time_unix_ns", Box::new(|m| m.time_unix_ns = -1)),
        ("process", Box::new(|m| m.process = None)),
        (
            "process.exec_id",
            Box::new(|m| m.process.as_mut().unwrap().exec_id.clear()),
        ),
        (
            "process.args[1]",
            Box::new(|m| m.process.as_mut().unwrap().args[1] = "bad\\".into()),
        ),
        (
            "parent.origin",
            Box::new(|m| m.parent.as_mut().unwrap().origin = "magic".into()),
        ),
        (
            "ancestors[0].parent_exec_id",
            Box::new(|m| m.ancestors[0].parent_exec_id = "x".into()),
        ),
        (
            "container.runtime",
            Box::new(|m| m.container.as_mut().unwrap().runtime = "lxc".into()),
        ),
        (
            "container.id",
            Box::new(|m| m.container.as_mut().unwrap().id.clear()),
        ),
        (
            "exec.dev",
            Box::new(|m| set_exec(m, |e| e.dev = "8".into())),
        ),
        ("exec.memfd", Box::new(|m| set_exec(m, |e| e.memfd = true))),
        (
            "exec.filename",
            Box::new(|m| set_exec(m, |e| e.filename = "\\xzz".into())),
        ),
    ];
    for (field, mutate) in &cases {
        let mut m = good();
        mutate(&mut m);
        assert_eq!(field_of(&m), *field);
    }
    let detail_cases: Vec<(&str, Pd)> = vec![
        (
            "network.op",
            Pd::Network(proto::Network {
                op: "sendto".into(),
                ..Default::default()
            }),
        ),
        (
            "network.address_type",
            Pd::Network(proto::Network {
                op: "connect".into(),
                address: "10.0.0.1:80".into(),
                ..Default::default()
            }),
        ),
        (
            "network.address",
            Pd::Network(proto::Network {
                op: "connect".into(),
                address: "10.0.0.300:80".into(),
                address_type: "inet".into(),
                ..Default::default()
            }),
        ),
        (
            "network.local",
            Pd::Network(proto::Network {
                op: "close".into(),
                tcp_state: true,
                local: "nowhere".into(),
                ..Default::default()
            }),
        ),
        (
            "dns.src",
            Pd::Dns(proto::Dns {
                name: "a.example.".into(),
                ..Default::default()
            }),
        ),
        (
            "dns.malformed",
            Pd::Dns(proto::Dns {
                malformed: "Odd".into(),
                ..Default::default()
            }),
        ),
        (
            "syscall.name",
            Pd::Syscall(proto::Syscall {
                name: "frobnicate".into(),
                ..Default::default()
            }),
        ),
        (
            "syscall.typed_args",
            Pd::Syscall(proto::Syscall {
                name: "setuid".into(),
                args: [("uid".to_owned(), "Int(0)".to_owned())].into(),
                ..Default::default()
            }),
        ),
        (
            "syscall.typed_args[0].name",
            Pd::Syscall(proto::Syscall {
                name: "setuid".into(),
                typed_args: vec![proto::SyscallArg {
                    name: "gid".into(),
                    kind: "int".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        ),
        (
            "syscall.typed_args[0].kind",
            Pd::Syscall(proto::Syscall {
                name: "setuid".into(),
                typed_args: vec![proto::SyscallArg {
                    name: "uid".into(),
                    kind: "float".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        ),
        (
            "file.op",
            Pd::File(proto::File {
                op: "mmap".into(),
                ..Default::default()
            }),
        ),
        (
            "exit.signal",
            Pd::Exit(proto::Exit {
                signal: Some(300),
                ..Default::default()
            }),
        ),
        ("exit.exit_code", Pd::Exit(proto::Exit::default())),
        (
            "cred_change.before",
            Pd::CredChange(proto::CredChange::default()),
        ),
        (
            "loss.causes.gremlins",
            Pd::Loss(proto::Loss {
                total: 1,
                causes: [("gremlins".to_owned(), 1)].into(),
            }),
        ),
        (
            "loss.total",
            Pd::Loss(proto::Loss {
                total: 2,
                causes: [("ringbuf_full_exec".to_owned(), 1)].into(),
            }),
        ),
        ("finding.trigger", Pd::Finding(Box::default())),
        (
            "enforcement.by",
            Pd::Enforcement(proto::Enforcement {
                action: "kill".into(),
                ..Default::default()
            }),
        ),
    ];
    for (field, detail) in detail_cases {
        let mut m = good();
        m.detail = Some(detail);
        m.kind = match field.split('.').next() {
            Some("network") => match &m.detail {
                Some(Pd::Network(n)) => n.op.clone(),
                _ => unreachable!(),
            },
            Some(kind) => kind.to_owned(),
            None => unreachable!(),
        };
        assert_eq!(field_of(&m), field);
    }
}

fn set_exec(m: &mut proto::Event, change: impl Fn(&mut proto::Exec)) {
    match &mut m.detail {
        Some(proto::event::Detail::Exec(e)) => change(e),
        _ => panic!("an exec message"),
    }
}

#[test]
fn a_finding_inside_a_finding_is_refused() {
    let mut inner = good();
    inner.kind = "finding".into();
    inner.detail = Some(proto::event::Detail::Finding(Box::new(proto::Finding {
        trigger: Some(Box::new(good())),
        ..Default::default()
    })));
    let mut outer = good();
    outer.kind = "finding".into();
    outer.detail = Some(proto::event::Detail::Finding(Box::new(proto::Finding {
        trigger: Some(Box::new(inner)),
        ..Default::default()
    })));
    assert!(matches!(
        event(&outer),
        Err(RestoreError::Invalid { field, .. }) if field == "finding.trigger.kind"
    ));
}
