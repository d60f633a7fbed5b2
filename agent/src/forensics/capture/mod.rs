//! Capture files (`.vcap`): events kept on disk for later study, by the flight recorder and
//! `vigil capture record`, read back by `vigil replay` and `vigil inspect`.
//!
//! A file is a preamble (magic, format version, a `vigil.v1.CaptureHeader` message) followed
//! by frames: each a fixed header with a marker and CRCs, then a zstd-compressed run of
//! length-delimited `vigil.v1.Event` messages; an end frame closes a finished file. The
//! layout, the versioning policy and how damage is recovered from are in
//! docs/capture-format.md; [`format`] is that layout in code.
//!
//! The reader never trusts the file: a cut or damaged file yields every intact frame and
//! reports each damaged byte range ([`Damage`]); frame sizes are capped so that a hostile
//! file cannot make it allocate without bound.

mod damage;
mod dir;
mod error;
pub mod format;
mod header;
mod reader;
mod summary;
mod writer;

pub use damage::{Damage, DamageReason};
pub use dir::{CaptureDir, RotateLimits};
pub use error::CaptureError;
pub use header::{RECORD_TYPE, header};
pub use reader::{CaptureReader, Events, Frame, FrameKind};
pub use summary::Summary;
pub use writer::{CaptureWriter, FrameLimits};

/// The header message, generated from `proto/vigil/v1/capture.proto`.
pub use crate::api::proto::CaptureHeader;

#[cfg(test)]
mod tests;
