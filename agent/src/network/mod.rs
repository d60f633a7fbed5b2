//! The network sensor's userspace half. connect, accept, accept4, bind and listen are captured
//! by the syscall sensor's hooks (selected in the kernel by the same bitmap, with the socket
//! address copied by the kernel as an [`ARG_SOCKADDR`](vigil_common::syscall::ARG_SOCKADDR)
//! argument); their records are turned into [`Network`] events here.

mod dns;
mod sockaddr;
pub mod tracepoint;

use serde::Deserialize;

pub use self::{
    dns::{DnsMalformed, DnsQuestion, parse as parse_dns},
    sockaddr::{Sockaddr, SockaddrError, UnixAddr},
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use vigil_common::syscall::{ARG_TYPES_SOCKET, SocketInfo};

use crate::{
    event::{Network, NetworkOp, SocketEnds, Task},
    syscall::{Arch, KernelFilter},
};

/// The syscalls of the network sensor; `[syscalls] names` may not list them.
pub const SYSCALLS: &[&str] = &["connect", "accept", "accept4", "bind", "listen"];

/// `[network]`: connect/accept/bind/listen events.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Capture the network syscalls.
    pub enabled: bool,
    /// Report DNS queries (packets to port 53), when `enabled`.
    pub dns: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dns: true,
        }
    }
}

impl NetworkConfig {
    /// Whether the DNS program is attached.
    pub fn dns_enabled(&self) -> bool {
        self.enabled && self.dns
    }

    /// The syscalls this asks the kernel for (empty when disabled).
    pub fn filter(&self, arch: Arch) -> KernelFilter {
        if !self.enabled {
            return KernelFilter::default();
        }
        let mut filter = KernelFilter::new(arch, SYSCALLS.iter().copied()).unwrap_or_else(|name| {
            // Both tables have all of them (a unit test says so).
            tracing::error!(syscall = name, "A network syscall has no number here.");
            KernelFilter::default()
        });
        // Each also reports its socket's own ends, read from the kernel at exit.
        for (_, word) in &mut filter.arg_types {
            *word |= ARG_TYPES_SOCKET;
        }
        filter
    }
}

/// The network operation of syscall `name`, if it is one.
pub fn op(name: &str) -> Option<NetworkOp> {
    Some(match name {
        "connect" => NetworkOp::Connect,
        "accept" | "accept4" => NetworkOp::Accept,
        "bind" => NetworkOp::Bind,
        "listen" => NetworkOp::Listen,
        _ => return None,
    })
}

/// The network event of a captured network syscall: `args` raw, `addr` the socket address
/// the kernel copied (`None`: none copied).
pub fn from_syscall(
    task: Task,
    op: NetworkOp,
    args: &[u64; vigil_common::syscall::SYSCALL_ARGS],
    addr: Option<&[u8]>,
    info: Option<SocketInfo>,
    ret: i64,
    exit_time_ns: u64,
) -> Network {
    Network {
        task,
        op,
        fd: args[0] as u32 as i32,
        addr: addr.map(Sockaddr::parse),
        backlog: (op == NetworkOp::Listen).then_some(args[1] as u32 as i32),
        socket: info.and_then(socket_ends),
        ret,
        exit_time_ns,
    }
}

/// The ends of an IPv4/IPv6 socket (`None` for other families).
pub fn socket_ends(info: SocketInfo) -> Option<SocketEnds> {
    let ip = |addr: [u8; 16]| -> IpAddr {
        match info.family {
            AF_INET => Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).into(),
            _ => Ipv6Addr::from(addr).into(),
        }
    };
    if info.family != AF_INET && info.family != AF_INET6 {
        return None;
    }
    Some(SocketEnds {
        protocol: info.protocol,
        local: SocketAddr::new(ip(info.local), info.local_port),
        remote: (info.remote_port != 0).then(|| SocketAddr::new(ip(info.remote), info.remote_port)),
    })
}

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_network_syscall_exists_on_both_architectures() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let filter = NetworkConfig::default().filter(arch);
            assert_eq!(filter.arg_types.len(), SYSCALLS.len(), "{arch:?}");
        }
        let off = NetworkConfig {
            enabled: false,
            ..NetworkConfig::default()
        };
        assert!(off.filter(Arch::NATIVE).is_empty());
        assert!(!off.dns_enabled(), "DNS needs the network sensor");
        for name in SYSCALLS {
            assert!(op(name).is_some(), "{name}");
        }
        assert_eq!(op("sendto"), None);
    }
}
