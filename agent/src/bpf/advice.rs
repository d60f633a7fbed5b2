//! What `vigil probe` tells an operator to do about each feature the node lacks: one sentence
//! a person can act on, naming what stops working meanwhile.

/// The advice for the feature `name` when it is unsupported; `lsm_list` is the content of
/// /sys/kernel/security/lsm (the active LSMs). `None` for a name without advice.
pub fn advice(name: &str, lsm_list: &str) -> Option<String> {
    let text = match name {
        "privileges" => {
            "Run as root, or grant CAP_BPF and CAP_PERFMON (Linux 5.8+; before that CAP_SYS_ADMIN), plus CAP_NET_ADMIN (DNS, connect deny), CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (/proc reads) and CAP_KILL (kill actions): the README's capability table says why each one."
        }
        "btf" => {
            "Boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (the stock kernels of Debian 11+, Ubuntu 20.10+ and RHEL 8.2+ are), and in a container mount the host's /sys/kernel/btf: Vigil cannot start without it."
        }
        "ring_buffer" => {
            "Upgrade the kernel to Linux 5.8 or later: every event travels through a BPF ring buffer, so Vigil cannot start without one."
        }
        "task_storage" => {
            "Nothing is missing: Vigil loads its object built without task local storage, whose syscall programs keep each record in a hash map (slower per selected syscall; at most 4,096 threads inside a selected syscall at once, beyond that counted as syscall_stash_full). Linux 5.11 or later has it."
        }
        "raw_tracepoint" => {
            "Vigil cannot start: its process, syscall, network and file sensors are raw tracepoint programs; run it as root or with CAP_BPF and CAP_PERFMON on Linux 4.17 or later."
        }
        "tracepoint" => {
            "TCP closes and non-blocking connect outcomes are not reported: grant CAP_PERFMON and make sure tracefs is mounted (mount -t tracefs none /sys/kernel/tracing)."
        }
        "cgroup_skb" => {
            "DNS queries are not reported: grant CAP_NET_ADMIN (cgroup programs need it) and mount the cgroup v2 hierarchy."
        }
        "cgroup_sock_addr" => {
            "Connect deny and network isolation cannot be enforced in the kernel: grant CAP_NET_ADMIN and mount the cgroup v2 hierarchy."
        }
        "cgroup_v2" => {
            "DNS queries, connect deny, isolation and the cgroup v2 freezer need the unified hierarchy: mount it (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with systemd.unified_cgroup_hierarchy=1; freeze then falls back to the v1 freezer."
        }
        "fentry" => {
            "Nothing is missing: Vigil uses BTF and raw tracepoints where fentry would do (neither needs a trampoline). fentry needs BPF trampolines (x86_64 Linux 5.5+, arm64 6.4+), which this kernel or its hypervisor refuses."
        }
        "lsm" => {
            "Enforcement uses kill-on-exec (SIGKILL as the exec completes) instead of refusing the exec: a kernel with CONFIG_BPF_LSM=y and BPF trampolines would load BPF-LSM programs."
        }
        "bpf_lsm_enabled" => return Some(bpf_lsm(lsm_list)),
        "tracefs" => {
            "The TCP state tracepoint cannot attach: mount tracefs (mount -t tracefs none /sys/kernel/tracing), or in a container mount the host's /sys/kernel/tracing."
        }
        "container_runtime" => {
            "Events carry container ids but no names, images or pods: set enrich.cri_socket to the runtime's CRI socket (containerd: /run/containerd/containerd.sock, CRI-O: /run/crio/crio.sock), mounted into the agent's container if it runs in one."
        }
        _ => return None,
    };
    Some(text.to_owned())
}

/// The kernel command line change that activates the bpf LSM, keeping the active ones.
fn bpf_lsm(lsm_list: &str) -> String {
    let active: Vec<&str> = lsm_list
        .trim()
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let wanted = if active.is_empty() {
        "lsm=lockdown,capability,landlock,yama,apparmor,bpf (your distribution's list with bpf added; securityfs is not mounted or lists none, so the active list is unknown)".to_owned()
    } else {
        format!("lsm={},bpf", active.join(","))
    };
    format!(
        "BPF-LSM is not enabled: add {wanted} to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot, so that the kernel can refuse an exec or connect before it happens instead of Vigil killing the process after exec."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_lsm_advice_keeps_the_active_lsms() {
        let text =
            advice("bpf_lsm_enabled", "lockdown,capability,yama,apparmor\n").expect("advice");
        assert!(
            text.contains(
                "add lsm=lockdown,capability,yama,apparmor,bpf to the kernel command line"
            ),
            "{text}"
        );
        let unknown = advice("bpf_lsm_enabled", "").expect("advice");
        assert!(unknown.contains("securityfs is not mounted"), "{unknown}");
    }

    #[test]
    fn every_probed_feature_has_advice() {
        for name in [
            "privileges",
            "btf",
            "ring_buffer",
            "task_storage",
            "raw_tracepoint",
            "tracepoint",
            "cgroup_skb",
            "cgroup_sock_addr",
            "cgroup_v2",
            "fentry",
            "lsm",
            "bpf_lsm_enabled",
            "tracefs",
            "container_runtime",
        ] {
            let text = advice(name, "").unwrap_or_else(|| panic!("no advice for {name}"));
            assert!(text.ends_with('.'), "{name}: a sentence: {text}");
        }
        assert_eq!(advice("no_such_feature", ""), None);
    }
}
