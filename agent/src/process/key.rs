//! Process identity: pids are reused, (tgid, start time) is not.

use std::fmt;

/// A process: its thread-group id and the start time of its thread group (ns since boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessKey {
    pub tgid: u32,
    pub start_time_ns: u64,
}

impl ProcessKey {
    pub const fn new(tgid: u32, start_time_ns: u64) -> Self {
        Self {
            tgid,
            start_time_ns,
        }
    }
}

/// Identifies one exec of one process on this node: an exec keeps the pid and the start time
/// but replaces the image, so the exec's own time is part of the id. A process that has not
/// exec'd since its fork uses its start time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecId(String);

impl ExecId {
    pub fn new(key: ProcessKey, exec_time_ns: u64) -> Self {
        Self(format!(
            "{:x}-{:x}-{:x}",
            key.tgid, key.start_time_ns, exec_time_ns
        ))
    }

    /// The id of a process's image before any exec seen by Vigil.
    pub fn at_start(key: ProcessKey) -> Self {
        Self::new(key, key.start_time_ns)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id as [`ExecId::as_str`] wrote it (three hex numbers joined by `-`), read back
    /// from a record; `None` for text of another shape.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = |part: &str| {
            (1..=16).contains(&part.len())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let parts: Vec<&str> = text.split('-').collect();
        (parts.len() == 3 && parts.iter().all(|p| hex(p))).then(|| Self(text.to_owned()))
    }
}

impl fmt::Display for ExecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_ids_differ_across_pid_reuse_and_across_execs() {
        let first = ProcessKey::new(42, 1_000);
        let reused = ProcessKey::new(42, 9_000);
        assert_ne!(ExecId::at_start(first), ExecId::at_start(reused));
        assert_ne!(ExecId::new(first, 2_000), ExecId::new(first, 3_000));
        assert_eq!(ExecId::new(first, 2_000).as_str(), "2a-3e8-7d0");
    }

    #[test]
    fn parse_reads_back_only_what_new_writes() {
        let id = ExecId::new(ProcessKey::new(u32::MAX, u64::MAX), 7);
        assert_eq!(ExecId::parse(id.as_str()), Some(id));
        for bad in [
            "",
            "2a-3e8",
            "2a-3e8-7d0-1",
            "2a--7d0",
            "2A-3e8-7d0",
            "2a-3e8-x",
        ] {
            assert_eq!(ExecId::parse(bad), None, "{bad}");
        }
    }
}
