//! Reading the kernel's structures: raw reads at BTF-resolved offsets, task identity, paths.

pub mod kread;
pub mod opaque;
pub mod path;
pub mod socket;
pub mod stash;
pub mod task;
