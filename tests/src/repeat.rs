//! Work repeated on a thread of the test until it is stopped, bounded in time and count
//! whatever happens to the test: a storm of short-lived processes, say.

use std::{
    path::PathBuf,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

const MAX_TIME: Duration = Duration::from_secs(180);
const MAX_COUNT: usize = 200_000;
/// Children of a storm started before any is reaped: they exit at once and sit as zombies
/// meanwhile.
const BATCH: usize = 8;

/// A thread calling a step again and again, with a pause between calls, until stopped or
/// dropped; each call is given the count so far and returns how much it adds.
pub struct Repeat {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Repeat {
    pub fn start(pause: Duration, mut step: impl FnMut(usize) -> usize + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed)
                    && started.elapsed() < MAX_TIME
                    && count.load(Ordering::Relaxed) < MAX_COUNT
                {
                    let added = step(count.load(Ordering::Relaxed));
                    count.fetch_add(added, Ordering::Relaxed);
                    std::thread::sleep(pause);
                }
            })
        };
        Self {
            stop,
            count,
            thread: Some(thread),
        }
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Stops the thread and returns the final count.
    pub fn stop(mut self) -> usize {
        self.halt();
        self.count()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Repeat {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A storm: `program` spawned in batches, each batch reaped before the next, as fast as it
/// can when `pause` is zero. The n-th child (from 0) has argv `[program, "<n>"]`. The count
/// is of children numbered (a spawn that failed keeps its number): those numbered below it
/// have run their exec (`spawn` returns after it).
pub fn churn(program: PathBuf, pause: Duration) -> Repeat {
    Repeat::start(pause, move |n| {
        let batch: Vec<_> = (n..n + BATCH)
            .filter_map(|i| Command::new(&program).arg(i.to_string()).spawn().ok())
            .collect();
        for mut child in batch {
            let _ = child.wait();
        }
        BATCH
    })
}
