//! Enforcement: the decisions the kernel takes synchronously, from deny maps that userspace
//! fills (and pins, so they hold while the agent is down).
//! - Kill-on-exec: the `sched_process_exec` raw tracepoint runs after the new image is
//!   loaded and before the task returns to user mode, so a SIGKILL sent there is delivered
//!   before the first instruction of the new program.
//! - Connect deny: `cgroup/connect{4,6}` and `cgroup/sendmsg{4,6}` at the cgroup v2 root
//!   return 0 (the caller gets EPERM) for a denied destination of a cgroup, or of a cgroup
//!   below it.
//!
//! Every program here **fails open**: when something cannot be read the operation goes on
//! and `EnforceCounter::FailedOpen` counts it. A bug in Vigil must not take a node down.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_boot_ns,
        generated::{bpf_get_current_ancestor_cgroup_id, bpf_send_signal},
    },
    macros::{cgroup_sock_addr, raw_tracepoint},
    maps::{HashMap, lpm_trie::Key},
    programs::{RawTracePointContext, SockAddrContext},
};
use vigil_common::enforce::{
    CGROUP_LEVELS_MAX, EXEC_DIR_DEPTH, EXEC_RULE_DIR, EXEC_RULE_FILE, EXEC_SCOPES_MAX,
    EnforceAction, EnforceControl, EnforceCounter, EnforceRecord, ExecRule, FileKey, NET_CIDRS,
    NET_ISOLATE, NET_PORTS_MAX, NetKeyV4, NetKeyV6, NetRule,
};

use crate::{
    helpers::kread::{read_at, read_ptr},
    maps::{
        ENFORCE_CONTROL, ENFORCE_EVENTS, ENFORCE_STATS, EXEC_DENY, NET_DENY_V4, NET_DENY_V6,
        NET_POLICY, offset,
    },
};

const SIGKILL: u32 = 9;
/// cgroup_sock_addr verdicts.
const ALLOW: i32 = 1;
const DENY: i32 = 0;

/// The check could not complete; the operation is allowed.
pub(super) struct FailOpen;

#[inline(always)]
pub(super) fn count(counter: EnforceCounter) {
    if let Some(slot) = ENFORCE_STATS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot; only this CPU writes it.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub(super) fn control() -> EnforceControl {
    ENFORCE_CONTROL.get(0).copied().unwrap_or_default()
}

/// Emits one record; a full buffer is counted (the action itself was taken).
#[inline(always)]
pub(super) fn record(action: EnforceAction, rule_id: u32, file: FileKey, addr: [u8; 16]) {
    let ids = bpf_get_current_pid_tgid();
    let event = EnforceRecord {
        // SAFETY: helpers without arguments.
        time_ns: unsafe { bpf_ktime_get_boot_ns() },
        action: action as u32,
        rule_id,
        pid: ids as u32,
        tgid: (ids >> 32) as u32,
        // SAFETY: as above.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        file,
        addr,
        comm: bpf_get_current_comm().unwrap_or_default(),
    };
    match ENFORCE_EVENTS.reserve::<EnforceRecord>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(0);
        }
        None => count(EnforceCounter::RecordLost),
    }
}

/// The current task's cgroup v2 id at `level` below the root (0: the root), or 0 below the
/// current cgroup's own level.
#[inline(always)]
fn ancestor(level: usize) -> u64 {
    // SAFETY: a helper taking an integer; out-of-range levels return 0.
    unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) }
}

/// Whether the current task is in one of the rule's scopes (or below one).
#[inline(always)]
fn in_scope(rule: &ExecRule) -> bool {
    let n = rule.nscopes as usize;
    if n == 0 {
        return true;
    }
    // Level 0 is the root, which a scope never names (userspace refuses it).
    for level in 1..CGROUP_LEVELS_MAX {
        let id = ancestor(level);
        if id == 0 {
            return false;
        }
        for i in 0..EXEC_SCOPES_MAX {
            if i < n && rule.scopes[i] == id {
                return true;
            }
        }
    }
    false
}

/// `raw_tp/sched_process_exec(task, old_pid, bprm)`: kills the task when its executable, or
/// a directory above it, is denied for the task's cgroup. Linux 4.17+ (raw tracepoints,
/// `bpf_send_signal` 5.3+, `bpf_get_current_ancestor_cgroup_id` for tracing 5.?+). Emits an
/// [`EnforceRecord`] per kill. Fails open.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn enforce_exec(ctx: RawTracePointContext) -> i32 {
    if try_enforce_exec(&ctx).is_err() {
        count(EnforceCounter::FailedOpen);
    }
    0
}

