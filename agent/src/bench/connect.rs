//! `vigil bench connect`: a loopback TCP connect storm (connect to a 127.0.0.1 listener,
//! accept, close both ends), with no tracer, with Vigil's network sensor, with libbpf-tools
//! `tcpstates` and with bpftrace printing each `sock:inet_sock_set_state`. Vigil reports the
//! connect and accept syscalls (with both ends of the socket) plus both sides' closes from
//! `sock:inet_sock_set_state` (a blocking connect's outcome is its syscall's result, not a
//! second line); both peers report every state change, 10 per connection here (5 per side,
//! the server closing first).

use super::{
    peer,
    storm::{PeerSpec, Spec, Target},
    worker::Kind,
};
use crate::{
    config::Config,
    event::{Detail, Event, NetworkOp},
    network::Sockaddr,
};

/// Vigil's events of the storm: 0 its connect syscalls to the listener, 1 its accepts,
/// 2 TCP state events (the closes) of its connections.
fn classify(target: &Target, event: &Event) -> Option<usize> {
    match &event.detail {
        Detail::Network(n) if n.task.key.tgid == target.pid => match (n.op, &n.addr) {
            (NetworkOp::Connect, Some(Ok(Sockaddr::Inet { port, .. }))) if *port == target.port => {
                Some(0)
            }
            (NetworkOp::Accept, _) => Some(1),
            _ => None,
        },
        Detail::TcpState(t) if t.src.port() == target.port || t.dst.port() == target.port => {
            Some(2)
        }
        _ => None,
    }
}

const CONNECTION_STATES: &[(&str, u64)] = &[
    ("connects (CLOSE -> SYN_SENT)", 1),
    ("other state changes", 9),
];

pub async fn run(count: u32, runs: u32) -> anyhow::Result<()> {
    super::storm::run(Spec {
        kind: Kind::Connect,
        iteration: "connect + accept + close x2 on 127.0.0.1",
        count,
        runs,
        file: None,
        config: Config::default(),
        classes: &[
            ("connect syscalls", 1),
            ("accept syscalls", 1),
            ("TCP state events (2 closes)", 2),
        ],
        classify,
        peers: vec![
            PeerSpec {
                tool: peer::TCPSTATES,
                name: "tcpstates",
                // Unfiltered: its port filters (-L, -D) must both match, so either keeps one
                // side of each connection only. The node's other TCP traffic is filtered out
                // here.
                args: |_| Vec::new(),
                classify: |t| Box::new(peer::tcpstates_connection_of(t.port)),
                // 10 changes per connection: client CLOSE -> SYN_SENT -> ESTABLISHED ->
                // CLOSE_WAIT -> LAST_ACK -> CLOSE, server LISTEN -> SYN_RECV -> ESTABLISHED ->
                // FIN_WAIT1 -> FIN_WAIT2 -> CLOSE (perf's count of the tracepoint agrees).
                classes: CONNECTION_STATES,
            },
            PeerSpec {
                tool: peer::BPFTRACE,
                name: "bpftrace",
                // The same tracepoint, unfiltered too, a printf per change.
                args: |_| peer::bpftrace_tcp_states(),
                classify: |t| Box::new(peer::bpftrace_tcp_connection_of(t.port)),
                classes: CONNECTION_STATES,
            },
        ],
        perf_events: "syscalls:sys_enter_connect,sock:inet_sock_set_state",
    })
    .await
}
