//! The fallback compiler: Debian's rustc-web 1.96 (LLVM 22), which Debian's package servers
//! always have. Its packages are unpacked into the cache, not installed, so the machine's
//! rustup stays as it is; the unpacked `usr` folder is then linked as a rustup toolchain.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Component, Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{apt::Apt, cmd};

/// The rustup toolchain name the unpacked compiler is linked as.
pub const TOOLCHAIN: &str = "vigil-debian-1.96";

/// The compiler, cargo, clippy, the library source for build-std, the standard library and
/// the shared libraries cargo-web and rustc-web load that a fresh machine lacks.
const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-clippy",
    "rust-web-src",
    "libstd-rust-web-dev",
    "libstd-rust-web-1.96",
    "libgit2-1.5",
    "libhttp-parser2.9",
    "libmbedtls14",
    "libmbedx509-1",
    "libmbedcrypto7",
];

pub struct Unpacked {
    /// The folder holding `librustc_driver` and the other shared libraries unpacked.
    pub library_path: PathBuf,
}

/// Unpacks the compiler unless a complete copy is there, and links it as [`TOOLCHAIN`].
pub fn ensure(cache: &Path, apt: &mut Apt) -> Result<Unpacked> {
    let base = cache.join("debian-rust");
    let usr = base.join("root/usr");
    let stamp = base.join("complete");
    if stamp.is_file() && usr.join("bin/rustc").is_file() {
        println!(
            "setup: Debian rustc-web already unpacked in {}",
            usr.display()
        );
    } else {
        unpack(&base, apt)?;
    }
    let library_path = library_dir(&usr)?;
    link(&usr)?;
    Ok(Unpacked { library_path })
}

fn unpack(base: &Path, apt: &mut Apt) -> Result<()> {
    println!(
        "setup: unpacking Debian's rustc-web into {}",
        base.display()
    );
    let debs = apt.download(PACKAGES, &base.join("debs"))?;
    let partial = base.join("root.partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    for deb in &debs {
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial))?;
    }
    let fixed = fix_absolute_symlinks(&partial)?;
    println!("setup: rewrote {fixed} absolute symbolic links to stay inside the private folder");
    let usr = partial.join("usr");
    expose_libraries(&usr)?;
    let library = usr.join("lib/rustlib/src/rust/library/core/Cargo.toml");
    if !library.is_file() {
        bail!("the unpacked rust-web-src has no {}", library.display());
    }
    let root = base.join("root");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("cannot remove {}", root.display()))?;
    }
    fs::rename(&partial, &root).with_context(|| format!("cannot rename {}", partial.display()))?;
    let names: Vec<String> = debs
        .iter()
        .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    fs::write(base.join("complete"), names.join("\n") + "\n").context("cannot write the stamp")?;
    // The packages are unpacked; their 116 MB of .deb files are not needed again.
    fs::remove_dir_all(base.join("debs")).context("cannot remove the downloaded packages")?;
    Ok(())
}

/// Debian's packages may point symbolic links at absolute paths such as `/usr/src/...`, which
/// outside `/` would lead to the machine's own files (or nowhere). Each one becomes a relative
/// link to the same path inside `root`. Returns how many were rewritten.
fn fix_absolute_symlinks(root: &Path) -> Result<usize> {
    let mut fixed = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let path = entry.context("cannot read a folder entry")?.path();
            let meta = fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_symlink() {
                let target = fs::read_link(&path)?;
                let Ok(inside) = target.strip_prefix("/") else {
                    continue;
                };
                let relative = relative_path(&dir, &root.join(inside));
                fs::remove_file(&path)?;
                symlink(&relative, &path)
                    .with_context(|| format!("cannot relink {}", path.display()))?;
                fixed += 1;
            }
        }
    }
    Ok(fixed)
}

/// The path from folder `from` to `to`, both under one root, as `../..`-style components.
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path: PathBuf = from[common..]
        .iter()
        .map(|_| Component::ParentDir)
        .collect();
    path.extend(&to[common..]);
    path
}

/// The multiarch folder (`usr/lib/x86_64-linux-gnu`) that holds `librustc_driver-*.so`.
fn library_dir(usr: &Path) -> Result<PathBuf> {
    let lib = usr.join("lib");
    for entry in fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))? {
        let dir = entry?.path();
        if dir.is_dir() && has_rustc_driver(&dir)? {
            return Ok(dir);
        }
    }
    bail!("no librustc_driver under {}", lib.display())
}

fn has_rustc_driver(dir: &Path) -> Result<bool> {
    Ok(fs::read_dir(dir)?.filter_map(|e| e.ok()).any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("librustc_driver-")
    }))
}

/// Links every shared library of the multiarch folder into `usr/lib`, the folder `rustup run`
/// puts on LD_LIBRARY_PATH for a linked toolchain, so the compiler starts from any shell.
fn expose_libraries(usr: &Path) -> Result<()> {
    let dir = library_dir(usr)?;
    let multiarch = dir.file_name().context("the library folder has no name")?;
    for entry in fs::read_dir(&dir)? {
        let name = entry?.file_name();
        let link = usr.join("lib").join(&name);
        if name.to_string_lossy().contains(".so") && !link.exists() {
            symlink(Path::new(multiarch).join(&name), &link)
                .with_context(|| format!("cannot link {}", link.display()))?;
        }
    }
    Ok(())
}

/// Links `usr` as [`TOOLCHAIN`] unless rustup already has it there.
fn link(usr: &Path) -> Result<()> {
    let listing = cmd::output(Command::new("rustup").args(["toolchain", "list", "-v"]))?;
    let current = listing.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(TOOLCHAIN)).then(|| words.last().map(PathBuf::from))?
    });
    if current.as_deref() == Some(usr) {
        println!(
            "setup: rustup toolchain {TOOLCHAIN} already links {}",
            usr.display()
        );
        return Ok(());
    }
    println!(
        "setup: linking {} as rustup toolchain {TOOLCHAIN}",
        usr.display()
    );
    cmd::run(
        Command::new("rustup")
            .args(["toolchain", "link", TOOLCHAIN])
            .arg(usr),
    )
}
