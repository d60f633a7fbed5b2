//! `vigil bench churn`: a million short-lived processes through the real pipeline (decode,
//! process cache, enrichment from a warm container cache, the default policy pack, the JSON
//! exporter into a sink), to show that the process cache stays within its bounds and what
//! the pipeline costs per event, in all and stage by stage.
//!
//! Times are the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), read around the pipeline's
//! calls only: generating the records is not counted, and neither is waiting for a CPU on a
//! shared machine. Wall time is reported beside it.

use std::{
    io,
    sync::Arc,
    time::{Duration, Instant},
};

use super::stream::{Mix, Stream};
use crate::{
    clock::BootClock,
    decode::decode,
    event::Event,
    export::{Exporter, JsonLines, json::JsonRenderer},
    pipeline::Pipeline,
    policy::{PolicyStage, load},
    process::{ProcessCache, ProcessCacheConfig},
    source::Batch,
    telemetry::Counters,
};

const NODE: &str = "bench";

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock exists on every supported kernel.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn policy_stage() -> PolicyStage {
    let set = load::compile(&load::default_sources()).expect("the default pack compiles");
    PolicyStage::new(Arc::new(set), NODE.into())
}

fn json_exporter() -> JsonLines<io::Sink> {
    JsonLines::new(JsonRenderer::new(NODE.into(), BootClock::now()), io::sink())
}

/// The whole path as the agent's pipeline task runs it.
fn pipeline(stream: &Stream, cache: ProcessCacheConfig) -> Pipeline {
    let mut pipeline = Pipeline::new(cache, Arc::new(Counters::default()));
    pipeline.set_enricher(stream.enricher());
    pipeline.set_policy(policy_stage());
    let mut out = Vec::new();
    let mut batch = Batch::default();
    stream.shell(&mut batch);
    pipeline.process_batch(&batch, &mut out);
    pipeline
}

struct Pass {
    cpu: Duration,
    wall: Duration,
    events: u64,
    findings: u64,
    peak_len: usize,
    peak_bytes: usize,
    pipeline: Pipeline,
}

/// `count` lifecycles through the whole pipeline; with `recorder`, each batch is also kept
/// by the flight recorder as the pipeline task does (moved into `Arc`s).
fn pass(
    stream: &Stream,
    count: u32,
    cache: ProcessCacheConfig,
    mut recorder: Option<&mut crate::forensics::Recorder>,
) -> Pass {
    let mut pipeline = pipeline(stream, cache);
    let mut exporter = json_exporter();
    let mut out = Vec::with_capacity(4096);
    let mut dumps = Vec::new();
    let mut batch = Batch::with_capacity(stream.records(stream.batch_units()) as usize, 1 << 20);
    let (mut cpu, mut wall) = (Duration::ZERO, Duration::ZERO);
    let (mut events, mut findings) = (0u64, 0u64);
    let mut peak_len = 0;
    let mut peak_bytes = 0;
    let mut i = 0;
    while i < count {
        let to = count.min(i + stream.batch_units());
        stream.batch(i, to, &mut batch);
        i = to;
        let (cpu_start, wall_start) = (thread_cpu(), Instant::now());
        pipeline.process_batch(&batch, &mut out);
        pipeline.evaluate_policies(&mut out, 0);
        exporter.export(&out).expect("a sink takes everything");
        let now = stream.time_of(i);
        events += out.len() as u64;
        findings += out
            .iter()
            .filter(|e| matches!(e.detail, crate::event::Detail::Finding(_)))
            .count() as u64;
        match recorder.as_deref_mut() {
            Some(recorder) => {
                let shared: Vec<Arc<Event>> = out.drain(..).map(Arc::new).collect();
                recorder.record(&shared, now, &mut dumps);
            }
            None => out.clear(),
        }
        pipeline.tick(now);
        cpu += thread_cpu() - cpu_start;
        wall += wall_start.elapsed();
        peak_len = peak_len.max(pipeline.cache().len());
        peak_bytes = peak_bytes.max(pipeline.cache().bytes());
    }
    Pass {
        cpu,
        wall,
        events,
        findings,
        peak_len,
        peak_bytes,
        pipeline,
    }
}

/// CPU time per stage: the same stream through the same stages, each run over a whole batch
/// and timed on its own.
#[derive(Default)]
struct Stages {
    decode: Duration,
    cache: Duration,
    enrich: Duration,
    policies: Duration,
    json: Duration,
    proto: Duration,
    events: u64,
    json_bytes: u64,
    proto_bytes: u64,
}

