//! One file per family of hooks.

pub mod cred;
pub mod dns;
pub mod enforce;
pub mod enforce_lsm;
pub mod network;
pub mod process;
pub mod syscall;
