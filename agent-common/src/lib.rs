//! Wire types shared by Vigil's eBPF programs (`agent-ebpf`) and its userspace agent.
//!
//! Everything here crosses the kernel boundary, so every type is `#[repr(C)]`, has explicit
//! padding, uses no `bool` and no pointers, and has its size asserted at compile time.
//! Variable-length data (argv, paths) trails the fixed part of a record and is addressed by
//! lengths in the fixed part; userspace decodes it with bounds checks (`agent/src/decode`).
#![no_std]

pub mod config;
pub mod cred;
pub mod enforce;
pub mod event;
pub mod maps;
pub mod network;
pub mod offsets;
pub mod process;
pub mod stats;
pub mod syscall;
