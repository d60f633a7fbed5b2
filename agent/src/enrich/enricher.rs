//! The enrichment stage: cgroup -> container -> pod, for every event, between the process
//! cache and the exporters. Owned by the pipeline task; synchronous, no locks; time is
//! passed in (CLOCK_BOOTTIME ns), so tests drive it explicitly.
//!
//! - `cgroup_id -> container` is learned from the cgroup path that exec events carry (and
//!   that snapshot processes carry), parsed by [`cgroup_path::parse`]; failing that, from
//!   `/proc/PID/cgroup`, checked against the cgroup id.
//! - A container created through the CRI gets one lookup on the CRI socket (the async
//!   [`super::lookup`] task). Its events wait in the [`PendingQueue`] until the answer comes
//!   or `pending_timeout_ms` passes; then they leave in order, with what is known. Each event
//!   that leaves without metadata it should have had is counted by cause.
//! - While the runtime is failing (absent socket, timeouts), events are not held at all.

use std::{collections::VecDeque, sync::Arc};

use foldhash::HashMap;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{
    cgroup_path::{self, ContainerId, ContainerRef, Runtime},
    config::EnrichConfig,
    lookup::{LookupResult, Outcome},
    pending::{PendingQueue, Released},
    stats::{EnrichCounter, EnrichStats},
    workload::{Container, Metadata, Pod},
};
use crate::{
    cgroup::CgroupFs,
    event::{Detail, Event},
    process::Origin,
};

/// After a failed lookup, the next event of that container asks again after this long.
const RETRY_NS: u64 = 10_000_000_000;
/// After the runtime was unavailable, slow or not speaking gRPC, new containers' events are not held for this
/// long (a broken runtime must not add the pending timeout to every new container).
const DEGRADED_NS: u64 = 10_000_000_000;
/// A container spans few cgroups (systemd sub-cgroups inside it); remembered for removal.
const MAX_CGROUPS_PER_CONTAINER: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    /// Not a CRI container: nothing to ask.
    NotNeeded,
    /// Not asked yet: the first event asks (it knows the time).
    New,
    InFlight {
        deadline_ns: u64,
        hold: bool,
    },
    Found,
    Failed {
        retry_at_ns: u64,
    },
}

#[derive(Debug)]
struct Entry {
    container: Arc<Container>,
    pod: Option<Arc<Pod>>,
    lookup: Lookup,
    cgroups: Vec<u64>,
}

pub struct Enricher {
    pending_timeout_ns: u64,
    /// Whether events may wait at all (a zero timeout or bound: never).
    may_hold: bool,
    max_entries: usize,
    /// `None`: a cgroup of no container.
    cgroups: HashMap<u64, Option<ContainerId>>,
    cgroup_order: VecDeque<u64>,
    containers: HashMap<ContainerId, Entry>,
    container_order: VecDeque<ContainerId>,
    pending: PendingQueue,
    /// Requests to the lookup task; `None`: no CRI lookups at all.
    lookups: Option<mpsc::Sender<ContainerId>>,
    degraded_until_ns: u64,
    /// Where `/proc/PID/cgroup` paths are checked against cgroup ids; `None`: not read.
    proc_fallback: Option<CgroupFs>,
    stats: EnrichStats,
}

impl Enricher {
    pub fn new(
        config: &EnrichConfig,
        lookups: Option<mpsc::Sender<ContainerId>>,
        proc_fallback: Option<CgroupFs>,
    ) -> Self {
        Self {
            pending_timeout_ns: config.pending_timeout_ns(),
            may_hold: config.pending_timeout_ms > 0 && config.pending_max_events > 0,
            max_entries: config.cache_max_entries,
            cgroups: HashMap::default(),
            cgroup_order: VecDeque::new(),
            containers: HashMap::default(),
            container_order: VecDeque::new(),
            pending: PendingQueue::new(
                config.pending_max_events,
                config.pending_max_events_per_container,
            ),
            lookups,
            degraded_until_ns: 0,
            proc_fallback,
            stats: EnrichStats::default(),
        }
    }

    pub fn stats(&self) -> EnrichStats {
        self.stats
    }

    /// Events held now.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Containers known now.
    pub fn containers_len(&self) -> usize {
        self.containers.len()
    }

