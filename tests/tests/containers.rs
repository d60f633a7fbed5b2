//! Container and pod enrichment against a real containerd (CRI) and runc: pods and
//! containers are created through the CRI API as the kubelet creates them, and the exec
//! events of what runs inside must carry the container and pod, from their first event on.

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;
use vigil::{
    config::Config,
    enrich::{Container, EnrichCounter, Pod, Runtime},
    event::Event,
};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    containerd::{Containerd, TEST_IMAGE},
    json::render,
    pod::PodSpec,
    select::exec,
};

fn agent_for(socket: &str) -> Option<Harness> {
    let mut config = Config::default();
    config.enrich.cri_socket = socket.to_owned();
    // Often, so that a removed container is seen gone within the test.
    config.enrich.resync_interval_ms = 200;
    Harness::start(&config)
}

/// The first exec in container `id` whose argv is `argv`.
fn find_exec_in(events: &[Event], id: &str, argv: &[&str]) -> Option<Event> {
    events
        .iter()
        .find(|e| {
            let in_container = e.container.as_ref().is_some_and(|c| c.id.as_str() == id);
            in_container
                && exec(e).is_some_and(|x| {
                    x.image.args.len() == argv.len()
                        && x.image
                            .args
                            .iter()
                            .zip(argv)
                            .all(|(a, b)| a == b.as_bytes())
                })
        })
        .cloned()
}

fn container(event: &Event) -> &Container {
    event
        .container
        .as_deref()
        .expect("the event has its container")
}

fn pod_of(event: &Event) -> &Pod {
    event.pod.as_deref().expect("the event has its pod")
}

#[track_caller]
fn assert_pod(event: &Event, spec: &PodSpec) {
    let pod = pod_of(event);
    assert_eq!(pod.name.as_deref(), Some(spec.name.as_str()));
    assert_eq!(pod.namespace.as_deref(), Some(spec.namespace.as_str()));
    assert_eq!(pod.uid.as_deref(), Some(spec.uid.as_str()));
    assert_eq!(
        pod.labels, spec.labels,
        "the pod's own labels, not the kubelet's"
    );
}

#[track_caller]
fn assert_container(event: &Event, id: &str, name: &str, image_id: &str) {
    let c = container(event);
    assert_eq!(c.id.as_str(), id);
    assert_eq!(c.runtime, Runtime::Containerd, "named by the CRI's Version");
    assert_eq!(c.name.as_deref(), Some(name));
    assert_eq!(c.image.as_deref(), Some(TEST_IMAGE));
    assert_eq!(c.image_digest.as_deref(), Some(image_id));
}

#[test]
fn exec_in_a_cri_container_carries_its_container_and_pod() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let Some(mut agent) = agent_for(&containerd.socket().display().to_string()) else {
        return;
    };
    let spec = PodSpec::unique("exec");
    let pod = containerd.run_pod(spec.clone());
    let script = "echo hi; sleep 2";
    let argv = ["/bin/sh", "-c", script];
    let id = pod.start_container("worker", &argv, &[("tier", "test")]);
    let image_id = containerd.test_image.id.clone();

    // The container's first process: its entrypoint, exec'd by runc.
    let first = agent.collect_until("the container's entrypoint exec", EVENT_TIMEOUT, |events| {
        find_exec_in(events, &id, &argv)
    });
    assert_container(&first, &id, "worker", &image_id);
    assert_pod(&first, &spec);
    let detail = exec(&first).expect("exec");
    assert_eq!(
        detail.image.cgroup_path,
        format!("{}/{id}", spec.cgroup_parent()).into_bytes()
    );

    // A command run in the running container (runc exec), as `kubectl exec` does.
    let (code, stdout) = pod.exec_sync(&id, &["/bin/id", "-u"]);
    assert_eq!((code, stdout.trim()), (0, "0"));
    let later = agent.collect_until("the exec of ExecSync's command", EVENT_TIMEOUT, |events| {
        find_exec_in(events, &id, &["/bin/id", "-u"])
    });
    assert_container(&later, &id, "worker", &image_id);
    assert_pod(&later, &spec);

    // The pod's sandbox ("pause") container: the pod, and no container name or image.
    let pause = agent.collect_until("the pause container's exec", EVENT_TIMEOUT, |events| {
        find_exec_in(events, &pod.id, &["/bin/sleep", "100000"])
    });
    assert_pod(&pause, &spec);
    assert_eq!(container(&pause).runtime, Runtime::Containerd);

    // As `vigil run` writes it.
    let line = render(&first);
    assert_eq!(
        line["container"],
        json!({
            "id": id, "runtime": "containerd", "name": "worker",
            "image": TEST_IMAGE, "image_digest": image_id,
        })
    );
    let labels: BTreeMap<&str, &str> = [("app", "vigil-test"), ("case", "exec")].into();
    assert_eq!(
        line["pod"],
        json!({
            "name": spec.name, "namespace": spec.namespace, "uid": spec.uid,
            "labels": labels,
        })
    );
}

#[test]
fn a_container_that_exits_at_once_is_still_enriched() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let Some(mut agent) = agent_for(&containerd.socket().display().to_string()) else {
        return;
    };
    let spec = PodSpec::unique("brief");
    let pod = containerd.run_pod(spec.clone());
    let argv = ["/bin/echo", "bye"];
    let id = pod.start_container("oneshot", &argv, &[]);
    let event = agent.collect_until("the one-shot container's exec", EVENT_TIMEOUT, |events| {
        find_exec_in(events, &id, &argv)
    });
    assert_container(&event, &id, "oneshot", &containerd.test_image.id);
    assert_pod(&event, &spec);
    // Once the runtime has removed them, the container and its sandbox are forgotten.
    drop(pod);
    agent.collect_for(Duration::from_millis(800));
    let summary = agent.stop();
    let stats = summary.enrich.expect("enrichment ran");
    assert!(stats.get(EnrichCounter::LookupsFound) >= 1, "{stats:?}");
    // The container's first event asked for the lookup, so it had to wait for the answer.
    assert!(stats.get(EnrichCounter::EventsHeld) >= 1, "{stats:?}");
    assert!(stats.get(EnrichCounter::ContainersGone) >= 1, "{stats:?}");
}

#[test]
fn without_the_runtime_socket_events_carry_the_container_id_only() {
    let Some(containerd) = Containerd::start() else {
        return;
    };
    let absent = containerd.dir().join("no-such.sock");
    let Some(mut agent) = agent_for(&absent.display().to_string()) else {
        return;
    };
    let spec = PodSpec::unique("nosocket");
    let pod = containerd.run_pod(spec.clone());
    let argv = ["/bin/echo", "alone"];
    let id = pod.start_container("alone", &argv, &[]);
    let event = agent.collect_until("the container's exec", EVENT_TIMEOUT, |events| {
        find_exec_in(events, &id, &argv)
    });
    let c = container(&event);
    assert_eq!(c.id.as_str(), id);
    assert_eq!(c.runtime, Runtime::Cri, "only the cgroup path spoke");
    assert_eq!((c.name.as_ref(), c.image.as_ref()), (None, None));
    assert_eq!(pod_of(&event).uid.as_deref(), Some(spec.uid.as_str()));
    assert_eq!(pod_of(&event).name, None);
    let summary = agent.stop();
    let stats = summary.enrich.expect("enrichment ran");
    assert!(
        stats.get(EnrichCounter::LookupFailedUnavailable) >= 1,
        "the absent socket is counted: {stats:?}"
    );
    assert_eq!(stats.get(EnrichCounter::LookupsFound), 0);
}
