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
        CgroupAttachMode, CgroupSockAddr, Lsm, RawTracePoint,
        links::{FdLink, PinnedLink},
    },
};
use serde::Serialize;
use vigil_common::{
    config::KernelConfig,
    maps::{
        CRED_STASH, EVENTS, GLOBAL_CONFIG, GLOBAL_OFFSETS, GROUP_EXITS, IN_CONNECT,
        SYSCALL_CGROUPS, SYSCALL_STASH, TCP_OWNERS, programs,
    },
};

use super::{EnforceError, Layout, layout::PINNED_MAPS};
use crate::bpf::{self, Btf, VMLINUX_BTF_PATH};

/// What a group of enforcement programs enforces. Each duty is done by one variant: the
/// BPF-LSM program where the kernel runs it (it refuses before the operation), else the
/// fallback programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Duty {
    Exec,
    Open,
    Connect,
    Sendmsg,
}

impl Duty {
    pub const ALL: [Self; 4] = [Self::Exec, Self::Open, Self::Connect, Self::Sendmsg];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Open => "open",
            Self::Connect => "connect",
            Self::Sendmsg => "sendmsg",
        }
    }

    /// Needs the cgroup v2 root (per-cgroup decisions, cgroup program attach points).
    const fn per_cgroup(self) -> bool {
        matches!(self, Self::Connect | Self::Sendmsg)
    }
}

/// How a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attach {
    /// BPF-LSM hook name (`bpf_lsm_<hook>` in the kernel's BTF).
    Lsm,
    RawTracePoint,
    /// cgroup_sock_addr at the cgroup v2 root.
    CgroupSockAddr,
}

/// One enforcement program.
#[derive(Clone, Copy, Debug)]
pub struct EnforceProgram {
    pub name: &'static str,
    pub hook: &'static str,
    pub duty: Duty,
    attach: Attach,
}

impl EnforceProgram {
    pub fn is_lsm(&self) -> bool {
        self.attach == Attach::Lsm
    }
}

const fn program(
    name: &'static str,
    hook: &'static str,
    duty: Duty,
    attach: Attach,
) -> EnforceProgram {
    EnforceProgram {
        name,
        hook,
        duty,
        attach,
    }
}

/// Every enforcement program; within a duty the BPF-LSM variant comes first.
pub const ENFORCE_PROGRAMS: &[EnforceProgram] = &[
    program(
        programs::ENFORCE_LSM_EXEC,
        "bprm_check_security",
        Duty::Exec,
        Attach::Lsm,
    ),
    program(
        programs::ENFORCE_EXEC,
        "sched_process_exec",
        Duty::Exec,
        Attach::RawTracePoint,
    ),
    program(
        programs::ENFORCE_LSM_OPEN,
        "file_open",
        Duty::Open,
        Attach::Lsm,
    ),
    program(
        programs::ENFORCE_LSM_CONNECT,
        "socket_connect",
        Duty::Connect,
        Attach::Lsm,
    ),
    program(
        programs::ENFORCE_CONNECT4,
        "cgroup/connect4",
        Duty::Connect,
        Attach::CgroupSockAddr,
    ),
    program(
        programs::ENFORCE_CONNECT6,
        "cgroup/connect6",
        Duty::Connect,
        Attach::CgroupSockAddr,
    ),
    program(
        programs::ENFORCE_SENDMSG4,
        "cgroup/sendmsg4",
        Duty::Sendmsg,
        Attach::CgroupSockAddr,
    ),
    program(
        programs::ENFORCE_SENDMSG6,
        "cgroup/sendmsg6",
        Duty::Sendmsg,
        Attach::CgroupSockAddr,
    ),
];

/// A duty done by its fallback (or not at all), and why.
#[derive(Clone, Debug, Serialize)]
pub struct Fallback {
    pub duty: Duty,
    /// The fallback programs attached instead; empty: the duty is not enforced here.
    pub programs: Vec<&'static str>,
    pub reason: String,
}

