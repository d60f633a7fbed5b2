//! Load, attach and hand out the maps. Dropping a [`Sensor`] detaches every program.

use std::time::Duration;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, ProgramError, TracePoint},
};
use vigil_common::{
    config::KernelConfig,
    maps::{
        EVENTS, FILE_PREFIX_INDEX, FILE_PREFIXES, GLOBAL_CONFIG, GLOBAL_OFFSETS, READER, STATS,
        SYSCALL_ARG_TYPES, SYSCALL_CGROUPS, SYSCALL_FILTER, SYSCALL_STASH, TASK_STASH, programs,
    },
};

use super::{
    super::syscall::KernelFilter,
    btf::{Btf, BtfError, VMLINUX_BTF_PATH},
    offsets::{OffsetsError, resolve_offsets},
    preflight::{self, PreflightError},
    twins::{HookGroup, Hooks, attach_twins, loaded_info},
};

/// Every program Vigil attaches, with its hook. One table, so `probe`, load and the docs
/// agree.
pub const PROGRAMS: &[(&str, &str)] = &[
    (programs::PROCESS_EXEC, "sched_process_exec"),
    (programs::PROCESS_FORK, "sched_process_fork"),
    (programs::PROCESS_EXIT, "sched_process_exit"),
    (programs::SYSCALL_ENTER, "sys_enter"),
    (programs::SYSCALL_EXIT, "sys_exit"),
];

