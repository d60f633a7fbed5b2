//! Builds the eBPF object (`agent-ebpf`, target bpfel-unknown-none) with aya-build and leaves
//! it in OUT_DIR, where `src/bpf/object.rs` embeds it; and generates the gRPC API
//! (`proto/vigil/v1/{sensor,collector,capture,response}.proto`, with protoc from Debian
//! protobuf-compiler) for `src/api`.
//!
//! The toolchain is a rustup toolchain name from `VIGIL_EBPF_TOOLCHAIN` (default `nightly`):
//! `cargo xtask` picks rustup nightly with rust-src, or links Debian's rustc-web as a rustup
//! toolchain and sets `RUSTC_BOOTSTRAP=1`; it also puts bpf-linker on PATH.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    build_api()?;
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

/// Server and client code for the API, plus the descriptor set that reflection serves.
fn build_api() -> anyhow::Result<()> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let protos = ["sensor", "collector", "capture", "response"]
        .map(|name| format!("{proto_dir}/vigil/v1/{name}.proto"));
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
    tonic_prost_build::configure()
        // `vigil events --json` prints the messages as they are.
        .type_attribute(".vigil.v1", "#[derive(serde::Serialize)]")
        .file_descriptor_set_path(out_dir.join("vigil_v1_descriptor.bin"))
        .compile_protos(&protos, &[proto_dir.to_owned()])
        .with_context(|| format!("compiling {protos:?} (protoc comes from Debian protobuf-compiler: `cargo xtask setup`)"))
}
