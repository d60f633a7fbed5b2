//! `network: {family, protocol?, src_ip?, src_port?, dst_ip?, dst_port?, path?, fd, result,
//! ...}` of a connect, accept, bind or listen. `src_*` is the socket's own end as the kernel
//! held it at return (a port bind or connect picked, a listener's port; the bind argument
//! when the socket could not be read); `dst_*` the remote end (connect's target, accept's
//! peer). A unix address is `path` (abstract names as `@name`).
//!
//! Network events are most of a service node's output, so [`NetworkJson::write`] writes the
//! members by hand; the serde derive is the schema it is tested against.

use std::{
    borrow::Cow,
    net::{IpAddr, Ipv4Addr},
};

use serde::Serialize;

use super::write::{self, Object};
use crate::{
    event::{Network, NetworkOp, TcpState},
    network::Sockaddr,
    syscall::names::errno_name,
};

const EINPROGRESS: i64 = libc::EINPROGRESS as i64;

#[derive(Serialize)]
pub(super) struct NetworkJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<Cow<'static, str>>,
    /// `"tcp"`, `"udp"`...: from the socket (syscalls) or the tracepoint (TCP state changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_port: Option<u16>,
    /// The IPv4 address inside an IPv4-mapped IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    mapped_ipv4: Option<Ipv4Addr>,
    /// A unix socket's path, or `@name` for an abstract one (empty: unnamed).
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<Cow<'a, str>>,
    /// Why the address could not be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    address_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    /// accept's new connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    new_fd: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backlog: Option<i32>,
    /// `"ok"`, `"in_progress"` (a non-blocking connect), or the errno's name.
    result: Cow<'static, str>,
    /// Time spent in the syscall, in nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ns: Option<u64>,
    /// For events from a TCP state change (close, a connect's outcome): the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp_state: Option<TcpStateJson>,
}

#[derive(Serialize)]
struct TcpStateJson {
    old: &'static str,
    new: &'static str,
    /// Whether the process is the socket's owner (the task that connected it); when false,
    /// the event has no process.
    owner_known: bool,
}

impl<'a> NetworkJson<'a> {
    pub(super) fn new(network: &'a Network) -> Self {
        let mut json = Self {
            family: None,
            protocol: None,
            src_ip: None,
            src_port: None,
            dst_ip: None,
            dst_port: None,
            mapped_ipv4: None,
            path: None,
            address_error: None,
            fd: Some(network.fd),
            new_fd: (network.op == NetworkOp::Accept && network.ret >= 0).then_some(network.ret),
            backlog: network.backlog,
            result: result(network),
            duration_ns: Some(network.exit_time_ns.saturating_sub(network.task.time_ns)),
            tcp_state: None,
        };
        if let Some(ends) = &network.socket {
            json.protocol = protocol_name(ends.protocol);
            json.family = Some(
                if ends.local.is_ipv4() {
                    "inet"
                } else {
                    "inet6"
                }
                .into(),
            );
            // Port 0: no local end (never bound, or already closed, e.g. a refused connect).
            if ends.local.port() != 0 {
                json.src_ip = Some(ends.local.ip());
                json.src_port = Some(ends.local.port());
            }
            if let Some(remote) = ends.remote {
                (json.dst_ip, json.dst_port) = (Some(remote.ip()), Some(remote.port()));
            }
        }
        match &network.addr {
            None => {}
            Some(Err(error)) => json.address_error = Some(error.to_string()),
            Some(Ok(addr)) => {
                json.family = Some(addr.family_name());
                json.mapped_ipv4 = addr.mapped_ipv4();
                let ip_port = match addr {
                    Sockaddr::Inet { ip, port } => Some((IpAddr::from(*ip), *port)),
                    Sockaddr::Inet6 { ip, port } => Some((IpAddr::from(*ip), *port)),
                    Sockaddr::Unix(unix) => {
                        json.path = Some(crate::export::escape::unix_addr(unix));
                        None
                    }
                    Sockaddr::Other { .. } => None,
                };
                if let Some((ip, port)) = ip_port {
                    if network.op != NetworkOp::Bind {
                        (json.dst_ip, json.dst_port) = (Some(ip), Some(port));
                    } else if network.socket.is_none() {
                        // The address asked for; the socket's own (with the port the kernel
                        // picked for port 0) wins when known.
                        (json.src_ip, json.src_port) = (Some(ip), Some(port));
                    }
                }
            }
        }
        json
    }
}

