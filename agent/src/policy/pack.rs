//! The default policy pack, embedded in the binary from `policies/default/` (each rule's
//! behaviour cases are in `policies/tests/`).

/// `(file name as errors and findings name it, text)`, in load order.
pub const DEFAULT_PACK: &[(&str, &str)] = &[
    (
        "policies/default/container.yaml",
        include_str!("../../../policies/default/container.yaml"),
    ),
    (
        "policies/default/execution.yaml",
        include_str!("../../../policies/default/execution.yaml"),
    ),
    (
        "policies/default/credentials.yaml",
        include_str!("../../../policies/default/credentials.yaml"),
    ),
    (
        "policies/default/privilege.yaml",
        include_str!("../../../policies/default/privilege.yaml"),
    ),
    (
        "policies/default/network.yaml",
        include_str!("../../../policies/default/network.yaml"),
    ),
];
