//! Process identity: pids are reused, (tgid, start time) is not.

use std::{fmt, sync::Arc};

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
/// Shared text: a forked child and an exec name their parent's id, a clone each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecId(Arc<str>);

impl ExecId {
    pub fn new(key: ProcessKey, exec_time_ns: u64) -> Self {
        // `format!("{:x}-{:x}-{:x}")` without the formatting machinery or a `String`.
        let mut text = [0u8; 8 + 1 + 16 + 1 + 16];
        let mut len = 0;
        for (i, n) in [u64::from(key.tgid), key.start_time_ns, exec_time_ns]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                text[len] = b'-';
                len += 1;
            }
            len += write_hex(&mut text[len..], n);
        }
        // Only hex digits and dashes were written.
        Self(Arc::from(
            std::str::from_utf8(&text[..len]).unwrap_or_default(),
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
        (parts.len() == 3 && parts.iter().all(|p| hex(p))).then(|| Self(Arc::from(text)))
    }
}

/// `n` in lowercase hex without leading zeros, as `{:x}` writes it, at the start of `out`;
/// returns how many digits.
fn write_hex(out: &mut [u8], n: u64) -> usize {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in out[..digits].iter_mut().rev().enumerate() {
        *slot = b"0123456789abcdef"[(n >> (4 * i) & 0xf) as usize];
    }
    digits
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
    fn exec_ids_are_the_hex_of_format() {
        let values = [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            4_096,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ];
        for tgid in [0, 1, 0xabc, u32::MAX] {
            for &start in &values {
                for &exec in &values {
                    assert_eq!(
                        ExecId::new(ProcessKey::new(tgid, start), exec).as_str(),
                        format!("{tgid:x}-{start:x}-{exec:x}")
                    );
                }
            }
        }
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