/// The programs that attach when they can: without one, the events it gives are missing and
/// the sensor says so (`Sensor::fallbacks`).
pub const OPTIONAL_PROGRAMS: &[(&str, &str)] = &[
    (programs::NETWORK_TCP_STATE, TCP_STATE_HOOK),
    (programs::NETWORK_DNS, DNS_HOOK),
];

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error("reading kernel BTF from {path}")]
    Btf {
        path: &'static str,
        #[source]
        source: Box<BtfError>,
    },
    #[error("reading kernel BTF from {path} for the tp_btf programs")]
    TracingBtf {
        path: &'static str,
        #[source]
        source: Box<aya::BtfError>,
    },
    #[error(transparent)]
    Offsets(#[from] Box<OffsetsError>),
    #[error("loading the eBPF object")]
    Object(#[source] aya::EbpfError),
    #[error("program `{name}` is missing from the eBPF object")]
    MissingProgram { name: &'static str },
    #[error("the kernel rejected program `{name}` (at {hook})")]
    Program {
        name: &'static str,
        hook: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map `{name}` is missing from the eBPF object or has the wrong type")]
    Map { name: &'static str },
    #[error("writing the syscall filter into map `{name}`")]
    SyscallFilter {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

/// What the kernel side is configured with before load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub kernel: KernelConfig,
    pub ring_buffer_bytes: u32,
    /// The syscalls to capture (empty: none).
    pub syscalls: KernelFilter,
    /// cgroup ids whose syscalls are captured when `kernel.syscall_cgroup_filter` is set.
    pub syscall_cgroups: Vec<u64>,
    /// Attach the TCP state program (closes, connect outcomes).
    pub tcp_state: bool,
    /// Attach the DNS program at this cgroup v2 root (`None`: no DNS events).
    pub dns_cgroup_root: Option<std::path::PathBuf>,
    /// The file sensor's watch prefixes (at most `FILE_PREFIXES_MAX`; more are ignored).
    pub file_prefixes: Vec<vigil_common::syscall::FilePrefix>,
    /// `process.hooks`.
    pub process_hooks: Hooks,
    /// `syscalls.hooks`.
    pub syscall_hooks: Hooks,
}

/// A program that is loaded and attached.
#[derive(Clone, Debug)]
pub struct AttachedProgram {
    pub name: &'static str,
    pub hook: &'static str,
}

/// The loaded object with its programs attached.
pub struct Sensor {
    ebpf: Ebpf,
    pub attached: Vec<AttachedProgram>,
    /// Optional programs that could not attach: `name (hook): problem; missing: what`.
    pub fallbacks: Vec<String>,
}

impl Sensor {
    /// Checks privileges and BTF, resolves offsets, loads and attaches every program.
    pub fn load(options: &LoadOptions) -> Result<Self, BpfError> {
        preflight::check_privileges()?;
        preflight::check_btf()?;
        let btf = Btf::from_file(std::path::Path::new(VMLINUX_BTF_PATH)).map_err(|source| {
            BpfError::Btf {
                path: VMLINUX_BTF_PATH,
                source: Box::new(source),
            }
        })?;
        let offsets = resolve_offsets(&btf).map_err(Box::new)?;
        let kernel = KernelConfig {
            exit_group_dead_arg: u32::from(exit_passes_group_dead(&btf)),
            ..options.kernel
        };
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_OFFSETS, &offsets, true)
            .override_global(GLOBAL_CONFIG, &kernel, true)
            .map_max_entries(EVENTS, options.ring_buffer_bytes)
            // The task stash: aya has no typed handle for task local storage, and only the
            // programs use it.
            .allow_unsupported_maps()
            .load(super::object())
            .map_err(BpfError::Object)?;
        // Before attaching, so the programs start with the filter they were asked for.
        write_syscall_filter(&mut ebpf, &options.syscalls, &options.syscall_cgroups)?;
        write_file_prefixes(&mut ebpf, &options.file_prefixes)?;
        let mut attached = Vec::with_capacity(PROGRAMS.len());
        let mut fallbacks = Vec::new();
        if !super::task_storage() {
            tracing::warn!(
                "No task local storage (this kernel cannot create it before Linux 5.11, or {} asked so): the object without it is loaded, and the syscall programs keep their records in a hash map (nothing is missing; each selected syscall costs more).",
                super::OBJECT_ENV
            );
            fallbacks.push(format!(
                "{TASK_STASH} (task local storage): not used; the object without it is loaded, the syscall records are kept in {SYSCALL_STASH}, nothing missing"
            ));
        }
        // The kernel's BTF as aya reads it, for the `tp_btf` programs (read once: it is
        // several MiB).
        let kernel_btf =
            if options.process_hooks == Hooks::Auto || options.syscall_hooks == Hooks::Auto {
                Some(
                    aya::Btf::from_sys_fs().map_err(|source| BpfError::TracingBtf {
                        path: VMLINUX_BTF_PATH,
                        source: Box::new(source),
                    })?,
                )
            } else {
                None
            };
        for group in [HookGroup::Process, HookGroup::Syscall] {
            let hooks = match group {
                HookGroup::Process => options.process_hooks,
                HookGroup::Syscall => options.syscall_hooks,
            };
            let btf = kernel_btf.as_ref().filter(|_| hooks == Hooks::Auto);
            attached.extend(attach_twins(&mut ebpf, btf, group, &mut fallbacks)?);
        }
        for program in &attached {
            // How hard each program was to verify: near the verifier's limit of 1M
            // instructions on an older kernel, a change can tip a program over it.
            let verified =
                loaded_info(&ebpf, program.name).and_then(|info| info.verified_instruction_count());
            tracing::debug!(
                program = program.name,
                hook = program.hook,
                ?verified,
                "Attached."
            );
        }
        if options.tcp_state {
            // Optional: without it, network events still come from the syscalls.
            let result = attach_tcp_state(&mut ebpf);
            let (name, hook) = (programs::NETWORK_TCP_STATE, TCP_STATE_HOOK);
            attach_optional(
                &mut attached,
                &mut fallbacks,
                name,
                hook,
                result,
                "TCP closes, connect outcomes",
            );
        }
        if let Some(root) = &options.dns_cgroup_root {
            // Optional too: the rest of the network sensor does not depend on it.
            let result = attach_dns(&mut ebpf, root);
            let (name, hook) = (programs::NETWORK_DNS, DNS_HOOK);
            attach_optional(
                &mut attached,
                &mut fallbacks,
                name,
                hook,
                result,
                "DNS queries",
            );
        }
        Ok(Self {
            ebpf,
            attached,
            fallbacks,
        })
    }

    /// Takes the event ring buffer (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, BpfError> {
        self.ebpf
            .take_map(EVENTS)
            .and_then(|map| RingBuf::try_from(map).ok())
            .ok_or(BpfError::Map { name: EVENTS })
    }

    /// Takes the reader's state, through which it tells the kernel whether it sleeps until
    /// woken (once).
    pub fn take_reader_state(&mut self) -> Result<Array<MapData, u32>, BpfError> {
        self.ebpf
            .take_map(READER)
            .and_then(|map| Array::try_from(map).ok())
            .ok_or(BpfError::Map { name: READER })
    }

    /// Takes the per-CPU kernel counters (once).
    pub fn take_stats(&mut self) -> Result<PerCpuArray<MapData, u64>, BpfError> {
        self.ebpf
            .take_map(STATS)
            .and_then(|map| PerCpuArray::try_from(map).ok())
            .ok_or(BpfError::Map { name: STATS })
    }

    /// Cumulative run time and run count of each attached program (only advancing while
    /// `kernel.bpf_stats_enabled` is 1).
    pub fn program_stats(&self) -> Vec<(&'static str, Duration, u64)> {
        program_stats(&self.ebpf)
    }

    /// Duplicates of the attached programs' fds, to read their statistics elsewhere.
    pub fn program_fds(&self) -> Vec<(&'static str, aya::programs::ProgramFd)> {
        self.attached
            .iter()
            .filter_map(|p| {
                let fd = self.ebpf.program(p.name)?.fd().ok()?.try_clone().ok()?;
                Some((p.name, fd))
            })
            .collect()
    }
}

/// Records an optional program as attached, or warns that the events it gives are missing.
fn attach_optional(
    attached: &mut Vec<AttachedProgram>,
    fallbacks: &mut Vec<String>,
    name: &'static str,
    hook: &'static str,
    result: Result<(), String>,
    missing: &'static str,
) {
    match result {
        Ok(()) => attached.push(AttachedProgram { name, hook }),
        Err(problem) => {
            tracing::warn!(
                %problem,
                missing,
                "An optional program could not be attached; the events it gives are not reported."
            );
            fallbacks.push(format!(
                "{name} ({hook}): {problem}; not reported: {missing}"
            ));
        }
    }
}

/// Run time and count per program of `ebpf`.
pub fn program_stats(ebpf: &Ebpf) -> Vec<(&'static str, Duration, u64)> {
    PROGRAMS
        .iter()
        .chain(OPTIONAL_PROGRAMS)
        .filter_map(|&(name, _)| {
            let info = loaded_info(ebpf, name)?;
            Some((name, info.run_time(), info.run_count()))
        })
        .collect()
}

/// Sets `entries` (index, value) in the array map `name` of `ebpf`.
fn fill_array<V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: impl IntoIterator<Item = (u32, V)>,
) -> Result<(), BpfError> {
    let mut map: Array<_, V> = ebpf
        .map_mut(name)
        .and_then(|map| Array::try_from(map).ok())
        .ok_or(BpfError::Map { name })?;
    for (index, value) in entries {
        map.set(index, value, 0)
            .map_err(|source| BpfError::SyscallFilter { name, source })?;
    }
    Ok(())
}

/// Fills the syscall bitmap, the arg-type table and the allowed cgroups.
fn write_syscall_filter(
    ebpf: &mut Ebpf,
    filter: &KernelFilter,
    cgroups: &[u64],
) -> Result<(), BpfError> {
    let bitmap = filter.bitmap.iter().enumerate();
    fill_array(
        ebpf,
        SYSCALL_FILTER,
        bitmap.map(|(i, &word)| (i as u32, word)),
    )?;
    fill_array(ebpf, SYSCALL_ARG_TYPES, filter.arg_types.iter().copied())?;
    let mut allowed: HashMap<_, u64, u8> = ebpf
        .map_mut(SYSCALL_CGROUPS)
        .and_then(|map| HashMap::try_from(map).ok())
        .ok_or(BpfError::Map {
            name: SYSCALL_CGROUPS,
        })?;
    for &id in cgroups {
        allowed
            .insert(id, 1, 0)
            .map_err(|source| BpfError::SyscallFilter {
                name: SYSCALL_CGROUPS,
                source,
            })?;
    }
    Ok(())
}

/// Fills the file sensor's watch prefixes from index 0 (the rest stay empty: the list's end)
/// and their index by a path's second and sixth bytes.
fn write_file_prefixes(
    ebpf: &mut Ebpf,
    prefixes: &[vigil_common::syscall::FilePrefix],
) -> Result<(), BpfError> {
    let max = vigil_common::syscall::FILE_PREFIXES_MAX as usize;
    let listed = prefixes.iter().take(max).enumerate();
    fill_array(ebpf, FILE_PREFIXES, listed.map(|(i, &p)| (i as u32, p)))?;
    let index = vigil_common::syscall::file_prefix_index(prefixes);
    let used = index.into_iter().enumerate().filter(|&(_, bits)| bits != 0);
    fill_array(
        ebpf,
        FILE_PREFIX_INDEX,
        used.map(|(byte, bits)| (byte as u32, bits)),
    )
}

/// The classic tracepoint of the TCP state program.
const TCP_STATE_HOOK: &str = "sock:inet_sock_set_state";

/// Checks the tracepoint's record layout, then loads and attaches the TCP state program.
fn attach_tcp_state(ebpf: &mut Ebpf) -> Result<(), String> {
    use crate::network::tracepoint::{FORMAT, check_format};

    let tracefs = preflight::ensure_tracefs().map_err(|e| e.to_string())?;
    let path = std::path::Path::new(tracefs).join(FORMAT);
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    check_format(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = programs::NETWORK_TCP_STATE;
    let program: &mut TracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program `{name}` is missing"))?
        .try_into()
        .map_err(|e| format!("program `{name}`: {e}"))?;
    program
        .load()
        .and_then(|()| program.attach("sock", "inet_sock_set_state").map(drop))
        .map_err(|e| format!("program `{name}`: {e}"))
}

/// The DNS program's hook.
const DNS_HOOK: &str = "cgroup_skb/egress";

/// Loads the DNS program and attaches it to the cgroup v2 root `root`, so it sees every
/// socket of the node. A bpf link (Linux 5.7+, which aya uses when it can) always runs next to
/// the programs other tools attached there and takes no flags (`Single` is flags 0: with
/// `AllowMultiple` the kernel refuses the link with EINVAL). The link lives as long as the
/// object.
fn attach_dns(ebpf: &mut Ebpf, root: &std::path::Path) -> Result<(), String> {
    let name = programs::NETWORK_DNS;
    let cgroup =
        std::fs::File::open(root).map_err(|e| format!("opening {}: {e}", root.display()))?;
    let program: &mut CgroupSkb = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program `{name}` is missing"))?
        .try_into()
        .map_err(|e| format!("program `{name}`: {e}"))?;
    program
        .load()
        .and_then(|()| {
            program
                .attach(
                    &cgroup,
                    CgroupSkbAttachType::Egress,
                    CgroupAttachMode::Single,
                )
                .map(drop)
        })
        .map_err(|e| format!("program `{name}` on {}: {e:?}", root.display()))
}

/// Whether the kernel's `sched_process_exit` passes `group_dead` after the task. Without it
/// (or when the BTF does not say) the exit program falls back to `signal->live`.
fn exit_passes_group_dead(btf: &Btf) -> bool {
    match btf.tracepoint_args("sched_process_exit") {
        Ok(args) => {
            tracing::debug!(args, "sched_process_exit arguments");
            args >= 2
        }
        Err(error) => {
            tracing::debug!(%error, "sched_process_exit's arguments unknown; group ends read from signal->live");
            false
        }
    }
}
