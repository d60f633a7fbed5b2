//! What the daemon trusts on disk, and how it writes there.
//!
//! [`trust`]: config and policy files are instructions to a root process, so the daemon refuses
//! any that a non-root user could have written (owned by another user, or group- or
//! other-writable, or below a directory that is). The offline commands (`vigil policy check`,
//! `vigil config check`) read a user's files as they are.
//!
//! [`write`]: files the daemon writes (spool, JSON output, enforcement state) are opened
//! without following a symbolic link in the last component, created 0600, and its own state
//! directories must not be symbolic links: a planted link cannot turn a root write into an
//! overwrite of another file.

pub mod trust;
pub mod write;

pub use trust::TrustError;

#[cfg(test)]
pub(crate) mod scratch;
