//! Installing the enforcement programs: a load of the embedded object of its own (the
//! sensor's load does not touch them), with the enforcement maps opened from, or created at,
//! their pins; each program attached with a bpf link that is pinned, then the object is
//! dropped. The pins keep programs and maps alive: enforcement holds while no agent runs.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        CgroupAttachMode, CgroupSockAddr, RawTracePoint,
        links::{FdLink, PinnedLink},
    },
};
use serde::Serialize;
use vigil_common::{
    config::KernelConfig,
    maps::{
        CRED_STASH, EVENTS, GLOBAL_CONFIG, GLOBAL_OFFSETS, SYSCALL_CGROUPS, SYSCALL_STASH,
        TCP_OWNERS, programs,
    },
};

use super::{EnforceError, Layout, layout::PINNED_MAPS};
use crate::bpf::{self, Btf, VMLINUX_BTF_PATH};

/// The enforcement programs and their hooks.
pub const ENFORCE_PROGRAMS: &[(&str, &str)] = &[
    (programs::ENFORCE_EXEC, "sched_process_exec"),
    (programs::ENFORCE_CONNECT4, "cgroup/connect4"),
    (programs::ENFORCE_CONNECT6, "cgroup/connect6"),
    (programs::ENFORCE_SENDMSG4, "cgroup/sendmsg4"),
    (programs::ENFORCE_SENDMSG6, "cgroup/sendmsg6"),
];

/// What an install found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InstallReport {
    /// Attached and pinned now.
    pub attached: Vec<&'static str>,
    /// Already pinned (by an earlier agent or CLI run).
    pub already: Vec<&'static str>,
}

/// The programs whose link is pinned.
pub fn installed_links(layout: &Layout) -> Vec<&'static str> {
    ENFORCE_PROGRAMS
        .iter()
        .filter(|(name, _)| layout.link(name).exists())
        .map(|&(name, _)| name)
        .collect()
}

/// Makes sure every enforcement program is attached and pinned and every map pinned.
/// `cgroup_root` is the cgroup v2 root for the connect programs (`None`: exec only).
pub fn ensure_installed(
    layout: &Layout,
    cgroup_root: Option<&Path>,
) -> Result<InstallReport, EnforceError> {
    ensure_bpffs(layout.bpffs_mount())?;
    for dir in [layout.maps_dir(), layout.links_dir()] {
        std::fs::create_dir_all(&dir).map_err(EnforceError::io("creating", &dir))?;
    }
    let mut report = InstallReport::default();
    let mut missing = Vec::new();
    for &(name, hook) in ENFORCE_PROGRAMS {
        let network = name != programs::ENFORCE_EXEC;
        if network && cgroup_root.is_none() {
            continue;
        }
        if layout.link(name).exists() {
            report.already.push(name);
        } else {
            missing.push((name, hook));
        }
    }
    let maps_pinned = PINNED_MAPS.iter().all(|m| layout.map(m).exists());
    if missing.is_empty() && maps_pinned {
        return Ok(report);
    }
    let mut ebpf = load(layout)?;
    for (name, hook) in missing {
        let link = if name == programs::ENFORCE_EXEC {
            attach_exec(&mut ebpf, name, hook)?
        } else {
            let root = cgroup_root.unwrap_or(Path::new("/"));
            attach_sock_addr(&mut ebpf, name, hook, root)?
        };
        let path = layout.link(name);
        // The pinned link outlives this process; dropping the handle closes only our fd.
        let pinned: PinnedLink = link.pin(&path).map_err(|source| EnforceError::Pin {
            what: "link",
            path: path.clone(),
            source,
        })?;
        drop(pinned);
        report.attached.push(name);
    }
    tracing::info!(
        attached = ?report.attached,
        already = ?report.already,
        dir = %layout.bpffs_dir.display(),
        "Enforcement programs are attached and pinned."
    );
    Ok(report)
}

/// Loads the object with the enforcement maps at their pins. The sensor's big maps are
/// shrunk: this instance never uses them.
fn load(layout: &Layout) -> Result<Ebpf, EnforceError> {
    bpf::preflight::check_privileges()
        .map_err(|e| EnforceError::Load(bpf::BpfError::Preflight(e)))?;
    let btf = Btf::from_file(Path::new(VMLINUX_BTF_PATH)).map_err(|source| {
        EnforceError::Load(bpf::BpfError::Btf {
            path: VMLINUX_BTF_PATH,
            source: Box::new(source),
        })
    })?;
    let offsets = bpf::resolve_offsets(&btf)
        .map_err(|e| EnforceError::Load(bpf::BpfError::Offsets(Box::new(e))))?;
    let paths: Vec<(&str, PathBuf)> = PINNED_MAPS.iter().map(|&m| (m, layout.map(m))).collect();
    let config = KernelConfig::DEFAULT;
    let mut loader = EbpfLoader::new();
    loader
        .override_global(GLOBAL_OFFSETS, &offsets, true)
        .override_global(GLOBAL_CONFIG, &config, true)
        .map_max_entries(EVENTS, 4096);
    for name in [SYSCALL_STASH, CRED_STASH, TCP_OWNERS, SYSCALL_CGROUPS] {
        loader.map_max_entries(name, 1);
    }
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    loader.load(bpf::OBJECT).map_err(EnforceError::Object)
}

