//! The guests' initramfs: a gzip'd cpio (newc) archive written here, holding busybox (as the
//! shell of `/init`), the `vigil` binary with the shared libraries it loads (at the paths the
//! dynamic loader looks for them, the loader included), and `/init`, which mounts the
//! filesystems the agent needs, runs `vigil selftest` and powers the guest off.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use flate2::{Compression, write::GzEncoder};

use crate::cmd;

/// What `/init` prints before the suite; the report reads it (`report.rs`).
pub const BOOTED: &str = "vigil-guest: booted";

/// The guest's `/init`, run by busybox's shell.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /sbin
/bin/busybox --install -s /sbin
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /sys/kernel/tracing /sys/kernel/security /sys/fs/bpf /sys/fs/cgroup /tmp /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# Loopback is down in a fresh kernel; the network checks connect over it.
ip link set lo up || ifconfig lo 127.0.0.1 up
echo "vigil-guest: booted $(uname -r) $(uname -m) lsm=$(cat /sys/kernel/security/lsm)"
VIGIL_LOG=warn /bin/vigil selftest
echo "vigil-guest: selftest exited $?"
poweroff -f
"#;

/// Writes the initramfs for `vigil` and `busybox` (binaries of the guest's architecture).
pub fn build(vigil: &Path, busybox: &Path, out: &Path) -> Result<()> {
    let mut archive = Archive::default();
    for dir in ["/proc", "/sys", "/dev", "/tmp", "/run", "/sbin", "/etc"] {
        archive.dir(dir);
    }
    // The kernel opens /dev/console for /init's output before devtmpfs is mounted.
    archive.char_device("/dev/console", 5, 1);
    archive.file("/init", INIT.as_bytes().to_vec(), 0o755);
    archive.file("/bin/busybox", read(busybox)?, 0o755);
    archive.file("/bin/vigil", read(vigil)?, 0o755);
    let libraries = shared_libraries(vigil)?;
    for library in &libraries {
        let path = library.to_string_lossy();
        // fs::read follows symbolic links: the library lands as a file at the path asked for.
        archive.file(&path, read(library)?, 0o755);
    }
    println!(
        "test-kernels: initramfs with {} libraries of vigil: {}",
        libraries.len(),
        libraries
            .iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&archive.finish())?;
    let bytes = gz.finish()?;
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "test-kernels: wrote {} ({:.1} MiB)",
        out.display(),
        bytes.len() as f64 / 1048576.0
    );
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The shared libraries `binary` loads, with its ELF interpreter: none for a static binary;
/// for a dynamic one, what `ldd` resolves (only for the host's architecture: ldd runs the
/// loader).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    if interpreter(binary)?.is_none() {
        return Ok(Vec::new());
    }
    let out = cmd::output(Command::new("ldd").arg(binary)).with_context(|| {
        format!(
            "{} is dynamically linked and ldd cannot list its libraries (a binary for another architecture must be static)",
            binary.display()
        )
    })?;
    parse_ldd(&out)
}

/// Paths from `ldd` output: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and the
/// loader `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
fn parse_ldd(out: &str) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for line in out.lines().map(str::trim) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("ldd cannot find {}", name.trim());
                }
                rest
            }
            None => line,
        };
        let path = target.split_whitespace().next().unwrap_or_default();
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

/// The ELF interpreter `binary` asks for (`/lib64/ld-linux-x86-64.so.2`), from `readelf`,
/// which reads an ELF file of any architecture; `None` for a static binary.
fn interpreter(binary: &Path) -> Result<Option<String>> {
    let headers = cmd::output(Command::new("readelf").arg("-lW").arg(binary))?;
    Ok(headers.lines().find_map(|line| {
        line.trim()
            .strip_prefix("[Requesting program interpreter: ")
            .and_then(|rest| rest.strip_suffix(']'))
            .map(str::to_owned)
    }))
}

/// A cpio archive in the `newc` format the kernel unpacks, built in memory. Parent folders
/// are added before their contents.
#[derive(Default)]
struct Archive {
    entries: BTreeMap<String, Entry>,
}

enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    CharDevice { major: u32, minor: u32 },
}

impl Archive {
    fn dir(&mut self, path: &str) {
        self.parents(path);
        self.entries.entry(path.to_owned()).or_insert(Entry::Dir);
    }

    fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        self.parents(path);
        self.entries
            .insert(path.to_owned(), Entry::File { data, mode });
    }

    fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        self.parents(path);
        self.entries
            .insert(path.to_owned(), Entry::CharDevice { major, minor });
    }

    fn parents(&mut self, path: &str) {
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| *d != Path::new("/")) {
            self.entries
                .entry(dir.to_string_lossy().into_owned())
                .or_insert(Entry::Dir);
            parent = dir.parent();
        }
    }

    /// The archive's bytes. A BTreeMap orders `/a` before `/a/b`, so folders come first.
    fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let name = path.trim_start_matches('/');
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
                Entry::Dir => (0o040_755, &[], (0, 0)),
                Entry::File { data, mode } => (0o100_000 | mode, data, (0, 0)),
                Entry::CharDevice { major, minor } => (0o020_600, &[], (*major, *minor)),
            };
            let nlink = if matches!(entry, Entry::Dir) { 2 } else { 1 };
            header(
                &mut out,
                ino as u32 + 1,
                mode,
                nlink,
                data.len(),
                rdev,
                name,
            );
            out.extend_from_slice(data);
            pad(&mut out);
        }
        header(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!");
        out
    }
}

fn header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: reproducible archives
        size as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
}

/// Pads to a multiple of 4 bytes, as newc wants after each header+name and each file's data.
fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f30)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f30)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f30)\n";
        let paths = parse_ldd(out).expect("parses");
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
    }

    #[test]
    fn a_newc_archive_has_aligned_entries_parents_first_and_a_trailer() {
        let mut archive = Archive::default();
        archive.file("/bin/tool", b"abc".to_vec(), 0o755);
        archive.char_device("/dev/console", 5, 1);
        let bytes = archive.finish();
        let text = String::from_utf8_lossy(&bytes);
        let names: Vec<&str> = [
            "bin\0",
            "bin/tool\0",
            "dev\0",
            "dev/console\0",
            "TRAILER!!!\0",
        ]
        .into_iter()
        .collect();
        let mut at = 0;
        for name in names {
            let found = text[at..].find(name).expect(name) + at;
            assert!(found > at || at == 0, "{name} out of order");
            at = found;
        }
        assert!(bytes.len().is_multiple_of(4));
        assert!(bytes.starts_with(b"070701"));
    }

    #[test]
    fn static_and_dynamic_binaries_are_told_apart() {
        let ls = interpreter(Path::new("/bin/ls")).expect("readelf");
        assert!(ls.is_some_and(|i| i.contains("ld-linux")));
        if Path::new("/bin/busybox").is_file() {
            assert_eq!(
                interpreter(Path::new("/bin/busybox")).expect("readelf"),
                None
            );
        }
    }
}
