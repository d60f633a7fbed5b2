//! `vigil probe`: what this kernel allows, and what Vigil uses on it.

use std::path::Path;

use aya::{
    maps::MapType,
    programs::{LsmAttachType, ProgramType},
    sys::{is_map_supported, is_program_supported},
};
use serde::Serialize;

use vigil_common::maps::programs;

use super::{btf::VMLINUX_BTF_PATH, load::PROGRAMS, preflight};

#[derive(Clone, Debug, Serialize)]
pub struct Feature {
    pub name: &'static str,
    pub supported: bool,
    /// Why not, or how it was found.
    pub detail: String,
    /// When unsupported: what to change, and what does not work meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Use {
    pub program: &'static str,
    pub hook: String,
    pub mechanism: &'static str,
    /// Why this mechanism and not a newer one.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    pub kernel: String,
    pub features: Vec<Feature>,
    pub uses: Vec<Use>,
}

impl Feature {
    /// A feature without advice yet: [`probe`] adds it to the unsupported ones at the end.
    fn new(name: &'static str, supported: bool, detail: impl Into<String>) -> Self {
        Self {
            name,
            supported,
            detail: detail.into(),
            advice: None,
        }
    }
}

fn program(name: &'static str, program_type: ProgramType) -> Feature {
    match is_program_supported(program_type) {
        Ok(true) => Feature::new(name, true, "a trivial program loads"),
        Ok(false) => Feature::new(name, false, "the kernel does not know this program type"),
        Err(error) => Feature::new(name, false, format!("refused by the kernel: {error}")),
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Probes the running kernel. Needs the same privileges as `vigil run` for exact answers.
pub fn probe() -> ProbeReport {
    let caps = preflight::effective_caps();
    let lsm_list = preflight::active_lsms().unwrap_or_else(|why| why);
    let cgroup_v2 = crate::cgroup::CgroupFs::discover().v2_root;
    let mut features = vec![
        Feature::new(
            "privileges",
            preflight::caps_sufficient(caps),
            format!("effective capabilities {caps:#x}"),
        ),
        Feature::new(
            "btf",
            Path::new(VMLINUX_BTF_PATH).exists(),
            VMLINUX_BTF_PATH,
        ),
        match is_map_supported(MapType::RingBuf) {
            Ok(ok) => Feature::new("ring_buffer", ok, "BPF_MAP_TYPE_RINGBUF (5.8+)"),
            Err(error) => Feature::new("ring_buffer", false, error.to_string()),
        },
        match is_map_supported(MapType::TaskStorage) {
            Ok(ok) => Feature::new(
                "task_storage",
                ok,
                "BPF_MAP_TYPE_TASK_STORAGE (5.11+): the syscall programs' per-thread stash",
            ),
            Err(error) => Feature::new("task_storage", false, error.to_string()),
        },
        program("raw_tracepoint", ProgramType::RawTracePoint),
        program("tracepoint", ProgramType::TracePoint),
        program("cgroup_skb", ProgramType::CgroupSkb),
        program("cgroup_sock_addr", ProgramType::CgroupSockAddr),
        program("fentry", ProgramType::Tracing),
        program("lsm", ProgramType::Lsm(LsmAttachType::Mac)),
        Feature::new(
            "bpf_lsm_enabled",
            lsm_list.split(',').any(|l| l.trim() == "bpf"),
            format!("/sys/kernel/security/lsm: {}", lsm_list.trim()),
        ),
        Feature::new(
            "cgroup_v2",
            cgroup_v2.is_some(),
            cgroup_v2.map_or_else(
                || "no cgroup2 mount in /proc/self/mountinfo".to_owned(),
                |root| root.display().to_string(),
            ),
        ),
    ];
    features.push(match preflight::ensure_tracefs() {
        Ok(path) => Feature::new("tracefs", true, path),
        Err(error) => Feature::new("tracefs", false, error.to_string()),
    });
    // Not a kernel feature, but what `enrich` needs for pod metadata (auto-detected socket).
    let runtime = crate::enrich::probe_runtime(&crate::enrich::EnrichConfig::default());
    features.push(match runtime {
        Ok(found) => Feature::new("container_runtime", true, found),
        Err(why) => Feature::new("container_runtime", false, why),
    });
    for feature in features.iter_mut().filter(|f| !f.supported) {
        feature.advice = super::advice::advice(feature.name, &lsm_list);
    }
    let mut uses: Vec<Use> = PROGRAMS
        .iter()
        .map(|&(program, hook)| match super::twins::btf_hook(program) {
            Some((btf_hook, reason)) => Use {
                program,
                hook: btf_hook.into(),
                mechanism: "tp_btf",
                reason,
            },
            None => Use {
                program,
                hook: format!("raw_tp/{hook}"),
                mechanism: "raw_tracepoint",
                reason: "works on every kernel Vigil supports, needs neither tracefs nor BPF trampolines",
            },
        })
        .collect();
    uses.push(Use {
        program: programs::NETWORK_TCP_STATE,
        hook: "tp/sock/inet_sock_set_state".into(),
        mechanism: "tracepoint",
        reason: "TCP closes and connect outcomes; its record carries addresses and ports, so no struct sock offsets are needed",
    });
    uses.push(Use {
        program: programs::NETWORK_DNS,
        hook: "cgroup_skb/egress".into(),
        mechanism: "cgroup_skb at the cgroup v2 root",
        reason: "DNS queries: sees every packet a socket of the node sends, whatever syscall sent it",
    });
    let lsm_loads = features.iter().any(|f| f.name == "lsm" && f.supported);
    let bpf_lsm_active = lsm_list.split(',').any(|l| l.trim() == "bpf");
    uses.extend(crate::enforce::probe::uses(lsm_loads, bpf_lsm_active));
    ProbeReport {
        kernel: kernel_release(),
        features,
        uses,
    }
}

impl ProbeReport {
    /// A readable table.
    pub fn render_text(&self) -> String {
        let mut out = format!("kernel {}\n\nfeatures:\n", self.kernel);
        for f in &self.features {
            let mark = if f.supported { "yes" } else { "no " };
            out.push_str(&format!("  {:<18} {mark}  {}\n", f.name, f.detail));
            if let Some(advice) = &f.advice {
                out.push_str(&format!("  {:<18}      -> {advice}\n", ""));
            }
        }
        out.push_str("\nVigil uses:\n");
        for u in &self.uses {
            out.push_str(&format!(
                "  {:<18} {:<30} {}\n",
                u.program, u.hook, u.mechanism
            ));
        }
        let mut reasons: Vec<&str> = Vec::new();
        for u in &self.uses {
            if !reasons.contains(&u.reason) {
                reasons.push(u.reason);
                out.push_str(&format!("  (why {}: {})\n", u.mechanism, u.reason));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On whatever this machine lacks (without root: nearly everything), each missing feature
    /// says what to do; a present one carries no advice.
    #[test]
    fn every_unsupported_feature_of_this_machine_carries_advice() {
        let report = probe();
        for feature in &report.features {
            match (&feature.advice, feature.supported) {
                (Some(advice), false) => assert!(advice.len() > 40, "{}: {advice}", feature.name),
                (None, true) => {}
                (advice, supported) => {
                    panic!("{}: supported={supported}, advice={advice:?}", feature.name)
                }
            }
        }
        let text = report.render_text();
        let unsupported = report.features.iter().filter(|f| !f.supported).count();
        assert_eq!(text.matches("      -> ").count(), unsupported, "{text}");
    }
}
