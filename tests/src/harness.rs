//! An agent running in the test process, started as `vigil run` starts it, with its events
//! delivered to the test through a [`ChannelExporter`].

use std::{
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

use tokio::runtime::Runtime;
use vigil::{
    config::Config,
    event::{Detail, Event},
    export::ChannelExporter,
    runtime::{Agent, Summary},
};

use crate::gate::{self, error_chain, is_environmental};

/// How long detaching and draining may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running agent and every event it has delivered so far.
pub struct Harness {
    /// `None` once stopped.
    agent: Option<Agent>,
    runtime: Runtime,
    rx: Receiver<Vec<Event>>,
    events: Vec<Event>,
}

impl Harness {
    /// Loads and attaches the sensor with `config`. `None` (after printing why) when this
    /// machine cannot load it: the test returns. Panics when Vigil itself fails to start, or
    /// when it cannot load under `VIGIL_REQUIRE_BPF=1`.
    pub fn start(config: &Config) -> Option<Self> {
        if !gate::privileged() {
            gate::skip(
                "loading eBPF needs root, or CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN; this process has none of them",
            );
            return None;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the agent");
        let (tx, rx) = mpsc::channel();
        let started = {
            let _context = runtime.enter();
            Agent::start(config, Box::new(ChannelExporter(tx)))
        };
        match started {
            Ok(agent) => Some(Self {
                agent: Some(agent),
                runtime,
                rx,
                events: Vec::new(),
            }),
            Err(error) if is_environmental(&error) => {
                gate::skip(&format!(
                    "the sensor cannot load here: {}",
                    error_chain(&error)
                ));
                None
            }
            Err(error) => panic!("the agent failed to start: {}", error_chain(&error)),
        }
    }

    /// Every event delivered so far, in delivery order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Takes delivered batches until `find` returns something for the events so far, and
    /// returns it. Panics after `timeout`, naming `what` was awaited.
    #[track_caller]
    pub fn collect_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut find: impl FnMut(&[Event]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = find(&self.events) {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(batch) => self.events.extend(batch),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "timed out after {timeout:?} waiting for {what} ({} events received, {} losses)",
                    self.events.len(),
                    self.lost()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the agent stopped while the test waited for {what}")
                }
            }
        }
    }

    /// Takes whatever is delivered during `period` (to show that something does *not*
    /// arrive: the agent drains every few milliseconds).
    pub fn collect_for(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.rx.recv_timeout(left) {
                Ok(batch) => self.events.extend(batch),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => panic!("the agent stopped by itself"),
            }
        }
    }

    /// Detaches the programs, drains what they produced into [`Harness::events`] and returns
    /// the run's summary.
    /// Where the agent serves `/metrics`, when `telemetry.metrics_address` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.agent.as_ref().and_then(Agent::metrics_addr)
    }

    /// Where the agent serves its API over mutual TLS, when `api.tcp_address` is set.
    pub fn api_tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.agent.as_ref().and_then(Agent::api_tcp_addr)
    }

    /// The hook of each attached sensor program (`tp_btf/sched_process_exec`, ...).
    pub fn attached_hooks(&self) -> Vec<&'static str> {
        self.agent
            .as_ref()
            .map(|a| a.attached().iter().map(|p| p.hook).collect())
            .unwrap_or_default()
    }

    /// What the sensor attached in place of what it prefers, and why.
    pub fn fallbacks(&self) -> Vec<String> {
        self.agent
            .as_ref()
            .and_then(Agent::sensor)
            .map(|s| s.fallbacks.clone())
            .unwrap_or_default()
    }

    /// Cumulative run time and run count of each attached program (advancing only while
    /// `kernel.bpf_stats_enabled` is 1).
    pub fn program_stats(&self) -> Vec<(&'static str, Duration, u64)> {
        self.agent
            .as_ref()
            .and_then(Agent::sensor)
            .map(|s| s.program_stats())
            .unwrap_or_default()
    }

    pub fn stop(&mut self) -> Summary {
        let agent = self.agent.take().expect("the agent is running");
        let summary = self
            .runtime
            .block_on(async { tokio::time::timeout(STOP_TIMEOUT, agent.stop()).await })
            .unwrap_or_else(|_| panic!("the agent did not stop within {STOP_TIMEOUT:?}"));
        self.events.extend(self.rx.try_iter().flatten());
        summary
    }

    /// Events lost so far, as the agent reported them in loss events.
    pub fn lost(&self) -> u64 {
        self.events
            .iter()
            .map(|e| match &e.detail {
                Detail::Loss(loss) => loss.total(),
                _ => 0,
            })
            .sum()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            // Already failing, or about to fail on a missing stop: no second panic here.
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(STOP_TIMEOUT, agent.stop()).await });
        }
    }
}
