//! Load, attach and hand out the maps. Dropping a [`Sensor`] detaches every program.

use std::time::Duration;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, Program, ProgramError, TracePoint,
    },
};
use vigil_common::{
    config::KernelConfig,
    maps::{
        EVENTS, FILE_PREFIXES, GLOBAL_CONFIG, GLOBAL_OFFSETS, READER, STATS, SYSCALL_ARG_TYPES,
        SYSCALL_CGROUPS, SYSCALL_FILTER, SYSCALL_STASH, TASK_STASH, programs,
    },
};

use super::{
    super::syscall::KernelFilter,
    btf::{Btf, BtfError, VMLINUX_BTF_PATH},
    offsets::{OffsetsError, resolve_offsets},
    preflight::{self, PreflightError},
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

/// Which hook a group of tracing programs uses (`process.hooks`, `syscalls.hooks`):
/// `tp_btf` where the kernel allows, or raw tracepoints throughout. `Auto` falls back to raw
/// tracepoints by itself and says so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hooks {
    #[default]
    Auto,
    RawTracepoint,
}

/// Programs that attach one way together, picked by one setting of [`LoadOptions`]: the
/// syscall programs must, since their stash differs between the two ways.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HookGroup {
    Process,
    Syscall,
}

/// A tracing program in two forms: `tp_btf`, whose kernel reads are plain loads through the
/// tracepoint's BTF-typed pointers, and its raw-tracepoint twin (the same code, each read a
/// `bpf_probe_read_kernel` call: about 1 µs more per exec, 0.1 µs per selected syscall).
struct TwinProgram {
    name: &'static str,
    raw: &'static str,
    btf_hook: &'static str,
    raw_hook: &'static str,
    group: HookGroup,
    /// Why `tp_btf`, for `vigil probe`.
    reason: &'static str,
}

const PROCESS_REASON: &str = "the scheduler tracepoints' task, binprm and file pointers are BTF-typed, so the kernel reads are plain loads the verifier makes fault-safe instead of a helper call each (about 1 us less per exec); needs no BPF trampoline (Linux 5.5+); where the kernel refuses it, the same programs attach as raw tracepoints (`process.hooks`)";
const SYSCALL_REASON: &str = "one hook for every syscall, filtered by number first; the registers and (through bpf_get_current_task_btf, Linux 5.11+) the task are BTF-typed, so the syscall number, the arguments and the task's ids are plain loads instead of helper calls, and a record waits for its exit in the thread's task local storage instead of a hash map; where the kernel refuses either, the same programs attach as raw tracepoints with a hash map (`syscalls.hooks`)";

const TWIN_PROGRAMS: &[TwinProgram] = &[
    TwinProgram {
        name: programs::PROCESS_EXEC,
        raw: programs::PROCESS_EXEC_RAW,
        btf_hook: "tp_btf/sched_process_exec",
        raw_hook: "raw_tp/sched_process_exec",
        group: HookGroup::Process,
        reason: PROCESS_REASON,
    },
    TwinProgram {
        name: programs::PROCESS_FORK,
        raw: programs::PROCESS_FORK_RAW,
        btf_hook: "tp_btf/sched_process_fork",
        raw_hook: "raw_tp/sched_process_fork",
        group: HookGroup::Process,
        reason: PROCESS_REASON,
    },
    TwinProgram {
        name: programs::PROCESS_EXIT,
        raw: programs::PROCESS_EXIT_RAW,
        btf_hook: "tp_btf/sched_process_exit",
        raw_hook: "raw_tp/sched_process_exit",
        group: HookGroup::Process,
        reason: PROCESS_REASON,
    },
    TwinProgram {
        name: programs::SYSCALL_ENTER,
        raw: programs::SYSCALL_ENTER_RAW,
        btf_hook: "tp_btf/sys_enter",
        raw_hook: "raw_tp/sys_enter",
        group: HookGroup::Syscall,
        reason: SYSCALL_REASON,
    },
    TwinProgram {
        name: programs::SYSCALL_EXIT,
        raw: programs::SYSCALL_EXIT_RAW,
        btf_hook: "tp_btf/sys_exit",
        raw_hook: "raw_tp/sys_exit",
        group: HookGroup::Syscall,
        reason: SYSCALL_REASON,
    },
];

