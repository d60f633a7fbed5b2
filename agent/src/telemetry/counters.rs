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
    /// The forwarder's queue was full (its spool writer is stuck on the disk).
    ForwardQueueFull,
    /// The forwarding spool reached its size limit before delivery.
    ForwardSpoolFull,
    /// Spooled records reached the age limit before delivery.
    ForwardSpoolAge,
    /// Writing the forwarding spool failed.
    ForwardSpoolError,
}

impl Drop {
    pub const ALL: [Self; 15] = [
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
        Self::ForwardQueueFull,
        Self::ForwardSpoolFull,
        Self::ForwardSpoolAge,
        Self::ForwardSpoolError,
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
            Self::ForwardQueueFull => "forward_queue_full",
            Self::ForwardSpoolFull => "forward_spool_full",
            Self::ForwardSpoolAge => "forward_spool_age",
            Self::ForwardSpoolError => "forward_spool_error",
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
        self.count_n(cause, 1);
    }

    pub fn count_n(&self, cause: Drop, n: u64) {
        self.drops[cause as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Totals since start, in [`Drop::ALL`] order.
    pub fn snapshot(&self) -> [u64; Drop::ALL.len()] {
        std::array::from_fn(|i| self.drops[i].load(Ordering::Relaxed))
    }
}
