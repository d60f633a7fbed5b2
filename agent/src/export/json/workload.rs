//! `container` and `pod` of a JSON line (omitted outside containers; unknown fields omitted).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::enrich::{Container, Pod};

#[derive(Serialize)]
pub(super) struct ContainerJson<'a> {
    id: &'a str,
    runtime: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_digest: Option<&'a str>,
}

impl<'a> ContainerJson<'a> {
    pub(super) fn new(container: &'a Container) -> Self {
        Self {
            id: container.id.as_str(),
            runtime: container.runtime.as_str(),
            name: container.name.as_deref(),
            image: container.image.as_deref(),
            image_digest: container.image_digest.as_deref(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct PodJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
}

impl<'a> PodJson<'a> {
    pub(super) fn new(pod: &'a Pod) -> Self {
        Self {
            name: pod.name.as_deref(),
            namespace: pod.namespace.as_deref(),
            uid: pod.uid.as_deref(),
            labels: &pod.labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::{
        clock::BootClock,
        enrich::{ContainerId, Runtime},
        event::{Detail, Event, Loss},
        export::json::JsonRenderer,
    };

    use super::*;

    fn render(event: &Event) -> serde_json::Value {
        let mut out = Vec::new();
        JsonRenderer::new("n".into(), BootClock::with_offset(0)).render(event, &mut out);
        serde_json::from_slice(&out).expect("JSON")
    }

    #[test]
    fn container_and_pod_fields() {
        let mut event = Event::new(1, 0, None, None, Detail::Loss(Loss::default()));
        assert!(render(&event).get("container").is_none());
        assert!(render(&event).get("pod").is_none());
        event.container = Some(Arc::new(Container {
            id: ContainerId("abc".into()),
            runtime: Runtime::Containerd,
            name: Some("web".into()),
            image: Some("localhost/app:1".into()),
            image_digest: Some("sha256:00".into()),
        }));
        event.pod = Some(Arc::new(Pod {
            name: Some("web-0".into()),
            namespace: Some("shop".into()),
            uid: Some("u-1".into()),
            labels: [("app".to_owned(), "web".to_owned())].into(),
        }));
        let line = render(&event);
        assert_eq!(
            line["container"],
            json!({"id": "abc", "runtime": "containerd", "name": "web",
                   "image": "localhost/app:1", "image_digest": "sha256:00"})
        );
        assert_eq!(
            line["pod"],
            json!({"name": "web-0", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}})
        );
        // Only what the cgroup path tells.
        event.container = Some(Arc::new(Container {
            id: ContainerId("abc".into()),
            runtime: Runtime::Cri,
            name: None,
            image: None,
            image_digest: None,
        }));
        event.pod = Some(Arc::new(Pod {
            uid: Some("u-1".into()),
            ..Pod::default()
        }));
        let line = render(&event);
        assert_eq!(line["container"], json!({"id": "abc", "runtime": "cri"}));
        assert_eq!(line["pod"], json!({"uid": "u-1"}));
    }
}
