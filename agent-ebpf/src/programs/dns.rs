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
    helpers::{kread::Probe, task},
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

/// A `T` of the packet's headers at `offset`: plain loads from its linear part when it lies
/// there (it does for the headers the node builds), `bpf_skb_load_bytes` otherwise. Every packet
/// the node sends reads two of these; as helper calls they were 40% of the program's samples in
/// the connect storm's profile.
#[inline(always)]
fn header<T: Copy>(ctx: &SkBuffContext, offset: usize) -> Result<T, i64> {
    // SAFETY: the program's own context; `data` and `data_end` bound the linear part.
    let (data, end) = unsafe {
        (
            (*ctx.skb.skb).data as usize,
            (*ctx.skb.skb).data_end as usize,
        )
    };
    if data + offset + size_of::<T>() <= end {
        // SAFETY: within the linear part, as checked just above (and by the verifier).
        return Ok(unsafe { ((data + offset) as *const T).read_unaligned() });
    }
    ctx.load::<T>(offset)
}

/// Where the packet's transport header starts. The addresses are read only for a DNS packet:
/// every load is a helper call, and this program runs on every packet the node sends.
struct Ip {
    family: u16,
    protocol: u8,
    l4: usize,
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
    let ports = header::<[u8; 4]>(ctx, ip.l4)?;
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    if dport != DNS_PORT {
        return Ok(());
    }
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let (saddr, daddr) = addresses(ctx, ip.family)?;
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
    let ids = task::ids::<Probe>(current);
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
        saddr,
        daddr,
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
    // Version and header length, the fragment offset and the protocol: one load.
    let head = header::<[u8; 10]>(ctx, 0)?;
    let ihl = usize::from(head[0] & 0x0f) * 4;
    // A later fragment carries no transport header.
    let fragment = u16::from_be_bytes([head[6], head[7]]);
    if head[0] >> 4 != 4 || ihl < 20 || fragment & 0x1fff != 0 {
        return Err(0);
    }
    Ok(Ip {
        family: AF_INET,
        protocol: head[9],
        l4: ihl,
    })
}

/// IPv6 with the transport header right after the fixed header (extension headers are not
/// walked; DNS queries do not use them).
#[inline(always)]
fn ipv6(ctx: &SkBuffContext) -> Result<Ip, i64> {
    Ok(Ip {
        family: AF_INET6,
        protocol: header::<u8>(ctx, 6)?,
        l4: 40,
    })
}

/// Source and destination address (IPv4 in the first four bytes).
#[inline(always)]
fn addresses(ctx: &SkBuffContext, family: u16) -> Result<([u8; 16], [u8; 16]), i64> {
    if family == AF_INET6 {
        return Ok((ctx.load::<[u8; 16]>(8)?, ctx.load::<[u8; 16]>(24)?));
    }
    let both = ctx.load::<[u8; 8]>(12)?;
    let (mut saddr, mut daddr) = ([0u8; 16], [0u8; 16]);
    saddr[..4].copy_from_slice(&both[..4]);
    daddr[..4].copy_from_slice(&both[4..]);
    Ok((saddr, daddr))
}
