//! What an event says about the container and the pod it ran in.

use std::collections::BTreeMap;

use super::cgroup_path::{ContainerId, ContainerRef, Runtime};

/// The container of an event. Only `id` and `runtime` are sure to be known: the rest comes
/// from the container runtime's CRI socket, when it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub id: ContainerId,
    pub runtime: Runtime,
    /// The container's name in its pod (`io.kubernetes.container.name`).
    pub name: Option<String>,
    /// The image as the runtime names it (a tag such as `registry/app:1.2`).
    pub image: Option<String>,
    /// `sha256:...`: the repository digest when the runtime knows one, else the image id.
    pub image_digest: Option<String>,
}

impl Container {
    /// What the cgroup path alone tells.
    pub fn from_ref(reference: &ContainerRef) -> Self {
        Self {
            id: reference.id.clone(),
            runtime: reference.runtime,
            name: None,
            image: None,
            image_digest: None,
        }
    }
}

/// The Kubernetes pod of an event. Without CRI metadata only `uid` (from the cgroup path)
/// may be known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pod {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    /// The pod's own labels; the runtime's bookkeeping labels (`io.kubernetes.*`), which
    /// repeat name, namespace and uid, are left out.
    pub labels: BTreeMap<String, String>,
}

impl Pod {
    /// What the cgroup path alone tells, if it names a pod.
    pub fn from_ref(reference: &ContainerRef) -> Option<Self> {
        reference.pod_uid.as_ref().map(|uid| Self {
            uid: Some(uid.clone()),
            ..Self::default()
        })
    }
}

/// The labels the kubelet puts on pods and containers for its own bookkeeping.
pub const KUBERNETES_LABEL_PREFIX: &str = "io.kubernetes.";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// What the CRI socket told about one container (or pod sandbox).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The runtime that answered, when it named itself.
    pub runtime: Option<Runtime>,
    pub name: Option<String>,
    pub image: Option<String>,
    pub image_digest: Option<String>,
    pub pod: Option<Pod>,
}

/// The digest in an image reference: `sha256:<hex>` alone (an image id) or after `@` (a
/// repository digest); `None` for a plain tag.
pub fn image_digest(image_ref: &str) -> Option<String> {
    let digest = image_ref
        .rsplit_once('@')
        .map_or(image_ref, |(_, digest)| digest);
    let (algorithm, hex) = digest.split_once(':')?;
    let valid = !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| digest.to_owned())
}

/// Non-empty text, as an `Option`.
pub(super) fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_from_image_references() {
        let hex = "a".repeat(64);
        assert_eq!(
            image_digest(&format!("sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            image_digest(&format!("docker.io/library/nginx@sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(image_digest("localhost:5000/app:1.2"), None);
        assert_eq!(image_digest("nginx"), None);
        assert_eq!(image_digest(""), None);
        assert_eq!(image_digest("sha256:zz"), None);
    }
}
