//! BPF-LSM enforcement: the same deny maps as `enforce`, decided before the operation
//! instead of after it. Where the kernel runs BPF-LSM programs (booted with `bpf` among its
//! LSMs, BPF trampolines available) userspace attaches these in place of the fallbacks:
//! - `bprm_check_security` refuses a denied exec with EPERM: the new program is never
//!   loaded, the caller's exec returns an error (kill-on-exec is the fallback);
//! - `file_open` refuses the open of a denied file (no fallback in the kernel: without
//!   BPF-LSM there is no hook that can refuse an open);
//! - `socket_connect` refuses a denied connect with EPERM for every socket family the maps
//!   can name (the cgroup `connect4/6` programs are the fallback; the `sendmsg4/6` ones
//!   stay in both cases, for unconnected UDP).
//!
//! Each program first honours an earlier LSM's refusal, and **fails open** like the
//! fallbacks: an unreadable kernel field allows the operation and is counted.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::lsm, programs::LsmContext};
use vigil_common::enforce::{EnforceAction, EnforceCounter, ExecRule, FileKey};

use super::enforce::{Dest, FailOpen, control, count, denied_dest, denied_file, record};
use crate::maps::{EXEC_DENY, OPEN_DENY, offset};

const EPERM: i32 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// `lsm/bprm_check_security(struct linux_binprm *bprm)`: EPERM for a denied executable,
/// or one below a denied directory, in the rule's cgroup scope. Linux 5.7+ with BPF-LSM.
/// Emits an `exec_denied` record. Fails open.
#[lsm(hook = "bprm_check_security")]
pub fn enforce_lsm_exec(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(1);
    if earlier != 0 {
        return earlier;
    }
    let control = control();
    if control.exec_rules == 0 {
        return 0;
    }
    count(EnforceCounter::ExecChecked);
    let bprm: *const u8 = ctx.arg(0);
    let file = crate::helpers::kread::read_ptr(bprm, offset!(bprm_file));
    file_verdict(
        denied_file(&EXEC_DENY, file, control.exec_dir_rules != 0),
        EnforceCounter::ExecDenied,
        EnforceAction::ExecDenied,
    )
}

/// The hook's return value for a file check: EPERM (counted and recorded) when a rule
/// denies, 0 otherwise and on failure (fail open, counted).
#[inline(always)]
fn file_verdict(
    check: Result<Option<(&'static mut ExecRule, FileKey)>, FailOpen>,
    counter: EnforceCounter,
    action: EnforceAction,
) -> i32 {
    match check {
        Ok(Some((rule, key))) => {
            rule.hits += 1;
            count(counter);
            record(action, rule.rule_id, key, [0; 16]);
            -EPERM
        }
        Ok(None) => 0,
        Err(FailOpen) => {
            count(EnforceCounter::FailedOpen);
            0
        }
    }
}

/// `lsm/file_open(struct file *file)`: EPERM for the open of a denied file, or of a file
/// below a denied directory, in the rule's cgroup scope. Linux 5.7+ with BPF-LSM. Returns
/// at once while no open rule exists (it runs on every open of the node). Emits an
/// `open_denied` record. Fails open.
#[lsm(hook = "file_open")]
pub fn enforce_lsm_open(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(1);
    if earlier != 0 {
        return earlier;
    }
    if control().open_rules == 0 {
        return 0;
    }
    let file: *const u8 = ctx.arg(0);
    // Directory rules are always walked: an open rule on a directory is the common case
    // (protect everything below /etc/secret), and the walk stops at the first match.
    file_verdict(
        denied_file(&OPEN_DENY, file, true),
        EnforceCounter::OpenDenied,
        EnforceAction::OpenDenied,
    )
}

/// `lsm/socket_connect(struct socket *sock, struct sockaddr *address, int addrlen)`: EPERM
/// for a destination the current cgroup (or one above it) denies, as the cgroup `connect4/6`
/// programs decide. `address` is the kernel's copy of the caller's sockaddr. Linux 5.7+
/// with BPF-LSM. Emits a `connect_denied` record. Fails open.
#[lsm(hook = "socket_connect")]
pub fn enforce_lsm_connect(ctx: LsmContext) -> i32 {
    let earlier: i32 = ctx.arg(3);
    if earlier != 0 {
        return earlier;
    }
    if control().net_policies == 0 {
        return 0;
    }
    let address: *const u8 = ctx.arg(1);
    let len: i32 = ctx.arg(2);
    match destination(address, len) {
        Ok(Some(dest)) => {
            if denied_dest(&dest, EnforceAction::ConnectDenied) {
                -EPERM
            } else {
                0
            }
        }
        Ok(None) => 0,
        Err(FailOpen) => {
            count(EnforceCounter::FailedOpen);
            0
        }
    }
}

/// The destination of an IPv4 or IPv6 sockaddr (IPv4-mapped IPv6 as IPv4); `None` for other
/// families (unix, netlink, `AF_UNSPEC` disconnects), which no rule names.
#[inline(always)]
fn destination(address: *const u8, len: i32) -> Result<Option<Dest>, FailOpen> {
    // SAFETY: `bpf_probe_read_kernel` checks the address; a fault is an error, not taken.
    let read =
        |at: usize| unsafe { bpf_probe_read_kernel(address.wrapping_add(at).cast::<[u8; 16]>()) };
    // SAFETY: as above.
    let family = unsafe { bpf_probe_read_kernel(address.cast::<u16>()) }.map_err(|_| FailOpen)?;
    match family {
        // struct sockaddr_in: family, port (network order) at 2, address at 4.
        AF_INET if len >= 8 => {
            let head = read(0).map_err(|_| FailOpen)?;
            let mut addr = [0u8; 16];
            addr[0] = head[4];
            addr[1] = head[5];
            addr[2] = head[6];
            addr[3] = head[7];
            Ok(Some(Dest {
                addr,
                v4: true,
                port: u16::from_be_bytes([head[2], head[3]]),
            }))
        }
        // struct sockaddr_in6: family, port at 2, flow info at 4, address at 8.
        AF_INET6 if len >= 24 => {
            let head = read(0).map_err(|_| FailOpen)?;
            let ip = read(8).map_err(|_| FailOpen)?;
            let port = u16::from_be_bytes([head[2], head[3]]);
            let words = [
                u32::from_ne_bytes([ip[0], ip[1], ip[2], ip[3]]),
                u32::from_ne_bytes([ip[4], ip[5], ip[6], ip[7]]),
                u32::from_ne_bytes([ip[8], ip[9], ip[10], ip[11]]),
            ];
            let mapped = words[0] == 0 && words[1] == 0 && words[2] == u32::from_be(0xffff);
            let mut addr = ip;
            if mapped {
                addr = [0u8; 16];
                addr[0] = ip[12];
                addr[1] = ip[13];
                addr[2] = ip[14];
                addr[3] = ip[15];
            }
            Ok(Some(Dest {
                addr,
                v4: mapped,
                port,
            }))
        }
        _ => Ok(None),
    }
}
