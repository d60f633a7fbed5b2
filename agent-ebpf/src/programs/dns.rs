//! DNS queries: `cgroup_skb/egress` attached at the cgroup v2 root (Linux 4.10+), so it sees
//! every packet any socket of the node sends, whatever syscall (write, sendmmsg, io_uring)
//! sent it and in whichever network namespace. Emits a [`DnsEvent`] with the DNS payload of
//! each packet for port 53 (UDP, and TCP segments that carry data); everything else costs a
//! few header loads. The sender is the current task (`bpf_get_current_task`, which cgroup
//! programs may call with CAP_PERFMON): UDP is sent in the sender's context; a TCP segment
//! sent later from softirq (a retransmit) may name the wrong task. The cgroup is always the
//! socket's.
//! Capture only: every packet passes, whatever happens here.

use aya_ebpf::{
    helpers::{
        bpf_get_current_task, bpf_ktime_get_boot_ns,
        generated::{bpf_skb_cgroup_id, bpf_skb_load_bytes},
    },
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use vigil_common::{
    event::{EventKind, Header},
    network::{DNS_OVER_TCP, DNS_PAYLOAD_MAX, DNS_PAYLOAD_TRUNCATED, DNS_PORT, DnsEvent},
    stats::KernelCounter,
};

use crate::{
    emit::{KindCounters, output},
    helpers::task,
    maps::{DNS_SCRATCH, count},
};

const DNS: KindCounters = KindCounters {
    submitted: KernelCounter::SubmittedDns,
    full: KernelCounter::RingbufFullDns,
};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// Lets the packet through (cgroup_skb: 1 allows, 0 drops).
const PASS: i32 = 1;

/// `cgroup_skb/egress`: copies the DNS payload of packets for port 53. Always passes them.
#[cgroup_skb]
pub fn network_dns(ctx: SkBuffContext) -> i32 {
    let _ = try_network_dns(&ctx);
    PASS
}

/// Where the packet's transport header starts, and its addresses.
struct Ip {
    family: u16,
    protocol: u8,
    l4: usize,
    saddr: [u8; 16],
    daddr: [u8; 16],
}

#[inline(always)]
fn try_network_dns(ctx: &SkBuffContext) -> Result<(), i64> {
    // `__sk_buff.protocol` holds the big-endian ethertype; the data starts at the IP header.
    let ethertype = u16::from_be(ctx.skb.protocol() as u16);
    let ip = match ethertype {
        ETH_P_IP => ipv4(ctx)?,
        ETH_P_IPV6 => ipv6(ctx)?,
        _ => return Ok(()),
    };
    if ip.protocol != IPPROTO_UDP && ip.protocol != IPPROTO_TCP {
        return Ok(());
    }
    let dport = u16::from_be(ctx.load::<u16>(ip.l4 + 2)?);
    if dport != DNS_PORT {
        return Ok(());
    }
    let sport = u16::from_be(ctx.load::<u16>(ip.l4)?);
    let (payload, flags) = if ip.protocol == IPPROTO_UDP {
        (ip.l4 + 8, 0)
    } else {
        let offset = ctx.load::<u8>(ip.l4 + 12)?;
        (ip.l4 + usize::from(offset >> 4) * 4, DNS_OVER_TCP)
    };
    let len = ctx.len() as usize;
    if payload >= len {
        // A TCP segment without data (handshake, ack, fin).
        return Ok(());
    }
    let wire_len = len - payload;
    let (copy, flags) = if wire_len > DNS_PAYLOAD_MAX {
        (DNS_PAYLOAD_MAX, flags | DNS_PAYLOAD_TRUNCATED)
    } else {
        (wire_len, flags)
    };
    let Some(record) = DNS_SCRATCH.get_ptr_mut(0) else {
        count(KernelCounter::ScratchUnavailable);
        return Ok(());
    };
    // In [1, DNS_PAYLOAD_MAX] for the verifier, and equal to `copy`, which is in that range.
    let copy = ((copy - 1) & (DNS_PAYLOAD_MAX - 1)) + 1;
    // SAFETY: `record` is this CPU's scratch entry, valid for the program's run; the helper
    // writes at most `copy <= DNS_PAYLOAD_MAX` bytes into its payload.
    let ret = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            payload as u32,
            (&raw mut (*record).payload).cast(),
            copy as u32,
        )
    };
    if ret != 0 {
        return Err(ret);
    }
    // SAFETY: helper without arguments; the task is only read through probe reads.
    let current = unsafe { bpf_get_current_task() } as *const u8;
    let ids = task::ids(current);
    let header = Header {
        kind: EventKind::Dns as u16,
        _pad: 0,
        size: (size_of::<DnsEvent>() + copy) as u32,
        // SAFETY: helper without arguments.
        time_ns: unsafe { bpf_ktime_get_boot_ns() },
        pid: ids.pid,
        tgid: ids.tgid,
        start_time_ns: ids.start_time_ns,
        // The socket's cgroup: the sender's in process context, and still right in softirq.
        // SAFETY: the program's own skb.
        cgroup_id: unsafe { bpf_skb_cgroup_id(ctx.skb.skb.cast()) },
    };
    let event = DnsEvent {
        header,
        family: ip.family,
        protocol: u16::from(ip.protocol),
        sport,
        dport,
        payload_len: copy as u16,
        flags,
        wire_len: wire_len as u32,
        saddr: ip.saddr,
        daddr: ip.daddr,
    };
    // SAFETY: as above; the fixed part goes in place before the payload.
    unsafe { (&raw mut (*record).event).write(event) };
    let size = size_of::<DnsEvent>() + copy;
    // SAFETY: `size <= size_of::<DnsRecord>()`, within the entry.
    let bytes = unsafe { core::slice::from_raw_parts(record.cast::<u8>(), size) };
    output(DNS, bytes);
    Ok(())
}

#[inline(always)]
fn ipv4(ctx: &SkBuffContext) -> Result<Ip, i64> {
    let version_ihl = ctx.load::<u8>(0)?;
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    // A later fragment carries no transport header.
    let fragment = u16::from_be(ctx.load::<u16>(6)?);
    if version_ihl >> 4 != 4 || ihl < 20 || fragment & 0x1fff != 0 {
        return Err(0);
    }
    let mut saddr = [0u8; 16];
    let mut daddr = [0u8; 16];
    saddr[..4].copy_from_slice(&ctx.load::<[u8; 4]>(12)?);
    daddr[..4].copy_from_slice(&ctx.load::<[u8; 4]>(16)?);
    Ok(Ip {
        family: AF_INET,
        protocol: ctx.load::<u8>(9)?,
        l4: ihl,
        saddr,
        daddr,
    })
}

/// IPv6 with the transport header right after the fixed header (extension headers are not
/// walked; DNS queries do not use them).
#[inline(always)]
fn ipv6(ctx: &SkBuffContext) -> Result<Ip, i64> {
    Ok(Ip {
        family: AF_INET6,
        protocol: ctx.load::<u8>(6)?,
        l4: 40,
        saddr: ctx.load::<[u8; 16]>(8)?,
        daddr: ctx.load::<[u8; 16]>(24)?,
    })
}