/// The `tp_btf` hook of program `name` and why it is used (`None`: it has no such form).
pub fn btf_hook(name: &str) -> Option<(&'static str, &'static str)> {
    TWIN_PROGRAMS
        .iter()
        .find(|p| p.name == name)
        .map(|p| (p.btf_hook, p.reason))
}

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
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_OFFSETS, &offsets, true)
            .override_global(GLOBAL_CONFIG, &options.kernel, true)
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
            let twins: Vec<(&TwinProgram, &'static str)> = PROGRAMS
                .iter()
                .filter_map(|&(name, tracepoint)| {
                    let twin = TWIN_PROGRAMS.iter().find(|t| t.name == name)?;
                    (twin.group == group).then_some((twin, tracepoint))
                })
                .collect();
            attached.extend(attach_twins(&mut ebpf, btf, &twins, &mut fallbacks)?);
        }
        for program in &attached {
            // How hard each program was to verify: near the verifier's limit of 1M
            // instructions on an older kernel, a change can tip a program over it.
            let raw = TWIN_PROGRAMS
                .iter()
                .find(|t| t.name == program.name)
                .map(|t| t.raw);
            let verified = std::iter::once(program.name)
                .chain(raw)
                .find_map(|loaded| ebpf.program(loaded)?.info().ok())
                .and_then(|info| info.verified_instruction_count());
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
            // The program's raw twin, when that is what was loaded.
            let raw = TWIN_PROGRAMS.iter().find(|p| p.name == name).map(|p| p.raw);
            let info = std::iter::once(name)
                .chain(raw)
                .find_map(|loaded| ebpf.program(loaded)?.info().ok())?;
            Some((name, info.run_time(), info.run_count()))
        })
        .collect()
}

/// Fills the syscall bitmap, the arg-type table and the allowed cgroups.
fn write_syscall_filter(
    ebpf: &mut Ebpf,
    filter: &KernelFilter,
    cgroups: &[u64],
) -> Result<(), BpfError> {
    let error = |name| move |source| BpfError::SyscallFilter { name, source };
    let mut bitmap: Array<_, u64> = ebpf
        .map_mut(SYSCALL_FILTER)
        .and_then(|map| Array::try_from(map).ok())
        .ok_or(BpfError::Map {
            name: SYSCALL_FILTER,
        })?;
    for (i, &word) in filter.bitmap.iter().enumerate() {
        bitmap
            .set(i as u32, word, 0)
            .map_err(error(SYSCALL_FILTER))?;
    }
    let mut types: Array<_, u32> = ebpf
        .map_mut(SYSCALL_ARG_TYPES)
        .and_then(|map| Array::try_from(map).ok())
        .ok_or(BpfError::Map {
            name: SYSCALL_ARG_TYPES,
        })?;
    for &(nr, word) in &filter.arg_types {
        types.set(nr, word, 0).map_err(error(SYSCALL_ARG_TYPES))?;
    }
    let mut allowed: HashMap<_, u64, u8> = ebpf
        .map_mut(SYSCALL_CGROUPS)
        .and_then(|map| HashMap::try_from(map).ok())
        .ok_or(BpfError::Map {
            name: SYSCALL_CGROUPS,
        })?;
    for &id in cgroups {
        allowed.insert(id, 1, 0).map_err(error(SYSCALL_CGROUPS))?;
    }
    Ok(())
}

