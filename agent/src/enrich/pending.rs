//! Events held while their container's metadata is on its way.
//!
//! Per container, events wait in arrival order until the metadata arrives or the container's
//! deadline passes; then they all leave together, in order. Bounded per container and in
//! total: past a bound, the container whose deadline comes first leaves early (the caller
//! counts those events), so nothing waits without bound and nothing is dropped.

use std::collections::{BTreeSet, HashMap};

use super::cgroup_path::ContainerId;
use crate::event::Event;

#[derive(Debug)]
struct Held {
    deadline_ns: u64,
    events: Vec<Event>,
}

/// Events released together: all of one container's, in arrival order.
#[derive(Debug)]
pub struct Released {
    pub id: ContainerId,
    pub events: Vec<Event>,
}

#[derive(Debug)]
pub struct PendingQueue {
    max_events: usize,
    max_per_container: usize,
    len: usize,
    held: HashMap<ContainerId, Held>,
    /// Containers by deadline, soonest first.
    deadlines: BTreeSet<(u64, ContainerId)>,
}

impl PendingQueue {
    /// A queue of at most `max_events` events, `max_per_container` of one container.
    pub fn new(max_events: usize, max_per_container: usize) -> Self {
        Self {
            max_events,
            max_per_container: max_per_container.min(max_events),
            len: 0,
            held: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// Events held, all containers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether events of `id` are held.
    pub fn holds(&self, id: &ContainerId) -> bool {
        self.held.contains_key(id)
    }

    /// The soonest deadline, if anything is held.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Holds `event` of container `id` until `deadline_ns` (a container keeps the deadline of
    /// its first held event). When that would pass a bound, first releases what must go early
    /// into `early`; if the queue can hold nothing (a bound of 0), `event` goes there too.
    pub fn hold(
        &mut self,
        id: &ContainerId,
        event: Event,
        deadline_ns: u64,
        early: &mut Vec<Released>,
    ) {
        if self.max_per_container == 0 {
            early.push(Released {
                id: id.clone(),
                events: vec![event],
            });
            return;
        }
        if self
            .held
            .get(id)
            .is_some_and(|h| h.events.len() >= self.max_per_container)
        {
            early.extend(self.take(id));
        }
        while self.len >= self.max_events {
            let Some((_, soonest)) = self.deadlines.first().cloned() else {
                break;
            };
            early.extend(self.take(&soonest));
        }
        let held = self.held.entry(id.clone()).or_insert_with(|| {
            self.deadlines.insert((deadline_ns, id.clone()));
            Held {
                deadline_ns,
                events: Vec::new(),
            }
        });
        held.events.push(event);
        self.len += 1;
    }

    /// Every held event of `id`, in order.
    pub fn take(&mut self, id: &ContainerId) -> Option<Released> {
        let held = self.held.remove(id)?;
        self.deadlines.remove(&(held.deadline_ns, id.clone()));
        self.len -= held.events.len();
        Some(Released {
            id: id.clone(),
            events: held.events,
        })
    }

    /// The containers whose deadline is at or before `now_ns`, soonest first.
    pub fn expired(&mut self, now_ns: u64) -> Vec<Released> {
        let mut out = Vec::new();
        while let Some((deadline, id)) = self.deadlines.first().cloned() {
            if deadline > now_ns {
                break;
            }
            out.extend(self.take(&id));
        }
        out
    }

    /// Everything, soonest deadline first (at shutdown).
    pub fn drain(&mut self) -> Vec<Released> {
        self.expired(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detail, Loss};

    fn event(n: u64) -> Event {
        Event::new(n, 0, None, None, Detail::Loss(Loss::default()))
    }

    fn id(name: &str) -> ContainerId {
        ContainerId(name.to_owned())
    }

    fn times(released: &Released) -> Vec<u64> {
        released.events.iter().map(|e| e.time_ns).collect()
    }

    #[test]
    fn releases_one_container_in_order_and_keeps_the_others() {
        let mut q = PendingQueue::new(10, 10);
        let mut early = Vec::new();
        q.hold(&id("a"), event(1), 100, &mut early);
        q.hold(&id("b"), event(2), 150, &mut early);
        q.hold(&id("a"), event(3), 999, &mut early);
        assert!(early.is_empty());
        assert_eq!(q.len(), 3);
        assert_eq!(q.next_deadline(), Some(100), "a keeps its first deadline");
        let a = q.take(&id("a")).expect("a is held");
        assert_eq!(times(&a), [1, 3]);
        assert_eq!((q.len(), q.next_deadline()), (1, Some(150)));
        assert!(q.take(&id("a")).is_none());
    }

    #[test]
    fn expiry_is_driven_by_the_given_time() {
        let mut q = PendingQueue::new(10, 10);
        let mut early = Vec::new();
        q.hold(&id("a"), event(1), 100, &mut early);
        q.hold(&id("b"), event(2), 200, &mut early);
        assert!(q.expired(99).is_empty());
        let gone = q.expired(100);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].id, id("a"));
        assert!(q.holds(&id("b")));
        assert_eq!(q.drain().len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn global_bound_releases_the_soonest_container_early() {
        let mut q = PendingQueue::new(3, 3);
        let mut early = Vec::new();
        q.hold(&id("a"), event(1), 100, &mut early);
        q.hold(&id("a"), event(2), 100, &mut early);
        q.hold(&id("b"), event(3), 200, &mut early);
        q.hold(&id("c"), event(4), 300, &mut early);
        assert_eq!(early.len(), 1);
        assert_eq!(early[0].id, id("a"));
        assert_eq!(times(&early[0]), [1, 2]);
        assert_eq!(q.len(), 2);
        assert!(q.holds(&id("b")) && q.holds(&id("c")));
    }

    #[test]
    fn per_container_bound_releases_that_container_before_the_new_event() {
        let mut q = PendingQueue::new(100, 2);
        let mut early = Vec::new();
        for n in 1..=3 {
            q.hold(&id("a"), event(n), 100, &mut early);
        }
        assert_eq!(early.len(), 1);
        assert_eq!(times(&early[0]), [1, 2], "older events leave first");
        assert_eq!(times(&q.take(&id("a")).expect("the newest")), [3]);
    }

    #[test]
    fn a_zero_bound_holds_nothing() {
        let mut q = PendingQueue::new(0, 0);
        let mut early = Vec::new();
        q.hold(&id("a"), event(1), 100, &mut early);
        assert_eq!(early.len(), 1);
        assert!(q.is_empty());
    }
}
