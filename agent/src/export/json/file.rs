//! `file: {op, syscall, path, new_path?, flags?, mode?, uid?, gid?, fd?, result, ...}` of a
//! file syscall on a watched path.

use std::borrow::Cow;

use serde::Serialize;

use crate::{
    event::File, export::escape::escape, files::open_flag_names, syscall::names::errno_name,
};

#[derive(Serialize)]
pub(super) struct FileJson<'a> {
    op: &'static str,
    syscall: &'static str,
    path: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_path: Option<Cow<'a, str>>,
    /// A path was longer than the kernel's copy (255 bytes kept).
    #[serde(skip_serializing_if = "super::is_false")]
    path_truncated: bool,
    /// Present (false) only when a relative path could not be made absolute.
    #[serde(skip_serializing_if = "Option::is_none")]
    path_resolved: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<Vec<String>>,
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

impl<'a> FileJson<'a> {
    pub(super) fn new(file: &'a File) -> Self {
        let open = file.flags.is_some() || file.syscall.starts_with("open");
        Self {
            op: file.op.name(),
            syscall: file.syscall,
            path: escape(&file.path),
            new_path: file.new_path.as_deref().map(escape),
            path_truncated: file.path_truncated,
            path_resolved: (!file.path_resolved).then_some(false),
            flags: file.flags.map(open_flag_names),
            mode: file.mode.map(|m| format!("{m:04o}")),
            uid: file.uid,
            gid: file.gid,
            fd: (open && file.ret >= 0).then_some(file.ret),
            result: result(file.ret),
            duration_ns: file.exit_time_ns.saturating_sub(file.task.time_ns),
        }
    }
}

fn result(ret: i64) -> Cow<'static, str> {
    if ret >= 0 {
        return "ok".into();
    }
    errno_name(-ret).map_or_else(|| format!("errno {}", -ret).into(), Cow::Borrowed)
}