fn try_enforce_exec(ctx: &RawTracePointContext) -> Result<(), FailOpen> {
    let control = control();
    if control.exec_rules == 0 {
        return Ok(());
    }
    count(EnforceCounter::ExecChecked);
    let bprm: *const u8 = ctx.arg(2);
    let file = read_ptr(bprm, offset!(bprm_file));
    if let Some((rule, exe)) = denied_file(&EXEC_DENY, file, control.exec_dir_rules != 0)? {
        kill(rule, exe);
    }
    Ok(())
}

/// The rule of `map` that denies `file` for the current task: one naming the file, or (with
/// `dirs`) one naming a directory above it within its filesystem (a parent on another mount
/// is not looked at: the walk stops at this filesystem's root). Also returns the file's
/// identity.
#[inline(always)]
pub(super) fn denied_file(
    map: &HashMap<FileKey, ExecRule>,
    file: *const u8,
    dirs: bool,
) -> Result<Option<(&'static mut ExecRule, FileKey)>, FailOpen> {
    let inode = read_ptr(file, offset!(file_inode));
    if inode.is_null() {
        return Err(FailOpen);
    }
    let dev = read_at::<u32>(read_ptr(inode, offset!(inode_sb)), offset!(sb_dev));
    let ino = read_at::<u64>(inode, offset!(inode_ino));
    let key = FileKey { dev, _pad: 0, ino };
    if let Some(rule) = map.get_ptr_mut(key) {
        // SAFETY: a pointer into the map's value, valid for this program run.
        let rule = unsafe { &mut *rule };
        if rule.flags & (EXEC_RULE_FILE | EXEC_RULE_DIR) != 0 && in_scope(rule) {
            return Ok(Some((rule, key)));
        }
    }
    if !dirs {
        return Ok(None);
    }
    let mut dentry = read_ptr(
        file.wrapping_add(offset!(file_path) as usize),
        offset!(path_dentry),
    );
    for _ in 0..EXEC_DIR_DEPTH {
        let parent = read_ptr(dentry, offset!(dentry_parent));
        if parent.is_null() {
            return Err(FailOpen);
        }
        if parent == dentry {
            return Ok(None);
        }
        let ino = read_at::<u64>(read_ptr(parent, offset!(dentry_inode)), offset!(inode_ino));
        let dir = FileKey { dev, _pad: 0, ino };
        if let Some(rule) = map.get_ptr_mut(dir) {
            // SAFETY: as above.
            let rule = unsafe { &mut *rule };
            if rule.flags & EXEC_RULE_DIR != 0 && in_scope(rule) {
                return Ok(Some((rule, key)));
            }
        }
        dentry = parent;
    }
    Ok(None)
}

#[inline(always)]
fn kill(rule: &mut ExecRule, exe: FileKey) {
    // SAFETY: a helper taking a signal number; it targets the current task's process.
    if unsafe { bpf_send_signal(SIGKILL) } != 0 {
        count(EnforceCounter::SignalFailed);
        return;
    }
    rule.hits += 1;
    count(EnforceCounter::ExecKilled);
    record(EnforceAction::ExecKilled, rule.rule_id, exe, [0; 16]);
}

/// A destination of a connect or sendmsg.
pub(super) struct Dest {
    /// IPv4 (also IPv4-mapped IPv6) in the first four bytes when `v4`.
    pub addr: [u8; 16],
    pub v4: bool,
    /// Host order.
    pub port: u16,
}

/// `cgroup/connect4` at the cgroup v2 root: EPERM for a denied destination. Linux 4.17+.
/// Fails open.
#[cgroup_sock_addr(connect4)]
pub fn enforce_connect4(ctx: SockAddrContext) -> i32 {
    verdict(dest_v4(&ctx), EnforceAction::ConnectDenied)
}

/// `cgroup/connect6` at the cgroup v2 root: as `enforce_connect4`.
#[cgroup_sock_addr(connect6)]
pub fn enforce_connect6(ctx: SockAddrContext) -> i32 {
    verdict(dest_v6(&ctx), EnforceAction::ConnectDenied)
}

/// `cgroup/sendmsg4` at the cgroup v2 root: unconnected UDP sends. Linux 4.18+. Fails open.
#[cgroup_sock_addr(sendmsg4)]
pub fn enforce_sendmsg4(ctx: SockAddrContext) -> i32 {
    verdict(dest_v4(&ctx), EnforceAction::SendmsgDenied)
}

