//! `container` and `pod` of a JSON line (omitted outside containers; unknown fields omitted).

use std::sync::Arc;

// Keys are addresses of `Arc`s: foldhash is fast on them.
use foldhash::HashMap;

use super::write::{self, Object};
use crate::enrich::{Container, Pod};

/// Rendered objects kept per container or pod; past this many, the cache starts again.
const CACHED_MAX: usize = 4_096;

/// The `container` and `pod` objects already written, by the `Arc` that the enricher shares
/// between the events of a container: each is rendered once and copied after. An entry holds
/// its `Arc`, so the address cannot be reused for another container while it is cached, and
/// what is behind an `Arc` does not change (new metadata is a new `Arc`).
#[derive(Clone, Debug, Default)]
pub(super) struct Workloads {
    containers: HashMap<usize, (Arc<Container>, Box<[u8]>)>,
    pods: HashMap<usize, (Arc<Pod>, Box<[u8]>)>,
}

impl Workloads {
    pub(super) fn container(&mut self, out: &mut Vec<u8>, value: &Arc<Container>) {
        out.extend_from_slice(cached(&mut self.containers, value, container));
    }

    pub(super) fn pod(&mut self, out: &mut Vec<u8>, value: &Arc<Pod>) {
        out.extend_from_slice(cached(&mut self.pods, value, pod));
    }
}

fn cached<'a, T>(
    rendered: &'a mut HashMap<usize, (Arc<T>, Box<[u8]>)>,
    value: &Arc<T>,
    render: fn(&mut Vec<u8>, &T),
) -> &'a [u8] {
    let key = Arc::as_ptr(value).addr();
    if rendered.len() >= CACHED_MAX && !rendered.contains_key(&key) {
        rendered.clear();
    }
    let (_, bytes) = rendered.entry(key).or_insert_with(|| {
        let mut out = Vec::new();
        render(&mut out, value);
        (value.clone(), out.into_boxed_slice())
    });
    bytes
}

/// `container: {id, runtime, name?, image?, image_digest?}`.
fn container(out: &mut Vec<u8>, container: &Container) {
    let mut o = Object::open(out);
    o.str("id", container.id.as_str());
    o.str("runtime", container.runtime.as_str());
    o.some_str("name", container.name.as_deref());
    o.some_str("image", container.image.as_deref());
    o.some_str("image_digest", container.image_digest.as_deref());
    o.close();
}

/// `pod: {name?, namespace?, uid?, labels?}` (labels in key order, left out when none).
fn pod(out: &mut Vec<u8>, pod: &Pod) {
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

    #[test]
    fn a_cached_container_or_pod_is_copied_and_new_metadata_rendered() {
        let mut renderer = JsonRenderer::new("n".into(), BootClock::with_offset(0));
        let mut event = Event::new(1, 0, None, None, Detail::Loss(Loss::default()));
        let container = |name: &str| {
            Arc::new(Container {
                id: ContainerId("abc".into()),
                runtime: Runtime::Containerd,
                name: Some(name.into()),
                image: None,
                image_digest: None,
            })
        };
        let mut lines = Vec::new();
        event.container = Some(container("first"));
        event.pod = Some(Arc::new(Pod::default()));
        for _ in 0..2 {
            renderer.render(&event, &mut lines);
        }
        // The same container with its metadata: a new `Arc`, rendered anew.
        event.container = Some(container("second"));
        renderer.render(&event, &mut lines);
        let lines: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&lines)
            .into_iter()
            .map(|line| line.expect("JSON"))
            .collect();
        let names: Vec<&serde_json::Value> = lines
            .iter()
            .map(|line| &line["container"]["name"])
            .collect();
        assert_eq!(names, [&json!("first"), &json!("first"), &json!("second")]);
        assert!(lines.iter().all(|line| line["pod"] == json!({})));
    }
}
