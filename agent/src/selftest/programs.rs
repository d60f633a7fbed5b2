//! What the kernel allows (the same probe as `vigil probe`) and whether every program Vigil
//! ships loads and attaches, or is reported unsupported with the fallback that is used.

use crate::{
    bpf::{
        OPTIONAL_PROGRAMS, PROGRAMS,
        probe::{Feature, ProbeReport},
    },
    enforce::{ENFORCE_PROGRAMS, InstallReport},
    runtime::Agent,
};

use super::Outcome;

/// Probe features that say something about the kernel (not about this guest's set-up, such as
/// a container runtime).
const KERNEL_FEATURES: &[&str] = &[
    "btf",
    "ring_buffer",
    "task_storage",
    "raw_tracepoint",
    "tracepoint",
    "cgroup_skb",
    "cgroup_sock_addr",
    "fentry",
    "lsm",
    "bpf_lsm_enabled",
    "tracefs",
];

/// One `probe.<feature>` row per kernel feature: pass when the kernel has it.
pub fn probe_rows(report: &ProbeReport) -> Vec<(String, Outcome)> {
    KERNEL_FEATURES
        .iter()
        .map(|&name| {
            let outcome = match report.features.iter().find(|f| f.name == name) {
                Some(Feature {
                    supported: true,
                    detail,
                    ..
                }) => Outcome::Pass(detail.clone()),
                Some(Feature { detail, .. }) => Outcome::Unsupported(detail.clone()),
                None => Outcome::Fail("the probe no longer reports this feature".into()),
            };
            (format!("probe.{name}"), outcome)
        })
        .collect()
}

/// One `load.<program>` row per sensor program, from the running agent (or the reason it
/// did not start). An optional program that could not attach is `unsupported`, with what is
/// not reported instead.
pub fn sensor_rows(agent: Result<&Agent, &str>) -> Vec<(String, Outcome)> {
    let sensor = agent.map(|a| (a.attached(), a.sensor().map(|s| s.fallbacks.clone())));
    PROGRAMS
        .iter()
        .chain(OPTIONAL_PROGRAMS)
        .enumerate()
        .map(|(i, &(name, hook))| {
            let outcome = match &sensor {
                // The whole reason (a verifier log) once; its first line on the other rows.
                Err(why) if i == 0 => Outcome::Fail(format!("the sensor did not load: {why}")),
                Err(why) => Outcome::Fail(format!(
                    "the sensor did not load: {}",
                    why.lines().next().unwrap_or_default()
                )),
                Ok((attached, fallbacks)) => {
                    let fallback = fallbacks
                        .as_deref()
                        .and_then(|all| all.iter().find(|f| f.starts_with(&format!("{name} "))));
                    if let Some(program) = attached.iter().find(|p| p.name == name) {
                        // The hook it attached at: a process program says whether it is the
                        // `tp_btf` program or its raw-tracepoint twin (with why, if a twin).
                        match fallback {
                            Some(why) => {
                                Outcome::Pass(format!("attached at {}; {why}", program.hook))
                            }
                            None => Outcome::Pass(format!("attached at {}", program.hook)),
                        }
                    } else if let Some(why) = fallback {
                        Outcome::Unsupported(why.clone())
                    } else {
                        Outcome::Fail(format!("not attached at {hook}, and no fallback named"))
                    }
                }
            };
            (format!("load.{name}"), outcome)
        })
        .collect()
}

/// One `load.<program>` row per enforcement program, from the install that prefers the
/// BPF-LSM variants: each is attached, or its duty is done by the other variant (a BPF-LSM
/// program that fell back is `unsupported` with the reason; a fallback not needed passes).
pub fn enforcement_rows(install: Result<&InstallReport, &str>) -> Vec<(String, Outcome)> {
    ENFORCE_PROGRAMS
        .iter()
        .map(|program| {
            let (name, hook) = (program.name, program.hook);
            let attached =
                |r: &InstallReport| r.attached.contains(&name) || r.already.contains(&name);
            let outcome = match install {
                Err(why) => Outcome::Fail(format!("the enforcement install failed: {why}")),
                Ok(report) if attached(report) => {
                    Outcome::Pass(format!("attached at {hook} and pinned"))
                }
                Ok(report) => match report.fallbacks.iter().find(|f| f.duty == program.duty) {
                    Some(fallback) if program.is_lsm() => Outcome::Unsupported(format!(
                        "{}; fallback: {}",
                        fallback.reason,
                        if fallback.programs.is_empty() {
                            "none".to_owned()
                        } else {
                            fallback.programs.join(", ")
                        }
                    )),
                    None if !program.is_lsm() => Outcome::Pass(format!(
                        "not attached: the BPF-LSM variant does the {} duty",
                        program.duty.name()
                    )),
                    _ => Outcome::Fail(format!("the install did not attach it at {hook}")),
                },
            };
            (format!("load.{name}"), outcome)
        })
        .collect()
}
