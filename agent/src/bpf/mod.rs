//! Loading the embedded eBPF object: preflight checks, kernel offsets from BTF, globals,
//! attach, and typed handles on the maps the rest of the agent reads.

mod advice;
mod btf;
mod load;
mod offsets;
pub mod preflight;
pub mod probe;

pub use btf::{Btf, BtfError, VMLINUX_BTF_PATH};
pub use load::{
    AttachedProgram, BpfError, Hooks, LoadOptions, OPTIONAL_PROGRAMS, PROGRAMS, Sensor,
    program_stats,
};
pub use offsets::{OffsetsError, resolve_offsets};

/// The eBPF object built by `build.rs`, embedded so the binary is self-contained.
/// 8-byte aligned because the ELF parser reads it in place.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vigil"));
