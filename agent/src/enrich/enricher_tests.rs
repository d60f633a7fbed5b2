//! The enrichment stage with time driven by hand: no sleeps, no runtime, no kernel.

use super::*;
use crate::{
    decode::{
        decode,
        encode::{self, ExecSpec, Ids},
    },
    enrich::lookup::{LookupResult, Outcome},
    process::{ProcessCache, ProcessCacheConfig},
};

const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ID_C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const UID: &str = "8c0d9a52-1f3e-4b7a-9c61-2d5e7f8a9b0c";
const MS: u64 = 1_000_000;
const TIMEOUT_MS: u64 = 500;

struct Fixture {
    enricher: Enricher,
    requests: mpsc::Receiver<ContainerId>,
    cache: ProcessCache,
    next_pid: u32,
}

fn config() -> EnrichConfig {
    EnrichConfig {
        pending_timeout_ms: TIMEOUT_MS,
        ..EnrichConfig::default()
    }
}

fn fixture_with(config: &EnrichConfig, queue: usize) -> Fixture {
    let (tx, requests) = mpsc::channel(queue);
    Fixture {
        enricher: Enricher::new(config, Some(tx), None),
        requests,
        cache: ProcessCache::new(ProcessCacheConfig::default()),
        next_pid: 100,
    }
}

fn fixture() -> Fixture {
    fixture_with(&config(), 16)
}

fn pod_path(id: &str) -> String {
    format!("/kubepods/besteffort/pod{UID}/{id}")
}

fn cid(id: &str) -> ContainerId {
    ContainerId(id.to_owned())
}

impl Fixture {
    /// An exec in `cgroup_id`, whose path the event carries.
    fn exec(&mut self, cgroup_id: u64, path: &str, time_ns: u64) -> Event {
        self.next_pid += 1;
        let record = encode::exec(&ExecSpec {
            ids: Ids {
                time_ns,
                pid: self.next_pid,
                tgid: self.next_pid,
                start_time_ns: time_ns,
                cgroup_id,
            },
            ppid: 1,
            parent_start_time_ns: 1,
            filename: b"/bin/sh",
            args: &[b"sh"],
            binary: b"/bin/sh",
            cwd: b"/",
            cgroup: path.as_bytes(),
            ..ExecSpec::default()
        });
        self.cache.apply(decode(&record).expect("decodes"))
    }

    /// A fork in `cgroup_id`: no path in the event.
    fn fork(&mut self, cgroup_id: u64, time_ns: u64) -> Event {
        self.next_pid += 1;
        let ids = Ids {
            time_ns,
            pid: self.next_pid,
            tgid: self.next_pid,
            start_time_ns: time_ns,
            cgroup_id,
        };
        self.cache
            .apply(decode(&encode::fork(ids, 1, 1, false)).expect("decodes"))
    }

    fn push(&mut self, event: Event, now_ns: u64) -> Vec<Event> {
        let mut out = Vec::new();
        self.enricher.push(event, now_ns, &mut out);
        out
    }

    fn answer(&mut self, id: &str, outcome: Outcome, now_ns: u64) -> Vec<Event> {
        let mut out = Vec::new();
        let result = LookupResult {
            id: cid(id),
            outcome,
        };
        self.enricher.on_result(result, now_ns, &mut out);
        out
    }

    fn tick(&mut self, now_ns: u64) -> Vec<Event> {
        let mut out = Vec::new();
        self.enricher.tick(now_ns, &mut out);
        out
    }

    fn requested(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.requests.try_recv().ok())
            .map(|id| id.0)
            .collect()
    }

    fn count(&self, counter: EnrichCounter) -> u64 {
        self.enricher.stats().get(counter)
    }
}

fn found() -> Outcome {
    Outcome::Found(Metadata {
        runtime: Some(Runtime::Containerd),
        name: Some("web".into()),
        image: Some("localhost/app:1".into()),
        image_digest: Some(format!("sha256:{}", "0".repeat(64))),
        pod: Some(Pod {
            name: Some("web-0".into()),
            namespace: Some("shop".into()),
            uid: Some(UID.into()),
            labels: [("app".to_owned(), "web".to_owned())].into(),
        }),
    })
}

