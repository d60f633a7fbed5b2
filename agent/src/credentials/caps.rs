//! Capability names (`include/uapi/linux/capability.h`), by bit number.

/// Names of capabilities 0 to 40 (`CAP_CHECKPOINT_RESTORE`, Linux 5.9, is the last one).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The name of capability `bit`; a capability newer than Vigil is `CAP_<bit>`.
pub fn cap_name(bit: u32) -> std::borrow::Cow<'static, str> {
    match NAMES.get(bit as usize) {
        Some(name) => (*name).into(),
        None => format!("CAP_{bit}").into(),
    }
}

/// The names of the capabilities in `mask`, lowest bit first.
pub fn cap_names(mask: u64) -> Vec<std::borrow::Cow<'static, str>> {
    (0..64)
        .filter(|bit| mask & (1 << bit) != 0)
        .map(cap_name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kernel_numbering() {
        assert_eq!(cap_name(0), "CAP_CHOWN");
        assert_eq!(cap_name(13), "CAP_NET_RAW");
        assert_eq!(cap_name(21), "CAP_SYS_ADMIN");
        assert_eq!(cap_name(39), "CAP_BPF");
        assert_eq!(cap_name(40), "CAP_CHECKPOINT_RESTORE");
        assert_eq!(cap_name(41), "CAP_41");
        assert_eq!(
            cap_names((1 << 13) | (1 << 21) | (1 << 63)),
            ["CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_63"]
        );
        assert!(cap_names(0).is_empty());
    }
}