    /// The container `id` and its pod, as far as they are known now (no lookup is asked
    /// for): for events made outside the ring, such as an operator's action on a container.
    pub fn known(&self, id: &ContainerId) -> Option<(Arc<Container>, Option<Arc<Pod>>)> {
        let entry = self.containers.get(id)?;
        Some((entry.container.clone(), entry.pod.clone()))
    }

    /// [`Enricher::known`] of the container of `cgroup_id`, when that cgroup is known.
    pub fn known_of_cgroup(&self, cgroup_id: u64) -> Option<(Arc<Container>, Option<Arc<Pod>>)> {
        match self.cgroups.get(&cgroup_id) {
            Some(Some(id)) => self.known(id),
            _ => None,
        }
    }

    /// When [`Enricher::tick`] must run next to release held events, if any are held.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.next_deadline()
    }

    /// Enriches `event` and appends it to `out`, or holds it while its container's metadata
    /// is on its way (it then leaves through a later call).
    pub fn push(&mut self, mut event: Event, now_ns: u64, out: &mut Vec<Event>) {
        let Some(cgroup_id) = task_cgroup(&event) else {
            out.push(event);
            return;
        };
        // Nearly every event: a known container whose metadata is complete (or needs no
        // lookup), so nothing to learn, ask or release: two map reads.
        if let Some(Some(id)) = self.cgroups.get(&cgroup_id)
            && let Some(entry) = self.containers.get(id)
            && matches!(entry.lookup, Lookup::Found | Lookup::NotNeeded)
        {
            attach(&mut event, entry);
            out.push(event);
            return;
        }
        self.learn(&event, cgroup_id);
        let Some(id) = self.container_of(cgroup_id, event.pid) else {
            out.push(event);
            return;
        };
        self.ask_if_due(&id, now_ns);
        let Some(entry) = self.containers.get_mut(&id) else {
            out.push(event);
            return;
        };
        if let Lookup::InFlight { deadline_ns, hold } = &mut entry.lookup {
            if *hold && now_ns < *deadline_ns {
                let deadline_ns = *deadline_ns;
                self.stats.add(EnrichCounter::EventsHeld, 1);
                let mut early = Vec::new();
                self.pending.hold(&id, event, deadline_ns, &mut early);
                self.release_all(early, Some(EnrichCounter::IncompleteOverflow), out);
                return;
            }
            *hold = false;
        }
        // Past its deadline: what waited leaves first.
        if let Some(released) = self.pending.take(&id) {
            self.release(released, Some(EnrichCounter::IncompleteTimeout), out);
        }
        let Some(entry) = self.containers.get(&id) else {
            out.push(event);
            return;
        };
        if matches!(
            entry.lookup,
            Lookup::InFlight { .. } | Lookup::Failed { .. }
        ) {
            self.stats.add(EnrichCounter::IncompleteUnresolved, 1);
        }
        attach(&mut event, entry);
        out.push(event);
    }

    /// Asks the lookup task about a new container, or again about one whose lookup failed
    /// a while ago (then without holding its events).
    fn ask_if_due(&mut self, id: &ContainerId, now_ns: u64) {
        let hold = match self.containers.get(id).map(|e| e.lookup) {
            Some(Lookup::New) => true,
            Some(Lookup::Failed { retry_at_ns }) if now_ns >= retry_at_ns => false,
            _ => return,
        };
        let Some(lookups) = &self.lookups else {
            return;
        };
        let lookup = match lookups.try_send(id.clone()) {
            Ok(()) => {
                self.stats.add(EnrichCounter::LookupsRequested, 1);
                Lookup::InFlight {
                    deadline_ns: now_ns.saturating_add(self.pending_timeout_ns),
                    hold: hold && self.may_hold && now_ns >= self.degraded_until_ns,
                }
            }
            Err(error) => {
                self.stats.add(EnrichCounter::LookupRequestsDropped, 1);
                let retry_at_ns = match error {
                    TrySendError::Full(_) => now_ns.saturating_add(RETRY_NS / 10),
                    // The lookup task is gone: nobody will answer.
                    TrySendError::Closed(_) => u64::MAX,
                };
                Lookup::Failed { retry_at_ns }
            }
        };
        if let Some(entry) = self.containers.get_mut(id) {
            entry.lookup = lookup;
        }
    }

    /// Applies an answer of the lookup task and releases the events that waited for it.
    pub fn on_result(&mut self, result: LookupResult, now_ns: u64, out: &mut Vec<Event>) {
        let LookupResult { id, outcome } = result;
        let released = self.pending.take(&id);
        match outcome {
            Outcome::Found(metadata) => {
                self.stats.add(EnrichCounter::LookupsFound, 1);
                self.degraded_until_ns = 0;
                if let Some(entry) = self.containers.get_mut(&id) {
                    apply_metadata(entry, metadata);
                }
                self.release_all(released, None, out);
            }
            Outcome::Failed(cause) => {
                self.stats.add(EnrichCounter::for_failure(cause), 1);
                if matches!(cause, "unavailable" | "timeout" | "transport") {
                    self.degraded_until_ns = now_ns.saturating_add(DEGRADED_NS);
                }
                if let Some(entry) = self.containers.get_mut(&id) {
                    entry.lookup = Lookup::Failed {
                        retry_at_ns: now_ns.saturating_add(RETRY_NS),
                    };
                }
                self.release_all(released, Some(EnrichCounter::IncompleteLookupFailed), out);
            }
            Outcome::Gone => {
                self.release_all(released, None, out);
                if let Some(entry) = self.containers.remove(&id) {
                    self.stats.add(EnrichCounter::ContainersGone, 1);
                    for cgroup in entry.cgroups {
                        self.cgroups.remove(&cgroup);
                    }
                }
            }
        }
    }

    /// Releases the events whose wait ended at `now_ns`; later events of those containers
    /// are no longer held.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Event>) {
        for released in self.pending.expired(now_ns) {
            if let Some(Entry {
                lookup: Lookup::InFlight { hold, .. },
                ..
            }) = self.containers.get_mut(&released.id)
            {
                *hold = false;
            }
            self.release(released, Some(EnrichCounter::IncompleteTimeout), out);
        }
    }

    /// Releases everything held (at shutdown).
    pub fn drain(&mut self, out: &mut Vec<Event>) {
        let all = self.pending.drain();
        self.release_all(all, Some(EnrichCounter::IncompleteShutdown), out);
    }

    fn release_all(
        &mut self,
        released: impl IntoIterator<Item = Released>,
        incomplete: Option<EnrichCounter>,
        out: &mut Vec<Event>,
    ) {
        for r in released {
            self.release(r, incomplete, out);
        }
    }

    fn release(
        &mut self,
        released: Released,
        incomplete: Option<EnrichCounter>,
        out: &mut Vec<Event>,
    ) {
        if let Some(counter) = incomplete {
            self.stats.add(counter, released.events.len() as u64);
        }
        let entry = self.containers.get(&released.id);
        for mut event in released.events {
            if let Some(entry) = entry {
                attach(&mut event, entry);
            }
            out.push(event);
        }
    }

    /// Records the cgroup path an event carries, when it is sure to be the path of the
    /// event's cgroup id.
    fn learn(&mut self, event: &Event, cgroup_id: u64) {
        if matches!(self.cgroups.get(&cgroup_id), Some(Some(_))) {
            return;
        }
        let path = match (&event.detail, event.process.as_deref()) {
            (Detail::Exec(exec), _) if !exec.image.cgroup_path.is_empty() => {
                &exec.image.cgroup_path
            }
            // A snapshot entry's id and path were read together; a forked child's path is
            // its parent's, which may have moved since.
            (_, Some(p))
                if p.origin == Origin::Snapshot
                    && p.cgroup_id == cgroup_id
                    && !p.cgroup_path.is_empty() =>
            {
                &p.cgroup_path
            }
            _ => return,
        };
        let found = cgroup_path::parse(path);
        self.map_cgroup(cgroup_id, found);
    }

    /// The container of `cgroup_id`, asking /proc about `pid` if nothing told it yet.
    fn container_of(&mut self, cgroup_id: u64, pid: u32) -> Option<ContainerId> {
        if let Some(known) = self.cgroups.get(&cgroup_id) {
            return known.clone();
        }
        let fs = self.proc_fallback.as_ref()?;
        let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
        let found = fs
            .v2_path_of_pid(&dir)
            .filter(|path| fs.cgroup_id(path) == Some(cgroup_id))
            .and_then(|path| cgroup_path::parse(path.as_bytes()));
        self.stats.add(EnrichCounter::CgroupPathsFromProc, 1);
        self.map_cgroup(cgroup_id, found)
    }

    /// Maps `cgroup_id` to `found` (creating its container entry) and returns the id.
    fn map_cgroup(&mut self, cgroup_id: u64, found: Option<ContainerRef>) -> Option<ContainerId> {
        if self.cgroups.len() >= self.max_entries && !self.cgroups.contains_key(&cgroup_id) {
            while let Some(old) = self.cgroup_order.pop_front() {
                if self.cgroups.remove(&old).is_some() {
                    self.stats.add(EnrichCounter::CacheEvictions, 1);
                    break;
                }
            }
        }
        let id = found.map(|reference| self.ensure_container(reference, cgroup_id));
        if self.cgroups.insert(cgroup_id, id.clone()).is_none() {
            self.cgroup_order.push_back(cgroup_id);
            // Entries of gone containers leave the map, not the queue: keep it bounded.
            if self.cgroup_order.len() > 2 * self.cgroups.len() + 1024 {
                let cgroups = &self.cgroups;
                self.cgroup_order.retain(|c| cgroups.contains_key(c));
            }
        }
        id
    }

    fn ensure_container(&mut self, reference: ContainerRef, cgroup_id: u64) -> ContainerId {
        let id = reference.id.clone();
        if let Some(entry) = self.containers.get_mut(&id) {
            if entry.cgroups.len() < MAX_CGROUPS_PER_CONTAINER
                && !entry.cgroups.contains(&cgroup_id)
            {
                entry.cgroups.push(cgroup_id);
            }
            return id;
        }
        while self.containers.len() >= self.max_entries {
            let Some(old) = self.container_order.pop_front() else {
                break;
            };
            if self.containers.remove(&old).is_some() {
                self.stats.add(EnrichCounter::CacheEvictions, 1);
            }
        }
        let lookup = if reference.cri && self.lookups.is_some() {
            Lookup::New
        } else {
            Lookup::NotNeeded
        };
        self.containers.insert(
            id.clone(),
            Entry {
                container: Arc::new(Container::from_ref(&reference)),
                pod: Pod::from_ref(&reference).map(Arc::new),
                lookup,
                cgroups: vec![cgroup_id],
            },
        );
        self.container_order.push_back(id.clone());
        if self.container_order.len() > 2 * self.containers.len() + 1024 {
            let containers = &self.containers;
            self.container_order.retain(|c| containers.contains_key(c));
        }
        id
    }
}

