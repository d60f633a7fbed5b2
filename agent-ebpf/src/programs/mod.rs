//! One file per family of hooks.

pub mod cred;
pub mod dns;
pub mod enforce;
pub mod network;
pub mod process;
pub mod syscall;
