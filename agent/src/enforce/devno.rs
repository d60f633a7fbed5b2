//! File identity as the kernel sees it. `stat(2)` reports `st_dev` in glibc's encoding
//! (`major` in bits 8-19 and 32-43, `minor` in bits 0-7 and 20-31), while the kernel's
//! `super_block.s_dev` is `major << 20 | minor`. A rule keyed by `st_dev` would never match.

use std::{os::unix::fs::MetadataExt, path::Path};

use vigil_common::enforce::FileKey;

/// The kernel `dev_t` (`MKDEV`) of a userspace `st_dev`.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev);
    let minor = libc::minor(st_dev);
    (major << 20) | (minor & 0xf_ffff)
}

/// The kernel identity (`s_dev`, `i_ino`) of the file at `path` (symlinks followed, as exec
/// follows them).
pub fn file_key_of(path: &Path) -> std::io::Result<FileKey> {
    let meta = std::fs::metadata(path)?;
    Ok(FileKey {
        dev: kernel_dev(meta.dev()),
        _pad: 0,
        ino: meta.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_glibc_encoding_to_kernel_encoding() {
        // 8:1 (sda1) and 259:3 (nvme0n1p3): glibc makedev vs kernel MKDEV.
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(kernel_dev(libc::makedev(259, 3)), (259 << 20) | 3);
        // A large minor (anonymous devices, e.g. overlayfs 0:1234).
        assert_eq!(kernel_dev(libc::makedev(0, 1234)), 1234);
    }
}
