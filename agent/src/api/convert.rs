//! Domain events -> API messages (`proto/vigil/v1/sensor.proto`): the one place that knows
//! both. Kernel bytes are rendered as the JSON output renders them ([`escape`]).

use crate::{
    clock::BootClock,
    event::{Detail, Event, TaskCreds},
    export::escape::escape,
    process::{Origin, Process},
    response::Enforcement,
    syscall::ArgValue,
};

use super::proto::{self, event::Detail as Pd};

fn text(bytes: &[u8]) -> String {
    escape(bytes).into_owned()
}

fn sockaddr(addr: &Result<crate::network::Sockaddr, crate::network::SockaddrError>) -> String {
    use crate::network::Sockaddr;
    match addr {
        Ok(Sockaddr::Inet { ip, port }) => format!("{ip}:{port}"),
        Ok(Sockaddr::Inet6 { ip, port }) => format!("[{ip}]:{port}"),
        Ok(Sockaddr::Unix(unix)) => crate::export::escape::unix_addr(unix).into_owned(),
        Ok(Sockaddr::Other { family }) => format!("af_{family}"),
        Err(error) => format!("unreadable: {error:?}"),
    }
}

/// Which of the shapes `address` can take: unix paths may look like anything, so the text
/// alone does not say.
fn address_type(
    addr: &Result<crate::network::Sockaddr, crate::network::SockaddrError>,
) -> &'static str {
    use crate::network::{Sockaddr, UnixAddr};
    match addr {
        Ok(Sockaddr::Inet { .. }) => "inet",
        Ok(Sockaddr::Inet6 { .. }) => "inet6",
        Ok(Sockaddr::Unix(UnixAddr::Path(_))) => "unix_path",
        Ok(Sockaddr::Unix(UnixAddr::Abstract(_))) => "unix_abstract",
        Ok(Sockaddr::Unix(UnixAddr::Unnamed)) => "unix_unnamed",
        Ok(Sockaddr::Other { .. }) => "other",
        Err(_) => "unreadable",
    }
}

fn arg(name: &str, value: &ArgValue) -> proto::SyscallArg {
    let mut out = proto::SyscallArg {
        name: name.to_owned(),
        ..Default::default()
    };
    let kind = match value {
        ArgValue::Int(n) => {
            out.int = *n;
            "int"
        }
        ArgValue::Uint(n) => {
            out.raw = *n;
            "uint"
        }
        ArgValue::Hex(n) => {
            out.raw = *n;
            "hex"
        }
        ArgValue::Str { bytes, truncated } => {
            out.text = text(bytes);
            out.truncated = *truncated;
            "str"
        }
        ArgValue::Unread(address) => {
            out.raw = *address;
            "unread"
        }
        ArgValue::Named { raw, names } => {
            out.raw = *raw;
            out.text = names.clone();
            "named"
        }
    };
    out.kind = kind.to_owned();
    out
}

/// `event` as the API sends it, for `node`, with times from `clock`.
pub fn event(event: &Event, node: &str, clock: &BootClock) -> proto::Event {
    proto::Event {
        kind: event.detail.kind().to_owned(),
        time_unix_ns: i64::try_from(clock.unix_ns(event.time_ns)).unwrap_or(i64::MAX),
        time: clock.rfc3339(event.time_ns),
        node: node.to_owned(),
        process: event.process.as_deref().map(|p| process(p, event.pid)),
        parent: event.parent.as_deref().map(|p| process(p, p.key.tgid)),
        ancestors: event
            .ancestors
            .iter()
            .map(|p| process(p, p.key.tgid))
            .collect(),
        container: event.container.as_deref().map(|c| proto::Container {
            id: c.id.as_str().to_owned(),
            runtime: c.runtime.as_str().to_owned(),
            name: c.name.clone().unwrap_or_default(),
            image: c.image.clone().unwrap_or_default(),
            image_digest: c.image_digest.clone().unwrap_or_default(),
        }),
        pod: event.pod.as_deref().map(|p| proto::Pod {
            name: p.name.clone().unwrap_or_default(),
            namespace: p.namespace.clone().unwrap_or_default(),
            uid: p.uid.clone().unwrap_or_default(),
            labels: p.labels.clone().into_iter().collect(),
        }),
        detail: Some(detail(event, node, clock)),
    }
}

