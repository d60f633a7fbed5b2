//! What the kernel did: the records of the actions the enforcement programs took (their
//! ring buffer) and their per-CPU counters.

use std::net::IpAddr;

use serde::Serialize;
use vigil_common::enforce::{EnforceAction, EnforceCounter, EnforceRecord};

use super::Enforcer;

/// One action the kernel took, from the enforcement ring buffer.
#[derive(Clone, Debug, Serialize)]
pub struct KernelAction {
    pub action: &'static str,
    pub rule_id: u32,
    pub time_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub cgroup_id: u64,
    pub comm: String,
    /// Exec: the executable's kernel identity.
    pub dev: u32,
    pub ino: u64,
    /// Network: the destination.
    pub destination: Option<std::net::SocketAddr>,
}

impl Enforcer {
    /// The enforcement programs' counters, summed over CPUs.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        EnforceCounter::ALL
            .iter()
            .map(|&c| {
                let sum = self
                    .maps
                    .stats
                    .get(&(c as u32), 0)
                    .map(|v| v.iter().sum())
                    .unwrap_or(0);
                (c.name(), sum)
            })
            .collect()
    }

    /// Takes the records of the actions the kernel took since the last call.
    pub fn drain_actions(&mut self) -> Vec<KernelAction> {
        let mut out = Vec::new();
        let Some(events) = self.maps.events.as_mut() else {
            return out;
        };
        while let Some(item) = events.next() {
            if item.len() < size_of::<EnforceRecord>() {
                continue;
            }
            // SAFETY: at least size_of::<EnforceRecord>() bytes; a repr(C) integer struct.
            let raw: EnforceRecord =
                unsafe { item.as_ptr().cast::<EnforceRecord>().read_unaligned() };
            out.push(decode_action(&raw));
        }
        out
    }
}

fn decode_action(raw: &EnforceRecord) -> KernelAction {
    let action = EnforceAction::from_u32(raw.action);
    let comm_len = raw
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(raw.comm.len());
    let destination = match action {
        Some(EnforceAction::ConnectDenied | EnforceAction::SendmsgDenied) => {
            let port = raw.file.dev as u16;
            // The kernel wrote IPv4 destinations (and IPv4-mapped ones) into the first four
            // bytes and left the rest zero.
            let ip = if raw.addr[4..].iter().all(|&b| b == 0) {
                IpAddr::from([raw.addr[0], raw.addr[1], raw.addr[2], raw.addr[3]])
            } else {
                IpAddr::from(raw.addr)
            };
            Some(std::net::SocketAddr::new(ip, port))
        }
        _ => None,
    };
    KernelAction {
        action: action.map_or("unknown", EnforceAction::name),
        rule_id: raw.rule_id,
        time_ns: raw.time_ns,
        pid: raw.pid,
        tgid: raw.tgid,
        cgroup_id: raw.cgroup_id,
        comm: String::from_utf8_lossy(&raw.comm[..comm_len]).into_owned(),
        dev: raw.file.dev,
        ino: raw.file.ino,
        destination,
    }
}
