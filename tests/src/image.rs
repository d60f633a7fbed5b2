//! Container images built here, with no registry: a busybox-static rootfs in one layer,
//! written as a docker archive (`docker save` format) that `ctr image import` takes.

use std::{
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::json;

/// The applets the test images offer, as `/bin/<name>` links to busybox.
pub const APPLETS: &[&str] = &["sh", "ls", "cat", "sleep", "echo", "id", "true"];

/// Where Debian's busybox-static puts its static binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// An image archive and what the runtime will call it.
#[derive(Clone, Debug)]
pub struct Image {
    /// `localhost/<name>:<tag>`.
    pub reference: String,
    /// `sha256:<hex>` of its config: the image id, which the CRI reports as its digest when
    /// the image has no repository digest (it was imported, not pulled).
    pub id: String,
    pub archive: PathBuf,
}

/// Whether `BUSYBOX` is a static executable (a dynamic one would not run in the image): a
/// 64-bit ELF with no `PT_INTERP` program header.
pub fn busybox_is_static() -> bool {
    const PT_INTERP: u32 = 3;
    let Ok(elf) = std::fs::read(BUSYBOX) else {
        return false;
    };
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    // ELF64, little-endian.
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let header = phoff as usize + i * usize::from(phentsize);
        u32_at(header).is_some_and(|p_type| p_type != PT_INTERP)
    })
}

/// Builds an image `reference` whose default command is `cmd`, in `dir` (created).
#[track_caller]
pub fn build(dir: &Path, reference: &str, cmd: &[&str]) -> Image {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs/bin");
    std::fs::create_dir_all(rootfs.join("etc")).expect("rootfs/etc");
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copying busybox");
    for applet in APPLETS {
        symlink("busybox", rootfs.join("bin").join(applet)).expect("applet link");
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("passwd");
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").expect("group");

    let out = dir.join("archive");
    std::fs::create_dir_all(&out).expect("archive dir");
    let layer = dir.join("layer.tar");
    tar(&rootfs, &layer, &["."]);
    let layer_hex = sha256_hex(&layer);
    let layer_name = format!("{layer_hex}/layer.tar");
    std::fs::create_dir_all(out.join(&layer_hex)).expect("layer dir");
    std::fs::rename(&layer, out.join(&layer_name)).expect("moving the layer");

    let config = json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": cmd, "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_hex}")] },
    });
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, config.to_string()).expect("image config");
    let config_hex = sha256_hex(&config_path);
    let config_name = format!("{config_hex}.json");
    std::fs::rename(&config_path, out.join(&config_name)).expect("moving the config");

    let manifest = json!([{
        "Config": config_name,
        "RepoTags": [reference],
        "Layers": [layer_name],
    }]);
    std::fs::write(out.join("manifest.json"), manifest.to_string()).expect("manifest");
    let archive = dir.join("image.tar");
    tar(
        &out,
        &archive,
        &["manifest.json", &config_name, &layer_name],
    );
    Image {
        reference: reference.to_owned(),
        id: format!("sha256:{config_hex}"),
        archive,
    }
}

/// The OCI name of this machine's architecture.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[track_caller]
fn tar(dir: &Path, archive: &Path, members: &[&str]) {
    let status = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(dir)
        .arg("-cf")
        .arg(archive)
        .args(members)
        .status()
        .expect("running tar");
    assert!(
        status.success(),
        "tar of {} failed: {status}",
        dir.display()
    );
}

#[track_caller]
fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("running sha256sum");
    assert!(
        out.status.success(),
        "sha256sum {}: {out:?}",
        path.display()
    );
    let text = String::from_utf8(out.stdout).expect("sha256sum prints text");
    let hex = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(hex.len(), 64, "sha256sum printed {text}");
    hex
}