fn staged(stream: &Stream, count: u32, cache: ProcessCacheConfig) -> Stages {
    let mut processes = ProcessCache::new(cache);
    let mut enricher = stream.enricher();
    let mut policies = policy_stage();
    let mut renderer = JsonRenderer::new(NODE.into(), BootClock::now());
    let clock = BootClock::now();
    let mut stages = Stages::default();
    let mut batch = Batch::with_capacity(stream.records(stream.batch_units()) as usize, 1 << 20);
    let records = stream.records(stream.batch_units()) as usize;
    let mut decoded = Vec::with_capacity(records);
    let mut resolved = Vec::with_capacity(records);
    let mut out = Vec::with_capacity(4096);
    let mut json = Vec::with_capacity(1 << 20);
    let mut proto = Vec::with_capacity(1 << 20);
    stream.shell(&mut batch);
    for record in batch.iter() {
        let event = processes.apply(decode(record).expect("decodes"));
        enricher.push(event, 0, &mut out);
    }
    out.clear();
    let mut i = 0;
    while i < count {
        let to = count.min(i + stream.batch_units());
        stream.batch(i, to, &mut batch);
        i = to;
        let now = stream.time_of(i);
        let t0 = thread_cpu();
        decoded.extend(batch.iter().filter_map(|record| decode(record).ok()));
        let t1 = thread_cpu();
        resolved.extend(decoded.drain(..).map(|event| processes.apply(event)));
        processes.sweep(now);
        let t2 = thread_cpu();
        for event in resolved.drain(..) {
            enricher.push(event, now, &mut out);
        }
        let t3 = thread_cpu();
        policies.process(&mut out, 0);
        let t4 = thread_cpu();
        json.clear();
        for event in &out {
            renderer.render(event, &mut json);
        }
        let t5 = thread_cpu();
        proto.clear();
        for event in &out {
            let message = crate::api::convert::event(event, NODE, &clock);
            prost::Message::encode_length_delimited(&message, &mut proto).expect("a Vec has room");
        }
        let t6 = thread_cpu();
        stages.decode += t1 - t0;
        stages.cache += t2 - t1;
        stages.enrich += t3 - t2;
        stages.policies += t4 - t3;
        stages.json += t5 - t4;
        stages.proto += t6 - t5;
        stages.events += out.len() as u64;
        stages.json_bytes += json.len() as u64;
        stages.proto_bytes += proto.len() as u64;
        out.clear();
    }
    stages
}

fn ns_per(time: Duration, events: u64) -> f64 {
    time.as_nanos() as f64 / events.max(1) as f64
}

pub fn run(mix: Mix, count: u32, max_entries: usize, max_bytes: usize) {
    let rss_start = super::status_kib("VmRSS");
    let cache = ProcessCacheConfig {
        max_entries,
        max_bytes,
        exit_grace_ns: 5_000_000_000,
        ancestors: 0,
    };
    let stream = Stream::new(mix);
    let full = pass(&stream, count, cache, None);
    let rss_end = super::status_kib("VmRSS");
    let rss_peak = super::status_kib("VmHWM");
    let stages = staged(&stream, count, cache);
    // The same again with the flight recorder at its defaults: what keeping the last minute
    // of events costs.
    let recorder_config = crate::forensics::RecorderConfig::default();
    let mut recorder = crate::forensics::Recorder::new(recorder_config.limits());
    let with = pass(&stream, count, cache, Some(&mut recorder));
    let per_event = |pass: &Pass| ns_per(pass.cpu, pass.events);
    let Pass {
        events, pipeline, ..
    } = &full;
    let stats = pipeline.cache().stats();
    let what = match mix {
        Mix::Churn => format!("{count} processes (fork+exec+exit)"),
        Mix::Service => format!(
            "a service node's mix ({count} units: 512 long-lived processes' file, connect, accept, TCP state and DNS events, one short-lived child per 20 records)"
        ),
    };
    println!(
        "churn: {what} in 64 pod containers, {events} events ({} findings) through decode, process cache, enrichment (warm cache), the default policy pack and the JSON exporter (into a sink)",
        full.findings
    );
    println!(
        "  throughput        {:.0} events/s on one core ({:.0} ns/event of thread CPU; wall {:.0} ns/event)",
        1e9 / per_event(&full),
        per_event(&full),
        ns_per(full.wall, *events)
    );
    let n = stages.events;
    let pipeline_stages =
        stages.decode + stages.cache + stages.enrich + stages.policies + stages.json;
    println!(
        "  per stage         decode {:.0}, process cache {:.0}, enrich {:.0}, policies {:.0}, JSON {:.0} ({:.0} bytes/event): {:.0} ns/event ({:.0} events/s)",
        ns_per(stages.decode, n),
        ns_per(stages.cache, n),
        ns_per(stages.enrich, n),
        ns_per(stages.policies, n),
        ns_per(stages.json, n),
        stages.json_bytes as f64 / n.max(1) as f64,
        ns_per(pipeline_stages, n),
        1e9 / ns_per(pipeline_stages, n)
    );
    println!(
        "  gRPC API encoding {:.0} ns/event ({:.0} bytes/event; on the API's tasks, per client, not the pipeline's)",
        ns_per(stages.proto, n),
        stages.proto_bytes as f64 / n.max(1) as f64
    );
    println!(
        "  flight recorder   {:.0} ns/event with it on: {:+.0} ns/event ({:+.1}%); ring {} events, {} bytes (bound {} bytes, {} s)",
        per_event(&with),
        per_event(&with) - per_event(&full),
        (per_event(&with) / per_event(&full) - 1.0) * 100.0,
        recorder.len(),
        recorder.bytes(),
        recorder_config.max_bytes,
        recorder_config.max_age_s
    );
    println!("  cache bound       {max_entries} entries, {max_bytes} bytes");
    println!(
        "  cache peak        {} entries, {} bytes (now {} entries)",
        full.peak_len,
        full.peak_bytes,
        pipeline.cache().len()
    );
    println!(
        "  cache counters    evictions {}, expired {}, misses {}",
        stats.evictions, stats.expired, stats.misses
    );
    println!(
        "  RSS               start {rss_start} KiB, end {rss_end} KiB, peak {rss_peak} KiB (without the recorder); peak {} KiB with it",
        super::status_kib("VmHWM")
    );
}
