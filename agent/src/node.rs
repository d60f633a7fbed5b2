//! The node's name, as events report it.

/// The environment variable a deployment sets to the node's name. In a Kubernetes pod the
/// host name is the pod's, so the DaemonSet passes `spec.nodeName` here.
pub const NODE_NAME_ENV: &str = "VIGIL_NODE_NAME";

/// The configured name, else `$VIGIL_NODE_NAME`, else the kernel's host name.
pub fn node_name(configured: &str) -> String {
    let hostname = || {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .ok()
    };
    choose(configured, std::env::var(NODE_NAME_ENV).ok(), hostname)
}

/// The first non-empty of the three, in order of precedence; "unknown" when none is.
fn choose(
    configured: &str,
    from_env: Option<String>,
    hostname: impl FnOnce() -> Option<String>,
) -> String {
    let non_empty = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    non_empty(Some(configured.to_owned()))
        .or_else(|| non_empty(from_env))
        .or_else(|| non_empty(hostname()))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn config_then_environment_then_host_name() {
        let host = || Some("pod-7f9c".to_owned());
        assert_eq!(choose("set", Some("node-a".into()), host), "set");
        assert_eq!(choose("", Some("node-a".into()), host), "node-a");
        assert_eq!(choose("", Some(" ".into()), host), "pod-7f9c");
        assert_eq!(choose("", None, host), "pod-7f9c");
        assert_eq!(choose("", None, || None), "unknown");
    }
}
