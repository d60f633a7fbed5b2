//! `cred: {syscall, nr, ret, errno?, duration_ns, before: {...}, after: {...}, changed: [...]}`
//! of a credential change. A capability set is `{mask: "0x..", names: ["CAP_..", ...]}`.

use std::borrow::Cow;

use serde::Serialize;

use crate::{
    credentials::cap_names,
    event::{CredChange, TaskCreds},
    syscall::names::errno_name,
};

#[derive(Serialize)]
pub(super) struct CredJson {
    /// `"unknown"` for a number Vigil has no name for.
    syscall: &'static str,
    nr: u32,
    /// The return value; negative is `-errno` (setfsuid/setfsgid return the previous id).
    ret: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<&'static str>,
    /// Time spent in the syscall, in nanoseconds.
    duration_ns: u64,
    before: CredsJson,
    after: CredsJson,
    /// Names of the fields of `before`/`after` that differ.
    changed: Vec<&'static str>,
}

impl CredJson {
    pub(super) fn new(change: &CredChange) -> Self {
        Self {
            syscall: change.syscall.unwrap_or("unknown"),
            nr: change.nr,
            ret: change.ret,
            errno: change.errno().and_then(errno_name),
            duration_ns: change.exit_time_ns.saturating_sub(change.task.time_ns),
            before: CredsJson::new(&change.before),
            after: CredsJson::new(&change.after),
            changed: change.changed(),
        }
    }
}

#[derive(Serialize)]
struct CredsJson {
    uid: u32,
    gid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    /// `SECBIT_*` bits.
    securebits: u32,
    cap_inheritable: CapsJson,
    cap_permitted: CapsJson,
    cap_effective: CapsJson,
    cap_bset: CapsJson,
    /// Absent on a kernel without ambient capabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    cap_ambient: Option<CapsJson>,
}

impl CredsJson {
    fn new(c: &TaskCreds) -> Self {
        Self {
            uid: c.uid,
            gid: c.gid,
            euid: c.euid,
            egid: c.egid,
            suid: c.suid,
            sgid: c.sgid,
            fsuid: c.fsuid,
            fsgid: c.fsgid,
            securebits: c.securebits,
            cap_inheritable: CapsJson::new(c.cap_inheritable),
            cap_permitted: CapsJson::new(c.cap_permitted),
            cap_effective: CapsJson::new(c.cap_effective),
            cap_bset: CapsJson::new(c.cap_bset),
            cap_ambient: c.cap_ambient.map(CapsJson::new),
        }
    }
}

#[derive(Serialize)]
struct CapsJson {
    mask: String,
    names: Vec<Cow<'static, str>>,
}

impl CapsJson {
    fn new(mask: u64) -> Self {
        Self {
            mask: format!("{mask:#x}"),
            names: cap_names(mask),
        }
    }
}
