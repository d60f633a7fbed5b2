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

fn program(name: &'static str, program_type: ProgramType) -> Feature {
    match is_program_supported(program_type) {
        Ok(true) => Feature {
            name,
            supported: true,
            detail: "a trivial program loads".into(),
        },
        Ok(false) => Feature {
            name,
            supported: false,
            detail: "the kernel does not know this program type".into(),
        },
        Err(error) => Feature {
            name,
            supported: false,
            detail: format!("refused by the kernel: {error}"),
        },
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
    let mut features = vec![
        Feature {
            name: "privileges",
            supported: preflight::caps_sufficient(caps),
            detail: format!("effective capabilities {caps:#x}"),
        },
        Feature {
            name: "btf",
            supported: Path::new(VMLINUX_BTF_PATH).exists(),
            detail: VMLINUX_BTF_PATH.into(),
        },
        match is_map_supported(MapType::RingBuf) {
            Ok(ok) => Feature {
                name: "ring_buffer",
                supported: ok,
                detail: "BPF_MAP_TYPE_RINGBUF (5.8+)".into(),
            },
            Err(error) => Feature {
                name: "ring_buffer",
                supported: false,
                detail: error.to_string(),
            },
        },
        program("raw_tracepoint", ProgramType::RawTracePoint),
        program("tracepoint", ProgramType::TracePoint),
        program("cgroup_skb", ProgramType::CgroupSkb),
        program("cgroup_sock_addr", ProgramType::CgroupSockAddr),
        program("fentry_tp_btf", ProgramType::Tracing),
        program("lsm", ProgramType::Lsm(LsmAttachType::Mac)),
        Feature {
            name: "bpf_lsm_enabled",
            supported: lsm_list.split(',').any(|l| l.trim() == "bpf"),
            detail: format!("/sys/kernel/security/lsm: {}", lsm_list.trim()),
        },
    ];
    features.push(match preflight::ensure_tracefs() {
        Ok(path) => Feature {
            name: "tracefs",
            supported: true,
            detail: path.into(),
        },
        Err(error) => Feature {
            name: "tracefs",
            supported: false,
            detail: error.to_string(),
        },
    });
    // Not a kernel feature, but what `enrich` needs for pod metadata (auto-detected socket).
    let runtime = crate::enrich::probe_runtime(&crate::enrich::EnrichConfig::default());
    features.push(Feature {
        name: "container_runtime",
        supported: runtime.is_ok(),
        detail: runtime.unwrap_or_else(|why| why),
    });
    let mut uses: Vec<Use> = PROGRAMS
        .iter()
        .map(|&(program, hook)| Use {
            program,
            hook: format!("raw_tp/{hook}"),
            mechanism: "raw_tracepoint",
            reason: "works on every kernel Vigil supports (4.17+), needs neither tracefs nor BPF trampolines; the scheduler tracepoints carry the task and binprm pointers directly",
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
