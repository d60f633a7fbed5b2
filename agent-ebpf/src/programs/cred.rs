//! Credential changes, on the syscall sensor's raw tracepoints `sys_enter`/`sys_exit` (Linux
//! 4.17+; no kprobe, no BPF-LSM `cred_prepare`/`commit_creds` hook needed). Called from
//! [`super::syscall`] for the syscalls whose arg-type word has [`ARG_TYPES_CRED`] (the setuid
//! family, capset, and prctl with a credential option): at enter the thread's `struct cred` is
//! snapshotted into a per-thread stash; at exit, if the task's cred pointer moved and a
//! reported field differs, one [`CredChangeEvent`] carries both snapshots. A syscall that
//! changed nothing (most failures) emits nothing. Capture only: an internal error loses the
//! event (counted), never the syscall.
//!
//! Riding on the syscall hooks instead of a second pair of programs keeps the cost for every
//! other syscall of the node at zero: the bitmap check they already pass selects these too.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_ktime_get_boot_ns};
use vigil_common::{
    cred::{
        CRED_NO_AMBIENT, CredChangeEvent, CredSnapshot, PR_CAP_AMBIENT, PR_CAPBSET_DROP,
        PR_SET_KEEPCAPS, PR_SET_SECUREBITS,
    },
    event::EventKind,
    offsets::OFFSET_MISSING,
    stats::KernelCounter,
    syscall::ARG_TYPES_CRED_PRCTL,
};

use crate::{
    emit::{KindCounters, output},
    helpers::{
        kread::{Probe, read_at, read_ptr},
        task,
    },
    maps::{CRED_SCRATCH, CRED_STASH, count, offset},
};

const CRED: KindCounters = KindCounters {
    submitted: KernelCounter::SubmittedCred,
    full: KernelCounter::RingbufFullCred,
};

/// At `sys_enter` of a credential syscall (`types` is its arg-type word): stashes the thread's
/// credentials under `key` (its pid_tgid).
#[inline(always)]
pub fn enter(key: u64, nr: u32, types: u32, regs: *const u8) {
    if types & ARG_TYPES_CRED_PRCTL != 0 {
        let option = read_at::<u64>(regs, offset!(regs_arg0));
        if !matches!(
            option,
            PR_SET_KEEPCAPS | PR_CAPBSET_DROP | PR_SET_SECUREBITS | PR_CAP_AMBIENT
        ) {
            return;
        }
    }
    let Some(record) = CRED_SCRATCH.get_ptr_mut(0) else {
        count(KernelCounter::CredStashFull);
        return;
    };
    // SAFETY: helper without arguments; the task is only read through probe reads.
    let current = unsafe { bpf_get_current_task() } as *const u8;
    let cred = read_ptr(current, offset!(task_cred));
    let header = task::header(
        EventKind::CredChange,
        size_of::<CredChangeEvent>(),
        task::ids::<Probe>(current),
    );
    let flags = if offset!(cred_cap_ambient) == OFFSET_MISSING {
        CRED_NO_AMBIENT
    } else {
        0
    };
    let before = read_cred(cred);
    // SAFETY: `record` points at this CPU's scratch entry, valid for the program's run; the
    // fields are written in place (the record is too big for the stack next to the syscall
    // path's).
    unsafe {
        (*record).cred = cred as u64;
        let event = &raw mut (*record).event;
        (*event).header = header;
        (*event).nr = nr;
        (*event).flags = flags;
        (*event).ret = 0;
        (*event).exit_time_ns = 0;
        (*event).before = before;
    }
    // SAFETY: `record` is a valid map value for the duration of the call; the helper copies it.
    if CRED_STASH.insert(key, unsafe { &*record }, 0).is_err() {
        count(KernelCounter::CredStashFull);
    }
}

/// At `sys_exit` of a credential syscall: emits the change, if there was one, of the thread
/// stashed under `key`.
#[inline(always)]
pub fn exit(key: u64, ret: i64) {
    let Some(record) = CRED_STASH.get_ptr_mut(key) else {
        // Not stashed: filtered at enter (cgroup, prctl option), lost (counted), or attached
        // mid-syscall.
        return;
    };
    // SAFETY: helper without arguments; the task is only read through probe reads.
    let current = unsafe { bpf_get_current_task() } as *const u8;
    let cred = read_ptr(current, offset!(task_cred));
    // SAFETY: `record` is this thread's stash entry; only this thread writes it, and it is
    // deleted only below.
    let (stashed, event) = unsafe { ((*record).cred, &mut (*record).event) };
    if cred as u64 != stashed {
        event.after = read_cred(cred);
        if differs(&event.before, &event.after) {
            event.ret = ret;
            // SAFETY: helper without arguments.
            event.exit_time_ns = unsafe { bpf_ktime_get_boot_ns() };
            // SAFETY: the event is a plain `repr(C)` struct of integers inside the entry.
            let bytes = unsafe {
                core::slice::from_raw_parts(
                    (event as *const CredChangeEvent).cast::<u8>(),
                    size_of::<CredChangeEvent>(),
                )
            };
            output(CRED, bytes);
        }
    }
    let _ = CRED_STASH.remove(key);
}

/// The reported fields of the `struct cred` at `cred`.
#[inline(always)]
fn read_cred(cred: *const u8) -> CredSnapshot {
    CredSnapshot {
        uid: read_at(cred, offset!(cred_uid)),
        gid: read_at(cred, offset!(cred_gid)),
        suid: read_at(cred, offset!(cred_suid)),
        sgid: read_at(cred, offset!(cred_sgid)),
        euid: read_at(cred, offset!(cred_euid)),
        egid: read_at(cred, offset!(cred_egid)),
        fsuid: read_at(cred, offset!(cred_fsuid)),
        fsgid: read_at(cred, offset!(cred_fsgid)),
        securebits: read_at(cred, offset!(cred_securebits)),
        _pad: 0,
        cap_inheritable: read_at(cred, offset!(cred_cap_inheritable)),
        cap_permitted: read_at(cred, offset!(cred_cap_permitted)),
        cap_effective: read_at(cred, offset!(cred_cap_effective)),
        cap_bset: read_at(cred, offset!(cred_cap_bset)),
        // `read_at` gives 0 for a missing offset, without counting a failed read.
        cap_ambient: read_at(cred, offset!(cred_cap_ambient)),
    }
}

/// Whether a reported field differs. Branch-free, and field by field: a derived `==` may be
/// merged into a `memcmp` call, which BPF does not have.
#[inline(always)]
fn differs(a: &CredSnapshot, b: &CredSnapshot) -> bool {
    let ids = (a.uid ^ b.uid)
        | (a.gid ^ b.gid)
        | (a.suid ^ b.suid)
        | (a.sgid ^ b.sgid)
        | (a.euid ^ b.euid)
        | (a.egid ^ b.egid)
        | (a.fsuid ^ b.fsuid)
        | (a.fsgid ^ b.fsgid)
        | (a.securebits ^ b.securebits);
    let caps = (a.cap_inheritable ^ b.cap_inheritable)
        | (a.cap_permitted ^ b.cap_permitted)
        | (a.cap_effective ^ b.cap_effective)
        | (a.cap_bset ^ b.cap_bset)
        | (a.cap_ambient ^ b.cap_ambient);
    ids != 0 || caps != 0
}
