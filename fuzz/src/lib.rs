//! What the fuzz targets share: real domain events to evaluate against, built from the
//! shipped behaviour cases as `vigil policy test` builds them.

use std::sync::LazyLock;

use vigil::event::Event;

/// The events of every case in `policies/tests`, with the node each names.
pub static EVENTS: LazyLock<Vec<(String, Event)>> = LazyLock::new(|| {
    [
        (
            "container.yaml",
            include_str!("../../policies/tests/container.yaml"),
        ),
        (
            "credentials.yaml",
            include_str!("../../policies/tests/credentials.yaml"),
        ),
        (
            "execution.yaml",
            include_str!("../../policies/tests/execution.yaml"),
        ),
        (
            "network.yaml",
            include_str!("../../policies/tests/network.yaml"),
        ),
        (
            "privilege.yaml",
            include_str!("../../policies/tests/privilege.yaml"),
        ),
    ]
    .into_iter()
    .flat_map(|(file, text)| {
        vigil::policy::cases::events(text, file).expect("the shipped cases parse")
    })
    .collect()
});