/// `cgroup/sendmsg6` at the cgroup v2 root: as `enforce_sendmsg4`.
#[cgroup_sock_addr(sendmsg6)]
pub fn enforce_sendmsg6(ctx: SockAddrContext) -> i32 {
    verdict(dest_v6(&ctx), EnforceAction::SendmsgDenied)
}

#[inline(always)]
fn dest_v4(ctx: &SockAddrContext) -> Dest {
    let sa = ctx.as_ptr().cast::<aya_ebpf::bindings::bpf_sock_addr>();
    // SAFETY: the context of a cgroup_sock_addr program; the verifier checks each field
    // access (4-byte loads of user_ip4 and user_port).
    let (ip, port) = unsafe { ((*sa).user_ip4, (*sa).user_port) };
    let mut addr = [0u8; 16];
    let b = ip.to_ne_bytes();
    addr[0] = b[0];
    addr[1] = b[1];
    addr[2] = b[2];
    addr[3] = b[3];
    Dest {
        addr,
        v4: true,
        port: u16::from_be(port as u16),
    }
}

#[inline(always)]
fn dest_v6(ctx: &SockAddrContext) -> Dest {
    let sa = ctx.as_ptr().cast::<aya_ebpf::bindings::bpf_sock_addr>();
    // SAFETY: as in `dest_v4`: 4-byte loads of user_ip6[i] and user_port.
    let (w, port) = unsafe {
        (
            [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ],
            (*sa).user_port,
        )
    };
    let port = u16::from_be(port as u16);
    let mapped = w[0] == 0 && w[1] == 0 && w[2] == u32::from_be(0xffff);
    let mut addr = [0u8; 16];
    if mapped {
        let b = w[3].to_ne_bytes();
        addr[0] = b[0];
        addr[1] = b[1];
        addr[2] = b[2];
        addr[3] = b[3];
    } else {
        for (i, word) in w.iter().enumerate() {
            let b = word.to_ne_bytes();
            addr[i * 4] = b[0];
            addr[i * 4 + 1] = b[1];
            addr[i * 4 + 2] = b[2];
            addr[i * 4 + 3] = b[3];
        }
    }
    Dest {
        addr,
        v4: mapped,
        port,
    }
}

#[inline(always)]
fn verdict(dest: Dest, action: EnforceAction) -> i32 {
    if denied_dest(&dest, action) {
        DENY
    } else {
        ALLOW
    }
}

/// Whether the current task's cgroup (or one above it) denies `dest`; a denial is counted
/// and recorded as `action`.
#[inline(always)]
pub(super) fn denied_dest(dest: &Dest, action: EnforceAction) -> bool {
    if control().net_policies == 0 {
        return false;
    }
    // The current cgroup and every cgroup above it (not the root) may hold a policy.
    for level in 1..CGROUP_LEVELS_MAX {
        let id = ancestor(level);
        if id == 0 {
            return false;
        }
        let Some(policy) = NET_POLICY.get_ptr_mut(id) else {
            continue;
        };
        // SAFETY: a pointer into the map's value, valid for this program run.
        let policy = unsafe { &mut *policy };
        let rule_id = if policy.flags & NET_ISOLATE != 0 {
            Some(policy.rule_id)
        } else if policy.flags & NET_CIDRS != 0 {
            cidr_rule(id, dest)
        } else {
            None
        };
        if let Some(rule_id) = rule_id {
            policy.hits += 1;
            count(EnforceCounter::NetDenied);
            let port = FileKey {
                dev: dest.port as u32,
                _pad: 0,
                ino: 0,
            };
            record(action, rule_id, port, dest.addr);
            return true;
        }
    }
    false
}

/// The id of the CIDR rule of cgroup `id` that denies `dest`, if any.
#[inline(always)]
fn cidr_rule(id: u64, dest: &Dest) -> Option<u32> {
    let rule: &NetRule = if dest.v4 {
        let key = Key::new(
            64 + 32,
            NetKeyV4 {
                cgroup_id: id,
                addr: [dest.addr[0], dest.addr[1], dest.addr[2], dest.addr[3]],
                _pad: [0; 4],
            },
        );
        NET_DENY_V4.get(&key)?
    } else {
        let key = Key::new(
            64 + 128,
            NetKeyV6 {
                cgroup_id: id,
                addr: dest.addr,
            },
        );
        NET_DENY_V6.get(&key)?
    };
    let n = rule.nports as usize;
    if n == 0 {
        return Some(rule.rule_id);
    }
    for i in 0..NET_PORTS_MAX {
        if i < n && rule.ports[i] == dest.port {
            return Some(rule.rule_id);
        }
    }
    None
}
