//! An operator's action names a pid or a cgroup; its event carries what the pipeline knows of
//! them: the process and its parent from the process cache, the container and pod from the
//! enricher (or, for a container it has not met, what the cgroup path tells). The event then
//! sits next to that process's or container's other events: same `exec_id`, and the API's
//! container and pod filters select it. Nothing is looked up: the pipeline task never waits.

use std::sync::Arc;

use super::record::Enforcement;
use crate::{
    enrich::{Container, Pod},
    event::{Detail, Event},
    pipeline::Pipeline,
};

/// Slack around a start time read from /proc, which counts clock ticks.
fn tolerance_ns() -> u64 {
    2 * crate::process::snapshot::tick_ns()
}

/// The event of an operator's action at `now_ns`, with its process and workload.
pub fn operator_event(enforcement: Box<Enforcement>, pipeline: &Pipeline, now_ns: u64) -> Event {
    let cache = pipeline.cache();
    let operator = enforcement.operator.as_deref();
    let process = operator
        .and_then(|o| o.process)
        .and_then(|key| cache.find_near(key.tgid, key.start_time_ns, tolerance_ns()))
        .cloned();
    let parent = process
        .as_ref()
        .and_then(|p| p.parent)
        .and_then(|key| cache.get(&key))
        .cloned();
    let cgroup_id = process
        .as_ref()
        .map_or(enforcement.cgroup_id, |p| p.cgroup_id);
    let reference = operator.and_then(|o| o.container.as_ref());
    let known = pipeline.enricher().and_then(|e| {
        reference
            .and_then(|r| e.known(&r.id))
            .or_else(|| e.known_of_cgroup(cgroup_id))
    });
    let (container, pod) = match (known, reference) {
        (Some((container, pod)), _) => (Some(container), pod),
        (None, Some(r)) => (
            Some(Arc::new(Container::from_ref(r))),
            Pod::from_ref(r).map(Arc::new),
        ),
        (None, None) => (None, None),
    };
    let mut event = Event::new(
        now_ns,
        enforcement.pid,
        process,
        parent,
        Detail::Enforcement(enforcement),
    );
    event.container = container;
    event.pod = pod;
    event
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        enrich::cgroup_path,
        process::ProcessCacheConfig,
        response::record::{By, Operator},
        telemetry::Counters,
    };

    fn enforcement(operator: Operator) -> Box<Enforcement> {
        Box::new(Enforcement {
            action: "freeze",
            by: By::Operator,
            rule: None,
            rule_id: Some(3),
            target: "container:abc".into(),
            tgid: 0,
            pid: 0,
            comm: String::new(),
            cgroup_id: 77,
            binary: None,
            destination: None,
            outcome: "ok",
            error: None,
            latency_ns: 5,
            operator: Some(Box::new(operator)),
        })
    }

    #[test]
    fn a_container_the_enricher_never_met_is_named_from_its_cgroup_path() {
        let pipeline = Pipeline::new(ProcessCacheConfig::default(), Arc::new(Counters::default()));
        let id = "0123456789abcdef".repeat(4);
        let uid = "12345678-1234-4234-8234-123456789abc";
        let reference =
            cgroup_path::parse(format!("/kubepods/besteffort/pod{uid}/{id}").as_bytes())
                .expect("a kubelet path names a container");
        let event = operator_event(
            enforcement(Operator {
                container: Some(reference),
                ..Operator::default()
            }),
            &pipeline,
            9,
        );
        assert_eq!(event.time_ns, 9);
        assert!(event.process.is_none());
        assert_eq!(
            event.container.as_deref().map(|c| c.id.as_str()),
            Some(id.as_str())
        );
        assert_eq!(
            event.pod.as_deref().and_then(|p| p.uid.as_deref()),
            Some(uid)
        );
        let bare = operator_event(enforcement(Operator::default()), &pipeline, 9);
        assert!(bare.container.is_none() && bare.pod.is_none());
    }
}