/// Fills the file sensor's watch prefixes from index 0 (the rest stay empty: the list's end).
fn write_file_prefixes(
    ebpf: &mut Ebpf,
    prefixes: &[vigil_common::syscall::FilePrefix],
) -> Result<(), BpfError> {
    let mut map: Array<_, vigil_common::syscall::FilePrefix> = ebpf
        .map_mut(FILE_PREFIXES)
        .and_then(|map| Array::try_from(map).ok())
        .ok_or(BpfError::Map {
            name: FILE_PREFIXES,
        })?;
    let max = vigil_common::syscall::FILE_PREFIXES_MAX as usize;
    for (i, prefix) in prefixes.iter().take(max).enumerate() {
        map.set(i as u32, prefix, 0)
            .map_err(|source| BpfError::SyscallFilter {
                name: FILE_PREFIXES,
                source,
            })?;
    }
    Ok(())
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

/// Attaches a group of twin programs, each at its tracepoint, as `tp_btf` (with
/// `kernel_btf`) or, when any of them is refused or that is not asked for, all as their
/// raw-tracepoint twins; returns what was attached. A fallback is logged and listed in
/// `fallbacks` (nothing is missing: each kernel read costs a helper call more).
fn attach_twins(
    ebpf: &mut Ebpf,
    kernel_btf: Option<&aya::Btf>,
    twins: &[(&TwinProgram, &'static str)],
    fallbacks: &mut Vec<String>,
) -> Result<Vec<AttachedProgram>, BpfError> {
    if let Some(btf) = kernel_btf {
        match attach_btf_group(ebpf, btf, twins) {
            Ok(()) => {
                return Ok(twins
                    .iter()
                    .map(|(twin, _)| AttachedProgram {
                        name: twin.name,
                        hook: twin.btf_hook,
                    })
                    .collect());
            }
            Err(problem) => {
                // The verifier's log can be 100 KiB; what it refused is at its end.
                let problem = crate::telemetry::chain(&problem);
                let problem = crate::telemetry::shorten(&problem, 1200);
                let raw: Vec<&str> = twins.iter().map(|(twin, _)| twin.raw).collect();
                tracing::warn!(
                    %problem,
                    ?raw,
                    "The kernel refused a tp_btf program; its group uses the raw-tracepoint twins (nothing is missing; each kernel read costs a helper call more)."
                );
                fallbacks.push(format!(
                    "{problem}; {} attached instead, nothing missing",
                    raw.join(", ")
                ));
            }
        }
    }
    let mut attached = Vec::with_capacity(twins.len());
    for &(twin, tracepoint) in twins {
        attach_tracing(ebpf, None, twin.raw, tracepoint)?;
        attached.push(AttachedProgram {
            name: twin.name,
            hook: twin.raw_hook,
        });
    }
    Ok(attached)
}

/// Attaches every program of `twins` as `tp_btf`, or none: on a refusal, the ones already
/// attached are unloaded (which detaches them).
fn attach_btf_group(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    twins: &[(&TwinProgram, &'static str)],
) -> Result<(), BpfError> {
    for (i, &(twin, tracepoint)) in twins.iter().enumerate() {
        if let Err(problem) = attach_tracing(ebpf, Some(btf), twin.name, tracepoint) {
            for &(done, _) in &twins[..=i] {
                if let Some(Program::BtfTracePoint(program)) = ebpf.program_mut(done.name) {
                    let _ = program.unload();
                }
            }
            return Err(problem);
        }
    }
    Ok(())
}

/// Loads and attaches a tracing program at `hook`, the way its section in the object says:
/// `tp_btf` (needs `kernel_btf`) or `raw_tp` (the twins, whose arguments are plain
/// numbers).
fn attach_tracing(
    ebpf: &mut Ebpf,
    kernel_btf: Option<&aya::Btf>,
    name: &'static str,
    hook: &'static str,
) -> Result<(), BpfError> {
    let program = ebpf
        .program_mut(name)
        .ok_or(BpfError::MissingProgram { name })?;
    let result = match (program, kernel_btf) {
        (Program::BtfTracePoint(program), Some(btf)) => program
            .load(hook, btf)
            .and_then(|()| program.attach().map(drop)),
        (Program::RawTracePoint(program), _) => {
            program.load().and_then(|()| program.attach(hook).map(drop))
        }
        _ => Err(ProgramError::UnexpectedProgramType),
    };
    result.map_err(|source| BpfError::Program { name, hook, source })
}
