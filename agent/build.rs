//! Builds the eBPF object (`agent-ebpf`, target bpfel-unknown-none) with aya-build, with and
//! without its `task-storage` feature, and leaves both in OUT_DIR, where `src/bpf/mod.rs`
//! embeds them; and generates the gRPC API
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
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
    // Twice: first without task local storage (for kernels that cannot create such a map;
    // kept as `vigil-compat`), then the object used wherever they can (`vigil`).
    for (no_default_features, kept_as) in [(true, Some("vigil-compat")), (false, None)] {
        let package = aya_build::Package {
            name: "vigil-ebpf",
            root_dir,
            no_default_features,
            ..Default::default()
        };
        aya_build::build_ebpf([package], aya_build::Toolchain::Custom(&toolchain))
            .with_context(|| format!("building the eBPF programs with toolchain `{toolchain}` (run `cargo xtask build`, which installs what this needs)"))?;
        if let Some(name) = kept_as {
            std::fs::rename(out_dir.join("vigil"), out_dir.join(name))
                .with_context(|| format!("keeping the eBPF object as {name}"))?;
        }
    }
    Ok(())
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
