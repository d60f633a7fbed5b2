//! The supervisor: loads the sensor, starts the reader and the pipeline, and shuts them down
//! in order (detach the programs, drain the ring, drain the queue, report final losses).

use std::{sync::Arc, time::Duration};

use aya::maps::{MapData, PerCpuArray};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use vigil_common::{config::KernelConfig, stats::KernelCounter};

mod start;
mod status;

use start::{
    connect_recorder, next_ask, next_signal, start_metrics, start_policies, start_recorder,
};

use crate::{
    bpf::{AttachedProgram, BpfError, LoadOptions, Sensor},
    clock::boot_now_ns,
    config::Config,
    export::Exporter,
    pipeline::Pipeline,
    process::ProcessCacheConfig,
    source::{Batch, RingReader, RingReaderConfig},
    telemetry::{Counters, KernelStats, LossTracker, read_kernel_totals},
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("registering the ring buffer with the event loop")]
    Reactor(#[source] std::io::Error),
    #[error("loading policies")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("installing the SIGHUP handler for policy reloads")]
    PolicyReload(#[source] std::io::Error),
    #[error("starting the responder thread")]
    Responder(#[source] std::io::Error),
    #[error("starting the gRPC API")]
    Api(#[from] crate::api::ApiError),
    #[error("starting the forwarder")]
    Forward(#[from] crate::forward::ForwardError),
    #[error("starting the flight recorder's dump writer, or its SIGUSR1 handler")]
    Recorder(#[source] std::io::Error),
    #[error("serving metrics on {address} (telemetry.metrics_address)")]
    Metrics {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a run did, reported at shutdown.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub events: u64,
    pub lost: u64,
    pub kernel: KernelStats,
    /// Set when an exporter failed and stopped the run.
    pub export_error: Option<String>,
    /// Enrichment counters, when enrichment ran.
    pub enrich: Option<crate::enrich::EnrichStats>,
}

impl Summary {
    pub fn submitted(&self, counter: KernelCounter) -> u64 {
        self.kernel[counter as usize]
    }
}

/// A running agent. Must be started and stopped inside a tokio runtime.
pub struct Agent {
    sensor: Option<Sensor>,
    attached: Vec<AttachedProgram>,
    shutdown: watch::Sender<bool>,
    reader: JoinHandle<()>,
    pipeline: JoinHandle<Summary>,
    metrics_addr: Option<std::net::SocketAddr>,
    /// The gRPC API server, when on.
    api: Option<crate::api::ApiServer>,
    api_tcp_addr: Option<std::net::SocketAddr>,
}

impl Agent {
    /// Loads and attaches the programs and starts draining: events flow to `exporter` as soon
    /// as this returns.
    pub fn start(config: &Config, exporter: Box<dyn Exporter>) -> Result<Self, StartError> {
        let mut syscalls = config.syscalls.selection();
        // The network sensor rides on the syscall hooks: one bitmap selects for both.
        syscalls
            .filter
            .merge(&config.network.filter(crate::syscall::Arch::NATIVE));
        // So does the file sensor, with its watch prefixes.
        syscalls
            .filter
            .merge(&config.files.filter(crate::syscall::Arch::NATIVE));
        // And the credential sensor, without syscall records unless `[syscalls]` asks for them.
        syscalls
            .filter
            .merge(&config.credentials.filter(crate::syscall::Arch::NATIVE));
        let mut sensor = Sensor::load(&LoadOptions {
            kernel: KernelConfig {
                trace_threads: u32::from(config.process.trace_threads),
                wakeup_threshold_bytes: config.ring_buffer.wakeup_threshold_bytes,
                syscall_cgroup_filter: u32::from(syscalls.cgroups.is_some()),
                syscall_ignore_tgid: std::process::id(),
                // The loader reads it from the kernel's BTF.
                ..KernelConfig::DEFAULT
            },
            ring_buffer_bytes: config.ring_buffer.size_bytes,
            syscalls: syscalls.filter,
            syscall_cgroups: syscalls.cgroups.unwrap_or_default(),
            tcp_state: config.network.enabled,
            dns_cgroup_root: config
                .network
                .dns_enabled()
                .then(|| crate::cgroup::CgroupFs::discover().v2_root)
                .flatten(),
            file_prefixes: config.files.prefixes(),
            process_hooks: config.process.hooks,
            syscall_hooks: config.syscalls.hooks,
        })?;
        let ring = sensor.take_events()?;
        let reader_state = sensor.take_reader_state()?;
        let stats = sensor.take_stats()?;
        // The metrics read the ring's fill and the programs' run times on their own handles:
        // the reader owns the ring, the supervisor the programs.
        let ring_fill = crate::telemetry::RingFill::new(&ring)
            .inspect_err(|error| {
                tracing::warn!(%error, "Cannot map the ring buffer's positions; its fill is not reported.");
            })
            .ok();
        let program_runs = crate::telemetry::ProgramRuns::new(sensor.program_fds());
        let counters = Arc::new(Counters::default());
        let queue_batches = (config.pipeline.queue_capacity / 1024).max(1);
        let (tx, rx) = mpsc::channel(queue_batches);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let reader = RingReader::new(
            ring,
            reader_state,
            RingReaderConfig {
                poll_interval: Duration::from_millis(config.ring_buffer.poll_interval_ms),
            },
            tx,
            counters.clone(),
        )
        .map_err(StartError::Reactor)?;
        let reader = tokio::spawn(reader.run(shutdown_rx));
        let mut pipeline = Pipeline::new(
            ProcessCacheConfig {
                max_entries: config.process.cache_max_entries,
                max_bytes: config.process.cache_max_bytes,
                exit_grace_ns: config.process.exit_grace_ms * 1_000_000,
                ancestors: config.process.ancestors,
            },
            counters.clone(),
        );
        // After attaching, so that nothing starts unseen between the walk and the hooks.
        if config.process.snapshot {
            pipeline.seed_from_proc();
        }
        let lookups = crate::enrich::start(&config.enrich).map(|(enricher, results)| {
            pipeline.set_enricher(enricher);
            results
        });
        let policy_updates = start_policies(config, &mut pipeline)?;
        let api = config.api.enabled.then(|| {
            let hooks = sensor
                .attached
                .iter()
                .map(|p| format!("{} ({})", p.name, p.hook))
                .collect();
            crate::api::Shared::new(
                &config.api,
                crate::node::node_name(&config.node_name),
                hooks,
                sensor.fallbacks.clone(),
            )
        });
        if let (Some(api), Some(stage)) = (&api, pipeline.policy_mut()) {
            api.policies.store(
                stage.set().rules().len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let api_server = match &api {
            Some(shared) => Some(crate::api::start(&config.api, shared.clone())?),
            None => None,
        };
        let response = crate::response::start(
            &config.enforcement,
            pipeline.policy_mut(),
            crate::node::node_name(&config.node_name),
        )
        .map_err(StartError::Responder)?;
        if let Some(api) = &api {
            api.set_operator(crate::response::operator_handle(
                &config.enforcement,
                response.as_ref(),
            ));
        }
        let forward = crate::forward::Forwarder::start(
            &config.forward,
            crate::node::node_name(&config.node_name),
            counters.clone(),
        )?;
        let (recorder, dump_signal) = start_recorder(config)?;
        let dump_asks = connect_recorder(api.as_deref(), recorder.is_some());
        let task = PipelineTask {
            rx,
            forward,
            recorder,
            dump_signal,
            dump_asks,
            lookups,
            policy_updates,
            response,
            pipeline,
            exporter,
            stats,
            counters,
            loss_interval: Duration::from_millis(config.telemetry.loss_report_interval_ms),
            metrics: None,
            events_by_kind: std::collections::BTreeMap::new(),
            findings: std::collections::BTreeMap::new(),
            dns_malformed: 0,
            api,
            ring_fill,
            program_runs,
            status: status::StatusTracker::new(config),
        };
        let (task, metrics_addr) =
            start_metrics(task, &config.telemetry.metrics_address, &shutdown)?;
        let pipeline = tokio::spawn(task.run());
        let attached = sensor.attached.clone();
        Ok(Self {
            sensor: Some(sensor),
            attached,
            shutdown,
            reader,
            pipeline,
            metrics_addr,
            api_tcp_addr: api_server.as_ref().and_then(|a| a.tcp_addr),
            api: api_server,
        })
    }

    /// Where `/metrics` is served, when it is (the bound port, also for port 0).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// Where the API is served over mutual TLS, when `api.tcp_address` is set.
    pub fn api_tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.api_tcp_addr
    }

    pub fn attached(&self) -> &[AttachedProgram] {
        &self.attached
    }

    /// The loaded sensor (for program statistics), until [`Agent::stop`].
    pub fn sensor(&self) -> Option<&Sensor> {
        self.sensor.as_ref()
    }

    /// Resolves when the pipeline has stopped by itself (an exporter failed).
    pub fn pipeline_finished(&self) -> bool {
        self.pipeline.is_finished()
    }

    /// Detaches the programs, drains what they produced and returns the run's summary.
    pub async fn stop(mut self) -> Summary {
        drop(self.sensor.take());
        let _ = self.shutdown.send(true);
        let _ = (&mut self.reader).await;
        let summary = (&mut self.pipeline).await.unwrap_or_default();
        if let Some(api) = self.api.take() {
            // The pipeline closed the streams; clients get a moment to take the last events.
            api.join(Duration::from_secs(5)).await;
        }
        summary
    }
}

struct PipelineTask {
    rx: mpsc::Receiver<Batch>,
    /// Container metadata lookups' answers, when enrichment runs.
    lookups: Option<mpsc::Receiver<crate::enrich::LookupResult>>,
    /// Reloaded policy sets, when policies are on.
    policy_updates: Option<mpsc::Receiver<Arc<crate::policy::PolicySet>>>,
    /// The responder thread's reports and the findings waiting for them, when enforcing.
    response: Option<crate::response::Response>,
    pipeline: Pipeline,
    exporter: Box<dyn Exporter>,
    stats: PerCpuArray<MapData, u64>,
    counters: Arc<Counters>,
    loss_interval: Duration,
    /// Where each tick's metrics snapshot goes, when the endpoint is on.
    metrics: Option<watch::Sender<Option<crate::export::metrics_http::Published>>>,
    /// Events handed to the exporter, by kind.
    events_by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Findings handed to the exporter, by rule and severity.
    findings: std::collections::BTreeMap<(String, &'static str), u64>,
    /// DNS events whose payload was no DNS message (reported with the reason, and counted).
    dns_malformed: u64,
    /// The gRPC API's streams and counters, when the API is on.
    api: Option<Arc<crate::api::Shared>>,
    /// The spool and links to collectors, when a destination is configured.
    forward: Option<crate::forward::Forwarder>,
    /// The flight recorder, when on.
    recorder: Option<crate::forensics::stage::RecorderStage>,
    /// SIGUSR1: dump the flight recorder.
    dump_signal: Option<tokio::signal::unix::Signal>,
    /// Dumps asked for through the API (`DumpRecorder`).
    dump_asks: Option<mpsc::Receiver<crate::forensics::stage::Ask>>,
    ring_fill: Option<crate::telemetry::RingFill>,
    program_runs: crate::telemetry::ProgramRuns,
    /// What `vigil status` reports that the counters do not hold.
    status: status::StatusTracker,
}

impl PipelineTask {
    async fn run(mut self) -> Summary {
        let mut summary = Summary::default();
        let mut losses = LossTracker::default();
        let mut tick = tokio::time::interval(self.loss_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut out = Vec::with_capacity(1024);
        loop {
            tokio::select! {
                batch = self.rx.recv() => {
                    let Some(batch) = batch else { break };
                    self.pipeline.process_batch(&batch, &mut out);
                }
                _ = tick.tick() => {
                    self.report_loss(&mut losses, &mut out);
                    if let Some(response) = &mut self.response {
                        response.correlator.expire(boot_now_ns(), &mut out);
                    }
                    self.pipeline.tick(boot_now_ns());
                    if let Some(recorder) = &mut self.recorder {
                        recorder.tick(boot_now_ns());
                    }
                    self.publish_metrics(losses.kernel_totals());
                    self.publish_api_counters();
                    self.publish_status(losses.kernel_totals());
                }
                result = crate::enrich::next_result(&mut self.lookups) => {
                    self.pipeline.on_lookup(result, boot_now_ns(), &mut out);
                }
                _ = crate::enrich::sleep_until(self.pipeline.enrich_deadline()) => {
                    self.pipeline.release_due(boot_now_ns(), &mut out);
                }
                Some(()) = next_signal(&mut self.dump_signal) => {
                    if let Some(recorder) = &mut self.recorder {
                        tracing::info!("SIGUSR1: dumping the flight recorder.");
                        let request = crate::forensics::DumpRequest {
                            id: 0,
                            reason: "signal".into(),
                            pre_ns: recorder.pre_ns(),
                            post_ns: 0,
                            scope: crate::forensics::Scope::All,
                            metadata: Vec::new(),
                        };
                        recorder.ask(crate::forensics::stage::Ask { request, reply: None }, boot_now_ns());
                    }
                }
                Some(ask) = next_ask(&mut self.dump_asks) => {
                    if let Some(recorder) = &mut self.recorder {
                        recorder.ask(ask, boot_now_ns());
                    }
                }
                set = crate::policy::reload::next(&mut self.policy_updates) => {
                    if let Some(response) = &self.response {
                        // The responder thread installs and releases the kernel rules.
                        response.policies.send_replace(set.clone());
                    }
                    if let Some(api) = &self.api {
                        api.policies.store(set.rules().len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    self.pipeline.replace_policies(set);
                }
                report = crate::response::next_report(&mut self.response) => {
                    if let Some(response) = &mut self.response {
                        response.on_report(report, &self.pipeline, boot_now_ns(), &mut out);
                    }
                }
            }
            if let Err(error) = self.flush(&mut out, &mut summary) {
                tracing::error!(%error, "Exporter failed; stopping the pipeline.");
                summary.export_error = Some(error.to_string());
                break;
            }
        }
        self.pipeline.drain(&mut out);
        self.report_loss(&mut losses, &mut out);
        let _ = self.flush(&mut out, &mut summary);
        if let Some(response) = &mut self.response {
            response.correlator.drain(&mut out);
            let _ = self.flush(&mut out, &mut summary);
        }
        summary.enrich = self.pipeline.enrich_stats();
        summary.kernel = *losses.kernel_totals();
        summary.lost += losses_total(&summary.kernel, &self.counters);
        if let Some(api) = &self.api {
            api.close();
        }
        if let Some(recorder) = self.recorder.take() {
            // Writes the dumps still collecting their post-trigger window.
            let _ = tokio::task::spawn_blocking(move || recorder.stop()).await;
        }
        if let Some(forward) = self.forward.take() {
            // Joins its thread: the spool is written and closed before the agent exits.
            let _ = tokio::task::spawn_blocking(move || forward.stop()).await;
        }
        summary
    }

    fn publish_metrics(&self, kernel: &KernelStats) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let cache = self.pipeline.cache();
        use crate::telemetry::metrics::{EnrichMetrics, RingUsage, Snapshot};
        let snapshot = Snapshot {
            events: self.events_by_kind.iter().map(|(k, n)| (*k, *n)).collect(),
            kernel: *kernel,
            drops: self.counters.snapshot(),
            findings: self
                .findings
                .iter()
                .map(|((rule, severity), n)| (rule.clone(), *severity, *n))
                .collect(),
            ring: self.ring_fill.as_ref().map(|ring| RingUsage {
                used_bytes: ring.used_bytes(),
                size_bytes: ring.size_bytes(),
            }),
            cache: cache.stats(),
            cache_entries: cache.len(),
            cache_bytes: cache.bytes(),
            enrich: self.pipeline.enricher().map(|e| EnrichMetrics {
                stats: e.stats(),
                pending_events: e.pending_len(),
                containers: e.containers_len(),
            }),
            dns_malformed: self.dns_malformed,
            api_dropped: self.api.as_ref().map(|a| a.dropped()),
            enforcement: self
                .response
                .as_ref()
                .map(|r| r.correlator.actions())
                .unwrap_or_default(),
            programs: self.program_runs.sample(),
            forward: self
                .forward
                .as_ref()
                .map(|f| crate::telemetry::metrics::ForwardMetrics::of(f.stats())),
        };
        metrics.send_replace(Some(crate::export::metrics_http::Published::now(
            crate::telemetry::metrics::render(&snapshot),
        )));
    }

    fn publish_api_counters(&self) {
        if let Some(api) = &self.api
            && let Ok(mut by_kind) = api.by_kind.lock()
        {
            by_kind.clone_from(&self.events_by_kind);
        }
    }

    fn report_loss(&mut self, losses: &mut LossTracker, out: &mut Vec<crate::event::Event>) {
        let kernel = read_kernel_totals(&self.stats, losses.kernel_totals());
        if let Some(loss) = losses.update(kernel, self.counters.snapshot()) {
            tracing::error!(
                lost = loss.total(),
                "Events were lost; see the loss event for causes."
            );
            if let Some(api) = &self.api {
                api.losses
                    .fetch_add(loss.total(), std::sync::atomic::Ordering::Relaxed);
            }
            out.push(Pipeline::loss_event(loss, boot_now_ns()));
        }
    }

    fn flush(
        &mut self,
        out: &mut Vec<crate::event::Event>,
        summary: &mut Summary,
    ) -> std::io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        // Every event leaves through here, whichever stage released it: the rules see each
        // one once, complete and enriched.
        self.pipeline.evaluate_policies(out, 0);
        if let Some(response) = &mut self.response {
            // Findings whose action is under way leave with its outcome.
            response.correlator.hold(out, boot_now_ns());
        }
        summary.events += out.len() as u64;
        for event in out.iter() {
            *self.events_by_kind.entry(event.detail.kind()).or_default() += 1;
            if let crate::event::Detail::Dns(dns) = &event.detail
                && dns.question.is_err()
            {
                self.dns_malformed += 1;
            }
            if let crate::event::Detail::Finding(finding) = &event.detail {
                let rule = &finding.rule;
                *self
                    .findings
                    .entry((rule.name.clone(), rule.severity.name()))
                    .or_default() += 1;
            }
        }
        let result = self.exporter.export(out);
        if let Some(forward) = &self.forward {
            forward.offer(out);
        }
        if let Some(recorder) = &mut self.recorder {
            // Moved into `Arc`s once, for the recorder and the API's streams alike.
            let shared: Vec<Arc<crate::event::Event>> = out.drain(..).map(Arc::new).collect();
            if let Some(api) = &self.api {
                api.publish_shared(&shared);
            }
            recorder.after_flush(&shared, boot_now_ns());
        } else if let Some(api) = &self.api {
            api.publish(out);
        }
        out.clear();
        result
    }
}

fn losses_total(kernel: &KernelStats, counters: &Counters) -> u64 {
    let kernel_lost: u64 = KernelCounter::ALL
        .iter()
        .filter(|c| c.is_loss())
        .map(|&c| kernel[c as usize])
        .sum();
    kernel_lost + counters.snapshot().iter().sum::<u64>()
}
