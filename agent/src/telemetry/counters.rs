//! Userspace drop counters, shared by the reader and the pipeline.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why userspace dropped a record. Stable names: they are metric labels and loss causes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    QueueFullExec,
    QueueFullFork,
    QueueFullExit,
    QueueFullOther,
    DecodeTruncated,
    DecodeUnknownKind,
    DecodeSizeMismatch,
    DecodeSectionsOverflow,
    QueueFullSyscall,
    QueueFullNetwork,
    QueueFullCred,
}

impl Drop {
    pub const ALL: [Self; 11] = [
        Self::QueueFullExec,
        Self::QueueFullFork,
        Self::QueueFullExit,
        Self::QueueFullOther,
        Self::DecodeTruncated,
        Self::DecodeUnknownKind,
        Self::DecodeSizeMismatch,
        Self::DecodeSectionsOverflow,
        Self::QueueFullSyscall,
        Self::QueueFullNetwork,
        Self::QueueFullCred,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::QueueFullExec => "queue_full_exec",
            Self::QueueFullFork => "queue_full_fork",
            Self::QueueFullExit => "queue_full_exit",
            Self::QueueFullOther => "queue_full_other",
            Self::DecodeTruncated => "decode_truncated",
            Self::DecodeUnknownKind => "decode_unknown_kind",
            Self::DecodeSizeMismatch => "decode_size_mismatch",
            Self::DecodeSectionsOverflow => "decode_sections_overflow",
            Self::QueueFullSyscall => "queue_full_syscall",
            Self::QueueFullNetwork => "queue_full_network",
            Self::QueueFullCred => "queue_full_cred",
        }
    }

    /// The drop for a decode error, by its cause.
    pub fn for_decode(error: &crate::decode::DecodeError) -> Self {
        use crate::decode::DecodeError;
        match error {
            DecodeError::Truncated { .. } => Self::DecodeTruncated,
            DecodeError::UnknownKind { .. } => Self::DecodeUnknownKind,
            DecodeError::SizeMismatch { .. } => Self::DecodeSizeMismatch,
            DecodeError::SectionsOverflow { .. } => Self::DecodeSectionsOverflow,
        }
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    drops: [AtomicU64; Drop::ALL.len()],
}

impl Counters {
    pub fn count(&self, cause: Drop) {
        self.drops[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Totals since start, in [`Drop::ALL`] order.
    pub fn snapshot(&self) -> [u64; Drop::ALL.len()] {
        std::array::from_fn(|i| self.drops[i].load(Ordering::Relaxed))
    }
}