/// A loss of `count` events on one client's stream (it read too slowly).
pub fn stream_loss(count: u64, node: &str, clock: &BootClock) -> proto::Event {
    let now = crate::clock::boot_now_ns();
    proto::Event {
        kind: "loss".into(),
        time_unix_ns: i64::try_from(clock.unix_ns(now)).unwrap_or(i64::MAX),
        time: clock.rfc3339(now),
        node: node.to_owned(),
        detail: Some(Pd::Loss(proto::Loss {
            total: count,
            causes: [("api_client_lagged".to_owned(), count)].into(),
        })),
        ..Default::default()
    }
}

fn process(p: &Process, pid: u32) -> proto::Process {
    proto::Process {
        pid,
        tgid: p.key.tgid,
        ppid: p.ppid,
        uid: p.creds.uid,
        gid: p.creds.gid,
        euid: p.creds.euid,
        egid: p.creds.egid,
        loginuid: p.creds.loginuid,
        binary: text(&p.binary.path),
        args: p.args.iter().map(|a| text(a)).collect(),
        args_truncated: p.args_truncated,
        cwd: text(&p.cwd.path),
        comm: text(&p.comm),
        exec_id: p.exec_id.as_str().to_owned(),
        parent_exec_id: p
            .parent_exec_id
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default(),
        start_time_ns: p.key.start_time_ns,
        cgroup_id: p.cgroup_id,
        cgroup: text(&p.cgroup_path),
        origin: match p.origin {
            Origin::Exec => "exec",
            Origin::Fork => "fork",
            Origin::Snapshot => "snapshot",
            Origin::Unknown => "unknown",
        }
        .to_owned(),
    }
}

fn creds(c: &TaskCreds) -> proto::Creds {
    proto::Creds {
        uid: c.uid,
        gid: c.gid,
        euid: c.euid,
        egid: c.egid,
        cap_effective: c.cap_effective,
        cap_permitted: c.cap_permitted,
    }
}

