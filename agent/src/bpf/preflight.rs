//! What must hold before loading: privileges, BTF, tracefs. Each failure says what is missing
//! and how to fix it.

use std::path::Path;

use super::btf::VMLINUX_BTF_PATH;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "Vigil needs root, or CAP_BPF + CAP_PERFMON (+ CAP_SYS_RESOURCE on kernels before 5.11), or CAP_SYS_ADMIN; this process has effective capabilities {caps:#x}"
    )]
    Privileges { caps: u64 },
    #[error(
        "the kernel has no BTF at {path} (needs CONFIG_DEBUG_INFO_BTF=y, Linux 5.4+): Vigil reads kernel struct layouts from it"
    )]
    NoBtf { path: &'static str },
    #[error("tracefs is not mounted at /sys/kernel/tracing and mounting it failed: {reason}")]
    Tracefs { reason: String },
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process, from /proc/self/status.
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Whether `caps` allows loading tracing programs and reading their maps.
pub fn caps_sufficient(caps: u64) -> bool {
    let has = |cap: u32| caps & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

pub fn check_privileges() -> Result<(), PreflightError> {
    let caps = effective_caps();
    if caps_sufficient(caps) {
        Ok(())
    } else {
        Err(PreflightError::Privileges { caps })
    }
}

pub fn check_btf() -> Result<(), PreflightError> {
    if Path::new(VMLINUX_BTF_PATH).exists() {
        Ok(())
    } else {
        Err(PreflightError::NoBtf {
            path: VMLINUX_BTF_PATH,
        })
    }
}

/// Makes sure tracefs is available (classic tracepoints need it to look up ids; raw
/// tracepoints, which the process sensor uses, do not). Mounts it when missing.
pub fn ensure_tracefs() -> Result<&'static str, PreflightError> {
    const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
    if let Some(found) = CANDIDATES
        .iter()
        .find(|dir| Path::new(dir).join("events").is_dir())
    {
        return Ok(found);
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(CANDIDATES[0])
    } else {
        Err(PreflightError::Tracefs {
            reason: std::io::Error::last_os_error().to_string(),
        })
    }
}

/// The active LSMs, from securityfs (`/sys/kernel/security/lsm`), which is mounted when
/// missing (a fresh node or a container may lack it). `Err`: why the list cannot be read.
pub fn active_lsms() -> Result<String, String> {
    const LSM_LIST: &str = "/sys/kernel/security/lsm";
    if let Ok(list) = std::fs::read_to_string(LSM_LIST) {
        return Ok(list.trim().to_owned());
    }
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe {
        libc::mount(
            c"securityfs".as_ptr(),
            c"/sys/kernel/security".as_ptr(),
            c"securityfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let mounted = if rc == 0 {
        "mounted securityfs".to_owned()
    } else {
        format!(
            "mounting securityfs failed: {}",
            std::io::Error::last_os_error()
        )
    };
    std::fs::read_to_string(LSM_LIST)
        .map(|list| list.trim().to_owned())
        .map_err(|error| format!("cannot read {LSM_LIST} ({error}; {mounted})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets() {
        assert!(caps_sufficient(1 << CAP_SYS_ADMIN));
        assert!(caps_sufficient((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!caps_sufficient(1 << CAP_BPF));
        assert!(!caps_sufficient(0));
    }

    #[test]
    fn privilege_error_names_what_is_missing() {
        let text = PreflightError::Privileges { caps: 0 }.to_string();
        assert!(text.contains("CAP_BPF") && text.contains("0x0"), "{text}");
    }
}
