//! `vigil bench churn`: a million short-lived processes through the real pipeline, to show
//! that the process cache stays within its bounds and what the pipeline costs per event.

use std::{sync::Arc, time::Instant};

use crate::{
    clock::BootClock,
    decode::encode::{self, ExecSpec, Ids},
    export::json::JsonRenderer,
    pipeline::Pipeline,
    process::{ProcessCacheConfig, ProcessKey},
    source::Batch,
    telemetry::Counters,
};

const SHELL: ProcessKey = ProcessKey::new(100, 1_000);

fn ids(key: ProcessKey, time_ns: u64) -> Ids {
    Ids::leader(key, time_ns)
}

/// fork + exec + exit records of process number `i` (pids wrap as on a busy node).
fn lifecycle(i: u32, batch: &mut Batch) {
    let key = ProcessKey::new(1_000 + i % 4_000_000, 10_000 + u64::from(i) * 1_000);
    let t = key.start_time_ns;
    batch.push(&encode::fork(
        ids(key, t),
        SHELL.tgid,
        SHELL.start_time_ns,
        false,
    ));
    batch.push(&encode::exec(&ExecSpec {
        ids: ids(key, t + 100),
        ppid: SHELL.tgid,
        parent_start_time_ns: SHELL.start_time_ns,
        filename: b"/usr/bin/true",
        args: &[b"/usr/bin/true", b"--some-flag", b"an-argument"],
        binary: b"/usr/bin/true",
        cwd: b"/var/lib/app",
        cgroup: b"/system.slice/app.service",
        ..ExecSpec::default()
    }));
    batch.push(&encode::exit(ids(key, t + 500), 0, true));
}

struct Pass {
    elapsed: f64,
    events: u64,
    peak_len: usize,
    peak_bytes: usize,
    pipeline: Pipeline,
}

/// `count` lifecycles through the pipeline and JSON; with `recorder`, each batch is also
/// kept by the flight recorder as the pipeline task does (moved into `Arc`s).
fn pass(
    count: u32,
    cache: ProcessCacheConfig,
    mut recorder: Option<&mut crate::forensics::Recorder>,
) -> Pass {
    let mut pipeline = Pipeline::new(cache, Arc::new(Counters::default()));
    let renderer = JsonRenderer::new("bench".into(), BootClock::now());
    let mut out = Vec::with_capacity(4096);
    let mut json = Vec::with_capacity(1 << 20);
    let mut dumps = Vec::new();
    let mut events = 0u64;
    let mut peak_len = 0;
    let mut peak_bytes = 0;
    let started = Instant::now();
    let mut i = 0;
    while i < count {
        let mut batch = Batch::with_capacity(3 * 256, 3 * 256 * 200);
        for _ in 0..256.min(count - i) {
            lifecycle(i, &mut batch);
            i += 1;
        }
        pipeline.process_batch(&batch, &mut out);
        json.clear();
        for event in &out {
            renderer.render(event, &mut json);
        }
        events += out.len() as u64;
        let now = 10_000 + u64::from(i) * 1_000;
        match recorder.as_deref_mut() {
            Some(recorder) => {
                let shared: Vec<Arc<crate::event::Event>> = out.drain(..).map(Arc::new).collect();
                recorder.record(&shared, now, &mut dumps);
            }
            None => out.clear(),
        }
        pipeline.tick(now);
        peak_len = peak_len.max(pipeline.cache().len());
        peak_bytes = peak_bytes.max(pipeline.cache().bytes());
    }
    Pass {
        elapsed: started.elapsed().as_secs_f64(),
        events,
        peak_len,
        peak_bytes,
        pipeline,
    }
}

pub fn run(count: u32, max_entries: usize, max_bytes: usize) {
    let rss_start = super::status_kib("VmRSS");
    let cache = ProcessCacheConfig {
        max_entries,
        max_bytes,
        exit_grace_ns: 5_000_000_000,
        ancestors: 0,
    };
    let Pass {
        elapsed,
        events,
        peak_len,
        peak_bytes,
        pipeline,
    } = pass(count, cache, None);
    let rss_end = super::status_kib("VmRSS");
    let rss_peak = super::status_kib("VmHWM");
    // The same again with the flight recorder at its defaults: what keeping the last minute
    // of events costs.
    let recorder_config = crate::forensics::RecorderConfig::default();
    let mut recorder = crate::forensics::Recorder::new(recorder_config.limits());
    let with = pass(count, cache, Some(&mut recorder));
    let per_event = |elapsed: f64, events: u64| elapsed * 1e9 / events as f64;
    let stats = pipeline.cache().stats();
    println!(
        "churn: {count} processes (fork+exec+exit), {events} events through decode, process cache and JSON"
    );
    println!(
        "  throughput        {:.0} events/s on one core ({:.0} ns/event)",
        events as f64 / elapsed,
        per_event(elapsed, events)
    );
    println!(
        "  flight recorder   {:.0} ns/event with it on: {:+.0} ns/event ({:+.1}%); ring {} events, {} bytes (bound {} bytes, {} s)",
        per_event(with.elapsed, with.events),
        per_event(with.elapsed, with.events) - per_event(elapsed, events),
        (with.elapsed / elapsed - 1.0) * 100.0,
        recorder.len(),
        recorder.bytes(),
        recorder_config.max_bytes,
        recorder_config.max_age_s
    );
    println!("  cache bound       {max_entries} entries, {max_bytes} bytes");
    println!(
        "  cache peak        {peak_len} entries, {peak_bytes} bytes (now {} entries)",
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