/// What an install found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InstallReport {
    /// Attached and pinned now.
    pub attached: Vec<&'static str>,
    /// Already pinned (by an earlier agent or CLI run).
    pub already: Vec<&'static str>,
    /// Duties whose BPF-LSM variant was not attached now.
    pub fallbacks: Vec<Fallback>,
}

/// The programs whose link is pinned.
pub fn installed_links(layout: &Layout) -> Vec<&'static str> {
    ENFORCE_PROGRAMS
        .iter()
        .filter(|p| layout.link(p.name).exists())
        .map(|p| p.name)
        .collect()
}

/// Whether `duty` is enforced by a pinned program.
pub fn duty_installed(layout: &Layout, duty: Duty) -> bool {
    ENFORCE_PROGRAMS
        .iter()
        .any(|p| p.duty == duty && layout.link(p.name).exists())
}

/// Whether the kernel calls BPF-LSM programs: `bpf` among the active LSMs. A BPF-LSM program
/// loads and attaches on a kernel where the bpf LSM is not active, but is never called: so
/// the list decides, and the attach then proves the rest. `Err`: why not.
pub fn bpf_lsm_active() -> Result<(), String> {
    let list = bpf::preflight::active_lsms()?;
    if list.split(',').any(|l| l == "bpf") {
        Ok(())
    } else {
        Err(format!(
            "the bpf LSM is not active (active: {list}); boot with `bpf` added to lsm=, e.g. lsm={list},bpf"
        ))
    }
}

/// Makes sure every duty is enforced by a pinned program (its BPF-LSM variant where the
/// kernel runs it and `prefer_lsm`, else its fallback) and every map is pinned.
/// `cgroup_root` is the cgroup v2 root (`None`: exec and open only).
pub fn ensure_installed(
    layout: &Layout,
    cgroup_root: Option<&Path>,
    prefer_lsm: bool,
) -> Result<InstallReport, EnforceError> {
    ensure_bpffs(layout.bpffs_mount())?;
    for dir in [layout.maps_dir(), layout.links_dir()] {
        std::fs::create_dir_all(&dir).map_err(EnforceError::io("creating", &dir))?;
    }
    let mut report = InstallReport::default();
    let mut pending = Vec::new();
    for duty in Duty::ALL {
        if duty.per_cgroup() && cgroup_root.is_none() {
            continue;
        }
        let pinned: Vec<&'static str> = ENFORCE_PROGRAMS
            .iter()
            .filter(|p| p.duty == duty && layout.link(p.name).exists())
            .map(|p| p.name)
            .collect();
        // A variant already pinned stays (a restart never swaps what is in force); a
        // fallback pinned in part gets its missing programs.
        let lsm_pinned = pinned.iter().any(|name| is_lsm(name));
        if lsm_pinned || (!pinned.is_empty() && fallbacks(duty).all(|p| pinned.contains(&p.name))) {
            report.already.extend(pinned);
            continue;
        }
        report.already.extend(&pinned);
        pending.push(duty);
    }
    let maps_pinned = PINNED_MAPS.iter().all(|m| layout.map(m).exists());
    if pending.is_empty() && maps_pinned {
        return Ok(report);
    }
    let mut ebpf = load(layout)?;
    let lsm = if prefer_lsm {
        bpf_lsm_active()
    } else {
        Err("BPF-LSM variants were not asked for (the fallbacks were)".to_owned())
    };
    for duty in pending {
        let already_fallback = fallbacks(duty).any(|p| layout.link(p.name).exists());
        let lsm_variant = ENFORCE_PROGRAMS
            .iter()
            .find(|p| p.duty == duty && p.is_lsm());
        let why_not = match (lsm_variant, &lsm, already_fallback) {
            (Some(p), Ok(()), false) => match attach_pinned(&mut ebpf, layout, p, cgroup_root) {
                Ok(()) => {
                    report.attached.push(p.name);
                    continue;
                }
                Err(error) => format!(
                    "BPF-LSM program refused by this kernel: {}",
                    crate::telemetry::chain(&error)
                ),
            },
            (Some(_), Err(why), false) => why.clone(),
            (Some(_), _, true) => "the fallback was in force already".to_owned(),
            (None, ..) => String::new(),
        };
        let mut attached = Vec::new();
        for p in fallbacks(duty) {
            if layout.link(p.name).exists() {
                continue;
            }
            attach_pinned(&mut ebpf, layout, p, cgroup_root)?;
            report.attached.push(p.name);
            attached.push(p.name);
        }
        if lsm_variant.is_some() {
            tracing::warn!(
                duty = duty.name(),
                fallback = ?attached,
                reason = %why_not,
                "BPF-LSM enforcement is not available here: the fallback is used."
            );
            report.fallbacks.push(Fallback {
                duty,
                programs: fallbacks(duty).map(|p| p.name).collect(),
                reason: why_not,
            });
        }
    }
    tracing::info!(
        attached = ?report.attached,
        already = ?report.already,
        dir = %layout.bpffs_dir.display(),
        "Enforcement programs are attached and pinned."
    );
    Ok(report)
}