fn detail(event: &Event, node: &str, clock: &BootClock) -> Pd {
    match &event.detail {
        Detail::Exec(e) => Pd::Exec(proto::Exec {
            filename: text(&e.filename),
            filename_truncated: e.filename_truncated,
            args_unreadable: e.args_unreadable,
            inode: e.exe_inode,
            dev: format!("{}:{}", e.exe_dev >> 20, e.exe_dev & 0xf_ffff),
            deleted: e.exe_unlinked,
            memfd: e.exe_unlinked && e.image.binary.path.starts_with(b"/memfd:"),
        }),
        Detail::Exit(e) => Pd::Exit(proto::Exit {
            exit_code: e.status().map(u32::from),
            signal: e.signal().map(u32::from),
            core_dumped: e.core_dumped(),
            group_dead: e.group_dead,
        }),
        Detail::Fork(f) => Pd::Fork(proto::Fork {
            caller_pid: f.caller_pid,
            thread: f.thread,
        }),
        Detail::Network(n) => Pd::Network(proto::Network {
            op: n.op.name().to_owned(),
            fd: n.fd,
            address: n.addr.as_ref().map(sockaddr).unwrap_or_default(),
            address_type: n
                .addr
                .as_ref()
                .map(address_type)
                .unwrap_or_default()
                .to_owned(),
            backlog: n.backlog,
            local: n.socket.map(|s| s.local.to_string()).unwrap_or_default(),
            remote: n
                .socket
                .and_then(|s| s.remote)
                .map(|r| r.to_string())
                .unwrap_or_default(),
            protocol: n.socket.map(|s| u32::from(s.protocol)).unwrap_or_default(),
            ret: n.ret,
            tcp_state: false,
        }),
        Detail::TcpState(t) => Pd::Network(proto::Network {
            op: t.op.name().to_owned(),
            local: t.src.to_string(),
            remote: t.dst.to_string(),
            protocol: 6,
            tcp_state: true,
            ..Default::default()
        }),
        Detail::Dns(d) => {
            let (q, malformed) = match &d.question {
                Ok(q) => (Some(q), String::new()),
                Err(error) => (None, format!("{error:?}")),
            };
            Pd::Dns(proto::Dns {
                tcp: d.tcp,
                src: d.src.to_string(),
                dst: d.dst.to_string(),
                name: q.map(|q| q.name.clone()).unwrap_or_default(),
                qtype: q.map(|q| q.qtype.clone()).unwrap_or_default(),
                qclass: q.map(|q| q.qclass.clone()).unwrap_or_default(),
                id: q.map(|q| u32::from(q.id)).unwrap_or_default(),
                malformed,
            })
        }
        Detail::Syscall(s) => Pd::Syscall(proto::Syscall {
            nr: s.nr,
            name: s.name.unwrap_or_default().to_owned(),
            args: s
                .args
                .iter()
                .map(|(name, value)| ((*name).to_owned(), format!("{value:?}")))
                .collect(),
            ret: s.ret,
            typed_args: s
                .args
                .iter()
                .map(|(name, value)| arg(name, value))
                .collect(),
        }),
        Detail::File(f) => Pd::File(proto::File {
            op: f.op.name().to_owned(),
            syscall: f.syscall.to_owned(),
            path: text(&f.path),
            new_path: f.new_path.as_deref().map(text).unwrap_or_default(),
            flags: f.flags,
            mode: f.mode,
            ret: f.ret,
        }),
        Detail::CredChange(c) => Pd::CredChange(proto::CredChange {
            syscall: c.syscall.unwrap_or_default().to_owned(),
            ret: c.ret,
            before: Some(creds(&c.before)),
            after: Some(creds(&c.after)),
        }),
        Detail::Loss(l) => Pd::Loss(proto::Loss {
            total: l.total(),
            causes: l
                .counts
                .iter()
                .map(|(c, n)| ((*c).to_owned(), *n))
                .collect(),
        }),
        Detail::Finding(f) => {
            let trigger = Event {
                detail: f.trigger.clone(),
                ..event.clone()
            };
            Pd::Finding(Box::new(proto::Finding {
                rule: f.rule.name.clone(),
                description: f.rule.description.clone(),
                severity: f.rule.severity.name().to_owned(),
                tags: f.rule.tags.clone(),
                mode: f.mode.name().to_owned(),
                event_kind: f.trigger.kind().to_owned(),
                action: f.outcome.action.to_owned(),
                action_status: f.outcome.status.name().to_owned(),
                trigger: Some(Box::new(self::event(&trigger, node, clock))),
            }))
        }
        Detail::Enforcement(e) => Pd::Enforcement(enforcement(e)),
    }
}

