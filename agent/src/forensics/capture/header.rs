//! The header of a capture file recorded here and now.

use std::time::{SystemTime, UNIX_EPOCH};

use super::CaptureHeader;
use crate::clock::BootClock;

/// `CaptureHeader::record_type` of every file this version writes.
pub const RECORD_TYPE: &str = "vigil.v1.Event";

/// A header for a capture recorded on this machine by `node` (as events name it): this
/// agent's version, the running kernel, the boot offset as the clock reads it now.
/// Callers add `metadata` (trigger rule, filter) and, to make the file readable without
/// Vigil's protos, `descriptor_set` (`crate::api::proto::FILE_DESCRIPTOR_SET`).
pub fn header(node: &str) -> CaptureHeader {
    CaptureHeader {
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        node: node.to_owned(),
        kernel_release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        boot_unix_ns: i64::try_from(BootClock::now().unix_ns(0)).unwrap_or(0),
        created_unix_ns: now_unix_ns(),
        metadata: Default::default(),
        record_type: RECORD_TYPE.to_owned(),
        descriptor_set: Vec::new(),
    }
}

pub(super) fn now_unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}