/// The cgroup id of the task an event is about; `None` for loss events.
fn task_cgroup(event: &Event) -> Option<u64> {
    match &event.detail {
        Detail::Exec(e) => Some(e.task.cgroup_id),
        Detail::Fork(e) => Some(e.task.cgroup_id),
        Detail::Exit(e) => Some(e.task.cgroup_id),
        Detail::Syscall(e) => Some(e.task.cgroup_id),
        Detail::Network(e) => Some(e.task.cgroup_id),
        Detail::File(e) => Some(e.task.cgroup_id),
        Detail::Dns(e) => Some(e.task.cgroup_id),
        Detail::CredChange(e) => Some(e.task.cgroup_id),
        Detail::TcpState(e) => e.owner_known.then_some(e.task.cgroup_id),
        Detail::Enforcement(e) => (e.cgroup_id != 0).then_some(e.cgroup_id),
        // Findings are made after enrichment, with their event's container.
        Detail::Loss(_) | Detail::Finding(_) => None,
    }
}

fn attach(event: &mut Event, entry: &Entry) {
    event.container = Some(entry.container.clone());
    event.pod = entry.pod.clone();
}

/// What the runtime said, over what the cgroup path said.
fn apply_metadata(entry: &mut Entry, metadata: Metadata) {
    let mut container = (*entry.container).clone();
    // The path is sure of the runtime except for a bare id under a pod (see `Runtime::Cri`).
    if container.runtime == Runtime::Cri
        && let Some(runtime) = metadata.runtime
    {
        container.runtime = runtime;
    }
    container.name = metadata.name.or(container.name);
    container.image = metadata.image.or(container.image);
    container.image_digest = metadata.image_digest.or(container.image_digest);
    entry.container = Arc::new(container);
    if let Some(mut pod) = metadata.pod {
        if pod.uid.is_none() {
            pod.uid = entry.pod.as_ref().and_then(|p| p.uid.clone());
        }
        entry.pod = Some(Arc::new(pod));
    }
    entry.lookup = Lookup::Found;
}

#[cfg(test)]
#[path = "enricher_tests.rs"]
mod tests;
