//! Loading the embedded eBPF object: preflight checks, kernel offsets from BTF, globals,
//! attach, and typed handles on the maps the rest of the agent reads.

mod advice;
mod btf;
mod load;
mod offsets;
pub mod preflight;
pub mod probe;
mod twins;

pub use btf::{Btf, BtfError, VMLINUX_BTF_PATH};
pub use load::{
    AttachedProgram, BpfError, LoadOptions, OPTIONAL_PROGRAMS, PROGRAMS, Sensor, program_stats,
};
pub use offsets::{OffsetsError, resolve_offsets};
pub use twins::Hooks;

/// The eBPF object built by `build.rs`, embedded so the binary is self-contained.
/// 8-byte aligned because the ELF parser reads it in place.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vigil"));

/// The same object without task local storage (its `VIGIL_TASK_STASH` a placeholder), for
/// kernels that cannot create such a map (before 5.11): a map the kernel cannot create fails
/// the whole load.
static OBJECT_COMPAT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vigil-compat"));

/// Set to `compat`, loads the object without task local storage even where the kernel has
/// it: how the tests run the path of older kernels, and a way to rule the stash out.
pub const OBJECT_ENV: &str = "VIGIL_EBPF_OBJECT";

/// Whether the object with task local storage is loaded: the kernel creates such maps and
/// [`OBJECT_ENV`] does not say otherwise (asked once).
pub fn task_storage() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        if std::env::var_os(OBJECT_ENV).is_some_and(|v| v == "compat") {
            return false;
        }
        // Unknown (the probe itself failed, e.g. without privileges): the load will say why.
        aya::sys::is_map_supported(aya::maps::MapType::TaskStorage).unwrap_or(true)
    })
}

/// The eBPF object this kernel loads: with task local storage where it can be created.
pub fn object() -> &'static [u8] {
    if task_storage() {
        OBJECT
    } else {
        OBJECT_COMPAT
    }
}
