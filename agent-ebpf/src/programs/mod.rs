//! One file per family of hooks.

pub mod process;
pub mod syscall;
