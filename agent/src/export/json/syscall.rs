//! `syscall: {name, nr, args: {...}, ret, errno}`: arguments keep the syscall's order.

use std::borrow::Cow;

use serde::{Serialize, Serializer};

use crate::{
    event::Syscall,
    export::escape::escape,
    syscall::{ArgValue, names::errno_name},
};

#[derive(Serialize)]
pub(super) struct SyscallJson<'a> {
    /// `"unknown"` for a number Vigil has no name for.
    name: &'static str,
    nr: u32,
    args: Args<'a>,
    /// The return value; negative is `-errno`.
    ret: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<&'static str>,
    /// Names of string arguments that were longer than the kernel copies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    truncated: Vec<&'static str>,
    /// Time spent in the syscall, in nanoseconds.
    duration_ns: u64,
}

impl<'a> SyscallJson<'a> {
    pub(super) fn new(syscall: &'a Syscall) -> Self {
        Self {
            name: syscall.name.unwrap_or("unknown"),
            nr: syscall.nr,
            args: Args(&syscall.args),
            ret: syscall.ret,
            errno: syscall.errno().and_then(errno_name),
            truncated: syscall
                .args
                .iter()
                .filter(|(_, v)| {
                    matches!(
                        v,
                        ArgValue::Str {
                            truncated: true,
                            ..
                        }
                    )
                })
                .map(|(n, _)| *n)
                .collect(),
            duration_ns: syscall.exit_time_ns.saturating_sub(syscall.task.time_ns),
        }
    }
}

struct Args<'a>(&'a [(&'static str, ArgValue)]);

impl Serialize for Args<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (*name, Value(value))))
    }
}

/// Numbers as JSON numbers, addresses and unnamed flags as `"0x.."`, strings escaped,
/// named values by name.
struct Value<'a>(&'a ArgValue);

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ArgValue::Int(n) => serializer.serialize_i64(*n),
            ArgValue::Uint(n) => serializer.serialize_u64(*n),
            ArgValue::Hex(n) | ArgValue::Unread(n) => serializer.serialize_str(&format!("{n:#x}")),
            ArgValue::Str { bytes, .. } => {
                let text: Cow<'_, str> = escape(bytes);
                serializer.serialize_str(&text)
            }
            ArgValue::Named { names, .. } => serializer.serialize_str(names),
        }
    }
}