fn is_lsm(name: &str) -> bool {
    ENFORCE_PROGRAMS
        .iter()
        .any(|p| p.name == name && p.is_lsm())
}

/// The fallback programs of `duty` (none for `Open`).
fn fallbacks(duty: Duty) -> impl Iterator<Item = &'static EnforceProgram> {
    ENFORCE_PROGRAMS
        .iter()
        .filter(move |p| p.duty == duty && !p.is_lsm())
}

/// Attaches `program` and pins its link; the pinned link outlives this process.
fn attach_pinned(
    ebpf: &mut Ebpf,
    layout: &Layout,
    program: &EnforceProgram,
    cgroup_root: Option<&Path>,
) -> Result<(), EnforceError> {
    let link = match program.attach {
        Attach::Lsm => attach_lsm(ebpf, program.name, program.hook)?,
        Attach::RawTracePoint => attach_exec(ebpf, program.name, program.hook)?,
        Attach::CgroupSockAddr => {
            let root = cgroup_root.unwrap_or(Path::new("/"));
            attach_sock_addr(ebpf, program.name, program.hook, root)?
        }
    };
    let path = layout.link(program.name);
    // Dropping the handle closes only our fd.
    let pinned: PinnedLink = link.pin(&path).map_err(|source| EnforceError::Pin {
        what: "link",
        path: path.clone(),
        source,
    })?;
    drop(pinned);
    Ok(())
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
        .map_max_entries(EVENTS, 4096)
        // The task stash, which aya has no typed handle for (nothing here uses it).
        .allow_unsupported_maps();
    for name in [
        SYSCALL_STASH,
        IN_CONNECT,
        CRED_STASH,
        TCP_OWNERS,
        GROUP_EXITS,
        SYSCALL_CGROUPS,
    ] {
        loader.map_max_entries(name, 1);
    }
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    loader.load(bpf::object()).map_err(EnforceError::Object)
}

/// Attaches a BPF-LSM program to `bpf_lsm_<hook>`, found in the running kernel's BTF.
fn attach_lsm(
    ebpf: &mut Ebpf,
    name: &'static str,
    hook: &'static str,
) -> Result<FdLink, EnforceError> {
    let error = |source| EnforceError::Program { name, hook, source };
    let btf = aya::Btf::from_sys_fs().map_err(|source| EnforceError::KernelBtf { source })?;
    let program: &mut Lsm = ebpf
        .program_mut(name)
        .ok_or(EnforceError::Load(bpf::BpfError::MissingProgram { name }))?
        .try_into()
        .map_err(error)?;
    program.load(hook, &btf).map_err(error)?;
    let id = program.attach().map_err(error)?;
    Ok(program.take_link(id).map_err(error)?.into())
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
    for program in ENFORCE_PROGRAMS {
        let path = layout.link(program.name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(EnforceError::io("unpinning", &path))?;
            report.links.push(program.name);
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
        .filter_map(|&EnforceProgram { name, .. }| {
            let link = FdLink::from(PinnedLink::from_pin(layout.link(name)).ok()?);
            let id = link.info().ok()?.program_id();
            let info = aya::programs::loaded_programs()
                .filter_map(Result::ok)
                .find(|p| p.id() == id)?;
            Some((name, info.run_time(), info.run_count()))
        })
        .collect()
}