impl NetworkJson<'_> {
    /// The members as the serde derive writes them (same order, same ones left out).
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        let mut o = Object::open(out);
        o.some_str("family", self.family.as_deref());
        o.some_str("protocol", self.protocol);
        let ip = |o: &mut Object<'_>, key: &str, ip: Option<IpAddr>| {
            if let Some(ip) = ip {
                write::ip(o.key(key), ip);
            }
        };
        ip(&mut o, "src_ip", self.src_ip);
        o.some_uint("src_port", self.src_port);
        ip(&mut o, "dst_ip", self.dst_ip);
        o.some_uint("dst_port", self.dst_port);
        ip(&mut o, "mapped_ipv4", self.mapped_ipv4.map(IpAddr::V4));
        o.some_str("path", self.path.as_deref());
        o.some_str("address_error", self.address_error.as_deref());
        o.some_uint("fd", self.fd);
        o.some_uint("new_fd", self.new_fd);
        o.some_uint("backlog", self.backlog);
        o.str("result", &self.result);
        o.some_uint("duration_ns", self.duration_ns);
        if let Some(change) = &self.tcp_state {
            let mut t = Object::open(o.key("tcp_state"));
            t.str("old", change.old);
            t.str("new", change.new);
            write::bool(t.key("owner_known"), change.owner_known);
            t.close();
        }
        o.close();
    }
}

impl NetworkJson<'static> {
    /// Both ends of a packet or connection, as the kernel saw them.
    pub(super) fn addresses(
        protocol: &'static str,
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
        result: &'static str,
    ) -> Self {
        Self {
            family: Some(if src.is_ipv4() { "inet" } else { "inet6" }.into()),
            protocol: Some(protocol),
            src_ip: Some(src.ip()),
            src_port: Some(src.port()),
            dst_ip: Some(dst.ip()),
            dst_port: Some(dst.port()),
            mapped_ipv4: match dst.ip() {
                IpAddr::V6(ip) => ip.to_ipv4_mapped(),
                IpAddr::V4(_) => None,
            },
            path: None,
            address_error: None,
            fd: None,
            new_fd: None,
            backlog: None,
            result: result.into(),
            duration_ns: None,
            tcp_state: None,
        }
    }

    /// A close, or a connect's outcome: `result` is `"ok"` for a close or an established
    /// connection, `"failed"` for a connect that ended in CLOSE (refused, timed out,
    /// unreachable or abandoned: the tracepoint does not say which).
    pub(super) fn tcp_state(change: &TcpState) -> Self {
        let failed = change.op == NetworkOp::Connect && change.new_state != TCP_ESTABLISHED;
        let result = if failed { "failed" } else { "ok" };
        Self {
            tcp_state: Some(TcpStateJson {
                old: tcp_state_name(change.old_state),
                new: tcp_state_name(change.new_state),
                owner_known: change.owner_known,
            }),
            ..Self::addresses("tcp", change.src, change.dst, result)
        }
    }
}

const TCP_ESTABLISHED: u32 = vigil_common::network::TCP_ESTABLISHED;

/// `"tcp"`, `"udp"`... for an IP protocol number.
fn protocol_name(protocol: u16) -> Option<&'static str> {
    match i32::from(protocol) {
        libc::IPPROTO_TCP => Some("tcp"),
        libc::IPPROTO_UDP => Some("udp"),
        libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6 => Some("icmp"),
        libc::IPPROTO_SCTP => Some("sctp"),
        libc::IPPROTO_RAW => Some("raw"),
        _ => None,
    }
}

/// The kernel's name of TCP state `state`, without its `TCP_` prefix.
fn tcp_state_name(state: u32) -> &'static str {
    const NAMES: [&str; 13] = [
        "UNKNOWN",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
        "NEW_SYN_RECV",
    ];
    NAMES.get(state as usize).copied().unwrap_or("UNKNOWN")
}

fn result(network: &Network) -> Cow<'static, str> {
    match network.errno() {
        None => "ok".into(),
        Some(EINPROGRESS) => "in_progress".into(),
        Some(errno) => {
            errno_name(errno).map_or_else(|| format!("errno_{errno}").into(), Into::into)
        }
    }
}
