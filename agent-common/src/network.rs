//! TCP state changes from the `sock:inet_sock_set_state` tracepoint: a connection's close, and
//! the outcome of a connect that was still in progress when its syscall returned.

use crate::event::Header;

/// TCP states, as the kernel numbers them (`include/net/tcp_states.h`).
pub const TCP_ESTABLISHED: u32 = 1;
pub const TCP_SYN_SENT: u32 = 2;
pub const TCP_SYN_RECV: u32 = 3;
pub const TCP_FIN_WAIT1: u32 = 4;
pub const TCP_FIN_WAIT2: u32 = 5;
pub const TCP_CLOSE: u32 = 7;
pub const TCP_CLOSE_WAIT: u32 = 8;
pub const TCP_LAST_ACK: u32 = 9;
pub const TCP_CLOSING: u32 = 11;

/// The header's task is the socket's owner: the task that connected it (recorded when the
/// socket entered SYN_SENT, which happens inside connect). Without it, the state changed on
/// a socket Vigil saw no connect for (an accepted one, or one connected before the agent
/// started); the header then names no task (pid and tgid 0), because the change usually
/// runs in softirq context, on behalf of whatever task was interrupted.
pub const TCP_STATE_OWNER_KNOWN: u32 = 1 << 0;

/// `inet_sock_set_state`, for the transitions Vigil reports (see the kernel program).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpStateEvent {
    pub header: Header,
    pub old_state: u32,
    pub new_state: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Host order.
    pub sport: u16,
    pub dport: u16,
    pub protocol: u16,
    /// `TCP_STATE_*` flags.
    pub flags: u32,
    pub _pad: u32,
    /// IPv4 in the first four bytes (AF_INET), else IPv6.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

const _: () = assert!(size_of::<TcpStateEvent>() == 96);
const _: () = assert!(core::mem::offset_of!(TcpStateEvent, saddr) == 64);

/// Field offsets of the classic tracepoint's record (`events/sock/inet_sock_set_state/format`),
/// stable since Linux 4.16. Userspace checks them against the format file before attaching.
pub mod format {
    pub const OLDSTATE: usize = 16;
    pub const NEWSTATE: usize = 20;
    pub const SPORT: usize = 24;
    pub const DPORT: usize = 26;
    pub const FAMILY: usize = 28;
    pub const PROTOCOL: usize = 30;
    pub const SADDR: usize = 32;
    pub const DADDR: usize = 36;
    pub const SADDR_V6: usize = 40;
    pub const DADDR_V6: usize = 56;
    pub const SKADDR: usize = 8;

    /// (field name, offset) as the format file spells them.
    pub const FIELDS: [(&str, usize); 11] = [
        ("skaddr", SKADDR),
        ("oldstate", OLDSTATE),
        ("newstate", NEWSTATE),
        ("sport", SPORT),
        ("dport", DPORT),
        ("family", FAMILY),
        ("protocol", PROTOCOL),
        ("saddr", SADDR),
        ("daddr", DADDR),
        ("saddr_v6", SADDR_V6),
        ("daddr_v6", DADDR_V6),
    ];
}

/// The DNS payload of a query is copied with at most this many bytes: a classic UDP DNS
/// message, which holds any question (a name is at most 255 bytes).
pub const DNS_PAYLOAD_MAX: usize = 512;
/// The server port whose traffic is taken for DNS.
pub const DNS_PORT: u16 = 53;
/// The payload was longer than [`DNS_PAYLOAD_MAX`]: only its first bytes follow.
pub const DNS_PAYLOAD_TRUNCATED: u16 = 1 << 0;
/// Over TCP: the payload starts with the two-byte message length (RFC 1035 4.2.2).
pub const DNS_OVER_TCP: u16 = 1 << 1;

/// A packet leaving a socket of the node for port 53 (`cgroup_skb/egress` at the cgroup v2
/// root): the addresses and the DNS payload, which userspace decodes. The header names the
/// sending task (`start_time_ns` 0: the program cannot read the task, userspace fills it in).
///
/// Trailing data: `payload_len` bytes of DNS payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DnsEvent {
    pub header: Header,
    /// `AF_INET` or `AF_INET6` (of the packet, not the socket: a v4-mapped socket sends IPv4).
    pub family: u16,
    /// `IPPROTO_UDP` or `IPPROTO_TCP`.
    pub protocol: u16,
    /// Host order.
    pub sport: u16,
    pub dport: u16,
    /// Bytes of payload that follow the fixed part.
    pub payload_len: u16,
    /// `DNS_*` flags.
    pub flags: u16,
    /// Length of the whole payload in the packet.
    pub wire_len: u32,
    /// IPv4 in the first four bytes (AF_INET), else IPv6.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

const _: () = assert!(size_of::<DnsEvent>() == 88);
const _: () = assert!(core::mem::offset_of!(DnsEvent, saddr) == 56);