fn times(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.time_ns).collect()
}

fn container(event: &Event) -> &Container {
    event.container.as_deref().expect("a container")
}

#[test]
fn events_outside_containers_pass_straight_through() {
    let mut f = fixture();
    let host = f.exec(7, "/user.slice/user-0.slice/session-1.scope", 1);
    let out = f.push(host, 1);
    assert_eq!(times(&out), [1]);
    assert!(out[0].container.is_none() && out[0].pod.is_none());
    let root = f.exec(1, "/", 2);
    assert_eq!(f.push(root, 2).len(), 1);
    let loss = crate::pipeline::Pipeline::loss_event(Default::default(), 3);
    assert_eq!(f.push(loss, 3).len(), 1);
    assert!(f.requested().is_empty());
    assert_eq!(f.enricher.pending_len(), 0);
}

#[test]
fn containers_outside_the_cri_are_enriched_at_once_without_lookup() {
    let mut f = fixture();
    let event = f.exec(9, &format!("/system.slice/docker-{ID_A}.scope"), 1);
    let out = f.push(event, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(container(&out[0]).id.as_str(), ID_A);
    assert_eq!(container(&out[0]).runtime, Runtime::Docker);
    assert!(out[0].pod.is_none());
    assert!(f.requested().is_empty());
    assert_eq!(f.enricher.stats().incomplete(), 0);
}

#[test]
fn held_events_are_released_in_order_when_metadata_arrives() {
    let mut f = fixture();
    let first = f.exec(10, &pod_path(ID_A), 1);
    assert!(f.push(first, 1).is_empty(), "held while the lookup runs");
    assert_eq!(f.requested(), [ID_A]);
    // A fork in the same cgroup carries no path: the cgroup id is enough.
    let second = f.fork(10, 2);
    assert!(f.push(second, 2).is_empty());
    // Others are not held up meanwhile.
    let host = f.exec(7, "/init.scope", 3);
    assert_eq!(times(&f.push(host, 3)), [3]);

    let out = f.answer(ID_A, found(), 4);
    assert_eq!(times(&out), [1, 2]);
    for event in &out {
        let c = container(event);
        assert_eq!(c.runtime, Runtime::Containerd, "the runtime's own name");
        assert_eq!(c.name.as_deref(), Some("web"));
        assert_eq!(c.image.as_deref(), Some("localhost/app:1"));
        let pod = event.pod.as_deref().expect("a pod");
        assert_eq!(pod.name.as_deref(), Some("web-0"));
        assert_eq!(pod.namespace.as_deref(), Some("shop"));
        assert_eq!(pod.uid.as_deref(), Some(UID));
    }
    // Cached: later events go at once, and no second lookup.
    let later = f.fork(10, 5);
    let out = f.push(later, 5);
    assert_eq!(container(&out[0]).name.as_deref(), Some("web"));
    assert!(f.requested().is_empty());
    assert_eq!(f.count(EnrichCounter::EventsHeld), 2);
    assert_eq!(f.count(EnrichCounter::LookupsFound), 1);
    assert_eq!(f.enricher.stats().incomplete(), 0);
}

#[test]
fn held_events_are_released_at_the_timeout_with_what_is_known() {
    let mut f = fixture();
    let start = 1_000 * MS;
    let event = f.exec(10, &pod_path(ID_A), start);
    assert!(f.push(event, start).is_empty());
    let event = f.fork(10, start + MS);
    assert!(f.push(event, start + MS).is_empty());
    assert_eq!(f.enricher.next_deadline(), Some(start + TIMEOUT_MS * MS));

    assert!(f.tick(start + TIMEOUT_MS * MS - 1).is_empty());
    let out = f.tick(start + TIMEOUT_MS * MS);
    assert_eq!(times(&out), [start, start + MS]);
    let c = container(&out[0]);
    assert_eq!(
        (c.id.as_str(), c.runtime, c.name.as_ref()),
        (ID_A, Runtime::Cri, None)
    );
    assert_eq!(
        out[0].pod.as_deref().and_then(|p| p.uid.as_deref()),
        Some(UID)
    );
    assert_eq!(f.count(EnrichCounter::IncompleteTimeout), 2);
    assert_eq!(f.enricher.next_deadline(), None);

    // The lookup is still out: later events are no longer held, and count as incomplete.
    let event = f.fork(10, start + 600 * MS);
    assert_eq!(f.push(event, start + 600 * MS).len(), 1);
    assert_eq!(f.count(EnrichCounter::IncompleteUnresolved), 1);
    // A late answer still fills the cache for what comes next.
    assert!(f.answer(ID_A, found(), start + 700 * MS).is_empty());
    let event = f.fork(10, start + 800 * MS);
    let out = f.push(event, start + 800 * MS);
    assert_eq!(container(&out[0]).name.as_deref(), Some("web"));
}

#[test]
fn an_event_after_the_deadline_releases_the_waiting_ones_first() {
    let mut f = fixture();
    let event = f.exec(10, &pod_path(ID_A), 1);
    assert!(f.push(event, 1).is_empty());
    let late = 1 + TIMEOUT_MS * MS;
    let event = f.fork(10, late);
    assert_eq!(times(&f.push(event, late)), [1, late]);
    assert_eq!(f.count(EnrichCounter::IncompleteTimeout), 1);
}

#[test]
fn a_failed_lookup_releases_and_a_failing_runtime_stops_holding() {
    let mut f = fixture();
    let event = f.exec(10, &pod_path(ID_A), 1);
    assert!(f.push(event, 1).is_empty());
    let out = f.answer(ID_A, Outcome::Failed("unavailable"), 2);
    assert_eq!(times(&out), [1]);
    assert_eq!(container(&out[0]).id.as_str(), ID_A);
    assert_eq!(f.count(EnrichCounter::LookupFailedUnavailable), 1);
    assert_eq!(f.count(EnrichCounter::IncompleteLookupFailed), 1);

    // A new container while the runtime is failing: asked about, but not waited for.
    let event = f.exec(11, &pod_path(ID_B), 3);
    assert_eq!(times(&f.push(event, 3)), [3]);
    assert_eq!(f.requested(), [ID_A, ID_B]);

    // The failed one is asked again only after a while, still without holding.
    let event = f.fork(10, 4);
    assert_eq!(f.push(event, 4).len(), 1);
    assert!(f.requested().is_empty());
    let retry_at = 2 + RETRY_NS;
    let event = f.fork(10, retry_at);
    assert_eq!(f.push(event, retry_at).len(), 1);
    assert_eq!(f.requested(), [ID_A]);
}

#[test]
fn the_global_bound_releases_the_longest_waiting_container_early() {
    let config = EnrichConfig {
        pending_max_events: 3,
        pending_max_events_per_container: 2,
        ..config()
    };
    let mut f = fixture_with(&config, 16);
    for (t, (cgroup, id)) in [(10, ID_A), (10, ID_A), (11, ID_B), (12, ID_C)]
        .into_iter()
        .enumerate()
    {
        let t = t as u64 + 1;
        let event = f.exec(cgroup, &pod_path(id), t);
        let out = f.push(event, t);
        if id == ID_C {
            assert_eq!(
                times(&out),
                [1, 2],
                "A waited longest and leaves early, in order"
            );
        } else {
            assert!(out.is_empty());
        }
    }
    assert_eq!(f.count(EnrichCounter::IncompleteOverflow), 2);
    assert_eq!(f.enricher.pending_len(), 2);
    // Per container: a third event of B pushes B's first one out.
    let event = f.fork(11, 5);
    assert!(f.push(event, 5).is_empty());
    let event = f.fork(11, 6);
    assert_eq!(times(&f.push(event, 6)), [3, 5]);
    assert_eq!(f.count(EnrichCounter::IncompleteOverflow), 4);
}

#[test]
fn a_full_request_queue_is_counted_and_nothing_waits() {
    let mut f = fixture_with(&config(), 1);
    let event = f.exec(10, &pod_path(ID_A), 1);
    assert!(f.push(event, 1).is_empty());
    let event = f.exec(11, &pod_path(ID_B), 2);
    assert_eq!(times(&f.push(event, 2)), [2]);
    assert_eq!(f.count(EnrichCounter::LookupRequestsDropped), 1);
    assert_eq!(f.count(EnrichCounter::IncompleteUnresolved), 1);
}

#[test]
fn a_gone_container_is_forgotten() {
    let mut f = fixture();
    let event = f.exec(10, &pod_path(ID_A), 1);
    f.push(event, 1);
    f.answer(ID_A, found(), 2);
    assert_eq!(f.enricher.containers_len(), 1);
    assert!(f.answer(ID_A, Outcome::Gone, 3).is_empty());
    assert_eq!(f.enricher.containers_len(), 0);
    assert_eq!(f.count(EnrichCounter::ContainersGone), 1);
    // Its cgroup is forgotten too: with no path to learn from, a fork is not attributed.
    let event = f.fork(10, 4);
    assert!(f.push(event, 4)[0].container.is_none());
}

#[test]
fn shutdown_releases_everything_held() {
    let mut f = fixture();
    for (cgroup, id, t) in [(10, ID_A, 1), (11, ID_B, 2)] {
        let event = f.exec(cgroup, &pod_path(id), t);
        assert!(f.push(event, t).is_empty());
    }
    let mut out = Vec::new();
    f.enricher.drain(&mut out);
    assert_eq!(times(&out), [1, 2]);
    assert_eq!(f.count(EnrichCounter::IncompleteShutdown), 2);
}

#[test]
fn a_zero_timeout_never_holds() {
    let config = EnrichConfig {
        pending_timeout_ms: 0,
        ..config()
    };
    let mut f = fixture_with(&config, 16);
    let event = f.exec(10, &pod_path(ID_A), 1);
    assert_eq!(f.push(event, 1).len(), 1);
    assert_eq!(f.requested(), [ID_A], "still looked up for later events");
}

#[test]
fn the_caches_stay_bounded() {
    let config = EnrichConfig {
        cache_max_entries: 4,
        ..config()
    };
    let mut f = fixture_with(&config, 16);
    for n in 0..10u64 {
        let id = format!("{n:064x}");
        let event = f.exec(100 + n, &format!("/docker/{id}"), n + 1);
        assert_eq!(container(&f.push(event, n + 1)[0]).id.as_str(), id);
    }
    assert!(f.enricher.containers_len() <= 4);
    assert!(f.enricher.cgroups.len() <= 4);
    assert!(f.count(EnrichCounter::CacheEvictions) >= 12);
}

#[test]
fn churn_of_gone_containers_leaves_nothing_behind() {
    let mut f = fixture_with(&config(), 4);
    for n in 0..5_000u64 {
        let id = format!("{n:064x}");
        let event = f.exec(1_000 + n, &pod_path(&id), n + 1);
        assert!(f.push(event, n + 1).is_empty());
        assert_eq!(f.requested(), [id.as_str()]);
        assert_eq!(f.answer(&id, found(), n + 1).len(), 1);
        assert!(f.answer(&id, Outcome::Gone, n + 1).is_empty());
    }
    assert_eq!(f.enricher.containers_len(), 0);
    assert!(f.enricher.cgroups.is_empty());
    assert!(f.enricher.cgroup_order.len() <= 1024 + 1);
    assert!(f.enricher.container_order.len() <= 1024 + 1);
    assert_eq!(f.count(EnrichCounter::ContainersGone), 5_000);
}
