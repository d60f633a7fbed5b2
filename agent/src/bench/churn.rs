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

pub fn run(count: u32, max_entries: usize, max_bytes: usize) {
    let rss_start = super::status_kib("VmRSS");
    let mut pipeline = Pipeline::new(
        ProcessCacheConfig {
            max_entries,
            max_bytes,
            exit_grace_ns: 5_000_000_000,
            ancestors: 0,
        },
        Arc::new(Counters::default()),
    );
    let renderer = JsonRenderer::new("bench".into(), BootClock::now());
    let mut out = Vec::with_capacity(4096);
    let mut json = Vec::with_capacity(1 << 20);
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
        out.clear();
        pipeline.tick(10_000 + u64::from(i) * 1_000);
        peak_len = peak_len.max(pipeline.cache().len());
        peak_bytes = peak_bytes.max(pipeline.cache().bytes());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = pipeline.cache().stats();
    println!(
        "churn: {count} processes (fork+exec+exit), {events} events through decode, process cache and JSON"
    );
    println!(
        "  throughput        {:.0} events/s on one core ({:.0} ns/event)",
        events as f64 / elapsed,
        elapsed * 1e9 / events as f64
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
        "  RSS               start {} KiB, end {} KiB, peak {} KiB",
        rss_start,
        super::status_kib("VmRSS"),
        super::status_kib("VmHWM")
    );
}
