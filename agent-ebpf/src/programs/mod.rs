//! One file per family of hooks.

pub mod network;
pub mod process;
pub mod syscall;