fn attach_exec(
    ebpf: &mut Ebpf,
    name: &'static str,
    hook: &'static str,
) -> Result<FdLink, EnforceError> {
    let error = |source| EnforceError::Program { name, hook, source };
    let program: &mut RawTracePoint = ebpf
        .program_mut(name)
        .ok_or(EnforceError::Load(bpf::BpfError::MissingProgram { name }))?
        .try_into()
        .map_err(error)?;
    program.load().map_err(error)?;
    let id = program.attach(hook).map_err(error)?;
    Ok(program.take_link(id).map_err(error)?.into())
}

/// Attaches a cgroup_sock_addr program at the cgroup v2 root with a bpf link (flags 0,
/// `Single`: with `AllowMultiple` the kernel refuses a link with EINVAL). A link runs next to
/// other tools' programs there.
fn attach_sock_addr(
    ebpf: &mut Ebpf,
    name: &'static str,
    hook: &'static str,
    root: &Path,
) -> Result<FdLink, EnforceError> {
    let error = |source| EnforceError::Program { name, hook, source };
    let cgroup = std::fs::File::open(root).map_err(EnforceError::io("opening", root))?;
    let program: &mut CgroupSockAddr = ebpf
        .program_mut(name)
        .ok_or(EnforceError::Load(bpf::BpfError::MissingProgram { name }))?
        .try_into()
        .map_err(error)?;
    program.load().map_err(error)?;
    let id = program
        .attach(&cgroup, CgroupAttachMode::Single)
        .map_err(error)?;
    let link = program.take_link(id).map_err(error)?;
    FdLink::try_from(link).map_err(|source| EnforceError::Link { name, source })
}

/// Mounts bpffs at `mount` unless one is there.
fn ensure_bpffs(mount: &Path) -> Result<(), EnforceError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let wanted = mount.to_string_lossy();
    let mounted = mountinfo.lines().any(|line| {
        let Some((left, right)) = line.split_once(" - ") else {
            return false;
        };
        right.split_whitespace().next() == Some("bpf")
            && left.split_whitespace().nth(4) == Some(wanted.as_ref())
    });
    if mounted {
        return Ok(());
    }
    std::fs::create_dir_all(mount).map_err(EnforceError::io("creating", mount))?;
    let target = CString::new(wanted.as_bytes()).map_err(|_| EnforceError::Freeze {
        path: mount.to_owned(),
        what: "path contains a NUL byte".into(),
    })?;
    // SAFETY: NUL-terminated strings that outlive the call; no data argument.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(EnforceError::io("mounting bpffs at", mount)(
            std::io::Error::last_os_error(),
        ));
    }
    tracing::info!(path = %mount.display(), "Mounted bpffs.");
    Ok(())
}

/// What [`clear`] removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClearReport {
    pub links: Vec<&'static str>,
    pub maps: Vec<&'static str>,
    pub rules: usize,
}

/// Removes every pin (detaching the programs once no process holds them) and the rule
/// record; thaws the cgroups that `vigil contain freeze` froze.
pub fn clear(layout: &Layout) -> Result<ClearReport, EnforceError> {
    let mut report = ClearReport::default();
    let mut locked = super::rules::Locked::open(layout)?;
    for rule in &locked.set.rules {
        if let super::RuleKind::Freeze { cgroup, .. } = &rule.kind {
            if let Err(error) = super::freeze::thaw(cgroup) {
                tracing::warn!(%error, "Thawing a frozen cgroup failed.");
            }
        }
    }
    report.rules = locked.set.rules.len();
    locked.set.rules.clear();
    locked.save()?;
    for &(name, _) in ENFORCE_PROGRAMS {
        let path = layout.link(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(EnforceError::io("unpinning", &path))?;
            report.links.push(name);
        }
    }
    for &name in PINNED_MAPS {
        let path = layout.map(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(EnforceError::io("unpinning", &path))?;
            report.maps.push(name);
        }
    }
    for dir in [
        layout.links_dir(),
        layout.maps_dir(),
        layout.bpffs_dir.clone(),
    ] {
        let _ = std::fs::remove_dir(dir);
    }
    tracing::info!(?report, "Enforcement cleared.");
    Ok(report)
}

/// Run time and run count of each pinned enforcement program (advancing only while
/// `kernel.bpf_stats_enabled` is 1).
pub fn program_stats(layout: &Layout) -> Vec<(&'static str, std::time::Duration, u64)> {
    ENFORCE_PROGRAMS
        .iter()
        .filter_map(|&(name, _)| {
            let link = FdLink::from(PinnedLink::from_pin(layout.link(name)).ok()?);
            let id = link.info().ok()?.program_id();
            let info = aya::programs::loaded_programs()
                .filter_map(Result::ok)
                .find(|p| p.id() == id)?;
            Some((name, info.run_time(), info.run_count()))
        })
        .collect()
}