/// An enforcement event's detail (also the answer to an operator's request).
pub fn enforcement(e: &Enforcement) -> proto::Enforcement {
    let operator = e.operator.as_deref();
    proto::Enforcement {
        action: e.action.to_owned(),
        by: e.by.name().to_owned(),
        rule: e.rule.clone().unwrap_or_default(),
        target: e.target.clone(),
        outcome: e.outcome.to_owned(),
        error: e.error.clone().unwrap_or_default(),
        rule_id: e.rule_id,
        tgid: e.tgid,
        pid: e.pid,
        comm: e.comm.clone(),
        cgroup_id: e.cgroup_id,
        binary: e.binary.clone().unwrap_or_default(),
        destination: e.destination.map(|d| d.to_string()).unwrap_or_default(),
        latency_ns: e.latency_ns,
        requested_by: operator.map(|o| o.requested_by.clone()).unwrap_or_default(),
        reason: operator.map(|o| o.reason.clone()).unwrap_or_default(),
        record: operator
            .and_then(|o| o.record.as_ref())
            .map(|r| super::rules::rule(r, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{Exit, Loss, Network, NetworkOp, Syscall, Task},
        network::{Sockaddr, UnixAddr},
        process::ProcessKey,
    };

    fn task() -> Task {
        Task {
            pid: 7,
            key: ProcessKey {
                tgid: 7,
                start_time_ns: 1,
            },
            cgroup_id: 1,
            time_ns: 5,
        }
    }

    #[test]
    fn syscall_arguments_are_also_sent_typed() {
        let call = Event::new(
            5,
            7,
            None,
            None,
            Detail::Syscall(Syscall {
                task: task(),
                nr: 165,
                name: Some("mount"),
                args: vec![
                    (
                        "source",
                        ArgValue::Str {
                            bytes: b"a\xff".to_vec(),
                            truncated: true,
                        },
                    ),
                    ("target", ArgValue::Unread(0x10)),
                    (
                        "flags",
                        ArgValue::Named {
                            raw: 4096,
                            names: "MS_BIND".into(),
                        },
                    ),
                    ("data", ArgValue::Hex(9)),
                ],
                ret: -1,
                exit_time_ns: 6,
                strings_dropped: false,
            }),
        );
        let Some(Pd::Syscall(s)) = event(&call, "n1", &BootClock::with_offset(0)).detail else {
            panic!("a syscall detail");
        };
        let arg = |name: &str, kind: &str, raw, text: &str, truncated| proto::SyscallArg {
            name: name.into(),
            kind: kind.into(),
            int: 0,
            raw,
            text: text.into(),
            truncated,
        };
        assert_eq!(
            s.typed_args,
            [
                arg("source", "str", 0, "a\\xff", true),
                arg("target", "unread", 0x10, "", false),
                arg("flags", "named", 4096, "MS_BIND", false),
                arg("data", "hex", 9, "", false),
            ]
        );
        assert_eq!(s.args.len(), 4, "the text map stays for people");
    }

    #[test]
    fn the_address_type_tells_apart_what_the_text_does_not() {
        let sent = |addr| {
            let network = Event::new(
                5,
                7,
                None,
                None,
                Detail::Network(Network {
                    task: task(),
                    op: NetworkOp::Connect,
                    fd: 3,
                    addr,
                    backlog: None,
                    socket: None,
                    ret: 0,
                    exit_time_ns: 6,
                }),
            );
            match event(&network, "n1", &BootClock::with_offset(0)).detail {
                Some(Pd::Network(n)) => (n.address, n.address_type),
                _ => panic!("a network detail"),
            }
        };
        let unix = |a| Some(Ok(Sockaddr::Unix(a)));
        assert_eq!(sent(None), (String::new(), String::new()));
        assert_eq!(
            sent(unix(UnixAddr::Unnamed)),
            (String::new(), "unix_unnamed".into())
        );
        assert_eq!(
            sent(unix(UnixAddr::Path(b"@x".to_vec()))),
            ("@x".into(), "unix_path".into())
        );
        assert_eq!(
            sent(unix(UnixAddr::Abstract(b"x".to_vec()))),
            ("@x".into(), "unix_abstract".into())
        );
    }

    #[test]
    fn exit_and_loss_details_and_times() {
        let clock = BootClock::with_offset(1_000);
        let task = Task {
            pid: 7,
            key: ProcessKey {
                tgid: 7,
                start_time_ns: 1,
            },
            cgroup_id: 1,
            time_ns: 5,
        };
        let exit = Event::new(
            5,
            7,
            None,
            None,
            Detail::Exit(Exit {
                task,
                exit_code: 3 << 8,
                group_dead: true,
            }),
        );
        let message = event(&exit, "n1", &clock);
        assert_eq!(message.kind, "exit");
        assert_eq!(message.node, "n1");
        assert_eq!(message.time_unix_ns, 1_005);
        assert_eq!(
            message.detail,
            Some(Pd::Exit(proto::Exit {
                exit_code: Some(3),
                signal: None,
                core_dumped: false,
                group_dead: true,
            }))
        );
        let loss = Event::new(
            9,
            0,
            None,
            None,
            Detail::Loss(Loss {
                counts: vec![("ring_full", 2), ("queue_full", 1)],
            }),
        );
        let Some(Pd::Loss(l)) = event(&loss, "n1", &clock).detail else {
            panic!("a loss detail");
        };
        assert_eq!(l.total, 3);
        assert_eq!(l.causes.get("ring_full"), Some(&2));
    }
}
