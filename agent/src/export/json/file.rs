//! `file: {op, syscall, path, new_path?, flags?, mode?, uid?, gid?, fd?, result, ...}` of a
//! file syscall on a watched path.
//!
//! [`FileJson::write`] writes the members by hand (file events are a large part of a node's
//! output); the serde derive is the schema it is tested against.

use std::borrow::Cow;

use serde::{Serialize, Serializer};

use super::write::{self, Object};
use crate::{
    event::File,
    export::escape::escape,
    files::{each_open_flag_name, open_flag_names},
    syscall::names::errno_name,
};

#[derive(Serialize)]
pub(super) struct FileJson<'a> {
    op: &'static str,
    syscall: &'static str,
    /// The kernel's bytes, as their lossless text.
    #[serde(serialize_with = "lossless")]
    path: &'a [u8],
    #[serde(skip_serializing_if = "Option::is_none")]
    new_path: Option<Cow<'a, str>>,
    /// A path was longer than the kernel's copy (255 bytes kept).
    #[serde(skip_serializing_if = "super::is_false")]
    path_truncated: bool,
    /// Present (false) only when a relative path could not be made absolute.
    #[serde(skip_serializing_if = "Option::is_none")]
    path_resolved: Option<bool>,
    /// The open flags' names ([`open_flag_names`]).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "flag_names")]
    flags: Option<u64>,
    /// Octal, as chmod takes it (`"0644"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gid: Option<i32>,
    /// A successful open's new fd.
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i64>,
    /// `"ok"` or the errno's name.
    result: Cow<'static, str>,
    duration_ns: u64,
}

fn lossless<S: Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&escape(bytes))
}

fn flag_names<S: Serializer>(flags: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
    flags.map(open_flag_names).serialize(serializer)
}

impl<'a> FileJson<'a> {
    pub(super) fn new(file: &'a File) -> Self {
        let open = file.flags.is_some() || file.syscall.starts_with("open");
        Self {
            op: file.op.name(),
            syscall: file.syscall,
            path: &file.path,
            new_path: file.new_path.as_deref().map(escape),
            path_truncated: file.path_truncated,
            path_resolved: (!file.path_resolved).then_some(false),
            flags: file.flags,
            mode: file.mode.map(|m| format!("{m:04o}")),
            uid: file.uid,
            gid: file.gid,
            fd: (open && file.ret >= 0).then_some(file.ret),
            result: result(file.ret),
            duration_ns: file.exit_time_ns.saturating_sub(file.task.time_ns),
        }
    }

    /// The members as the serde derive writes them (same order, same ones left out).
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        let mut o = Object::open(out);
        o.str("op", self.op);
        o.str("syscall", self.syscall);
        o.bytes("path", self.path);
        o.some_str("new_path", self.new_path.as_deref());
        o.flag("path_truncated", self.path_truncated);
        if let Some(resolved) = self.path_resolved {
            write::bool(o.key("path_resolved"), resolved);
        }
        if let Some(flags) = self.flags {
            let out = o.key("flags");
            out.push(b'[');
            let mut first = true;
            each_open_flag_name(flags, |name| {
                if !first {
                    out.push(b',');
                }
                first = false;
                write::str(out, name);
            });
            out.push(b']');
        }
        o.some_str("mode", self.mode.as_deref());
        o.some_uint("uid", self.uid);
        o.some_uint("gid", self.gid);
        o.some_uint("fd", self.fd);
        o.str("result", &self.result);
        o.uint("duration_ns", self.duration_ns);
        o.close();
    }
}

fn result(ret: i64) -> Cow<'static, str> {
    if ret >= 0 {
        return "ok".into();
    }
    errno_name(-ret).map_or_else(|| format!("errno {}", -ret).into(), Cow::Borrowed)
}
