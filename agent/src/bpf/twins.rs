//! Programs that exist in two forms, a `tp_btf` one and its raw-tracepoint twin, and how a
//! group of them attaches: all `tp_btf` where the kernel accepts every one, else all raw.

use aya::{
    Ebpf,
    programs::{Program, ProgramError, ProgramInfo},
};
use vigil_common::maps::programs;

use super::load::{AttachedProgram, BpfError, PROGRAMS};

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

/// Programs that attach one way together, picked by one setting of `LoadOptions`: the
/// syscall programs must, since their stash differs between the two ways.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum HookGroup {
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

/// Attaches the twin programs of `group`, each at its tracepoint, as `tp_btf` (with
/// `kernel_btf`) or, when any of them is refused or that is not asked for, all as their
/// raw-tracepoint twins; returns what was attached. A fallback is logged and listed in
/// `fallbacks` (nothing is missing: each kernel read costs a helper call more).
pub(super) fn attach_twins(
    ebpf: &mut Ebpf,
    kernel_btf: Option<&aya::Btf>,
    group: HookGroup,
    fallbacks: &mut Vec<String>,
) -> Result<Vec<AttachedProgram>, BpfError> {
    // In `PROGRAMS` order, each with its tracepoint.
    let twins: Vec<(&TwinProgram, &'static str)> = PROGRAMS
        .iter()
        .filter_map(|&(name, tracepoint)| {
            let twin = TWIN_PROGRAMS.iter().find(|t| t.name == name)?;
            (twin.group == group).then_some((twin, tracepoint))
        })
        .collect();
    let twins = twins.as_slice();
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
pub(super) fn attach_tracing(
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

/// The loaded form of program `name` (itself, or its raw twin when that is what was loaded).
pub(super) fn loaded_info(ebpf: &Ebpf, name: &str) -> Option<ProgramInfo> {
    let raw = TWIN_PROGRAMS.iter().find(|t| t.name == name).map(|t| t.raw);
    std::iter::once(name)
        .chain(raw)
        .find_map(|loaded| ebpf.program(loaded)?.info().ok())
}
