//! `container` and `pod` of a JSON line (omitted outside containers; unknown fields omitted).

use super::write::{self, Object};
use crate::enrich::{Container, Pod};

/// `container: {id, runtime, name?, image?, image_digest?}`.
pub(super) fn container(out: &mut Vec<u8>, container: &Container) {
    let mut o = Object::open(out);
    o.str("id", container.id.as_str());
    o.str("runtime", container.runtime.as_str());
    o.some_str("name", container.name.as_deref());
    o.some_str("image", container.image.as_deref());
    o.some_str("image_digest", container.image_digest.as_deref());
    o.close();
}

/// `pod: {name?, namespace?, uid?, labels?}` (labels in key order, left out when none).
pub(super) fn pod(out: &mut Vec<u8>, pod: &Pod) {
    let mut o = Object::open(out);
    o.some_str("name", pod.name.as_deref());
    o.some_str("namespace", pod.namespace.as_deref());
    o.some_str("uid", pod.uid.as_deref());
    if !pod.labels.is_empty() {
        let out = o.key("labels");
        out.push(b'{');
        for (i, (key, value)) in pod.labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write::str(out, key);
            out.push(b':');
            write::str(out, value);
        }
        out.push(b'}');
    }
    o.close();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::{
        clock::BootClock,
        enrich::{Container, ContainerId, Pod, Runtime},
        event::{Detail, Event, Loss},
        export::json::JsonRenderer,
    };

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
