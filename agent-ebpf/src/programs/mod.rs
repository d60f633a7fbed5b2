//! One file per family of hooks.

pub mod process;
