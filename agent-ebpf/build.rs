//! Rebuild the programs when the linker changes (e.g. `cargo xtask setup` rebuilt it).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
