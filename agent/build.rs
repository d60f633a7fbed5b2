//! Builds the eBPF object (`agent-ebpf`, target bpfel-unknown-none) with aya-build and leaves
//! it in OUT_DIR, where `src/bpf/object.rs` embeds it.
//!
//! The toolchain is a rustup toolchain name from `VIGIL_EBPF_TOOLCHAIN` (default `nightly`):
//! `cargo xtask` picks rustup nightly with rust-src, or links Debian's rustc-web as a rustup
//! toolchain and sets `RUSTC_BOOTSTRAP=1`; it also puts bpf-linker on PATH.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=VIGIL_EBPF_TOOLCHAIN");
    let toolchain = std::env::var("VIGIL_EBPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../agent-ebpf");
    let package = aya_build::Package {
        name: "vigil-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::Custom(&toolchain))
        .with_context(|| format!("building the eBPF programs with toolchain `{toolchain}` (run `cargo xtask build`, which installs what this needs)"))
}
