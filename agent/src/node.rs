//! The node's name, as events report it.

/// The configured name, or else the kernel's host name.
pub fn node_name(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_owned();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
