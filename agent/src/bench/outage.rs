//! `vigil bench outage`: forwarding through a collector outage under load.
//!
//! The full agent runs in this process (embedded default config, a temporary folder watched,
//! the API off, `[forward] select = "all"`: every event is numbered, spooled and sent) and
//! forwards to a `vigil collect` child. An open storm in the watched folder runs at a fixed
//! rate the whole time; the collector is killed with SIGKILL after `before`, restarted
//! `outage` later, and the storm goes on for `after`. Once the spool has drained (the
//! forwarder's lag back to 0 on `/metrics`), the collector's file is read back: every sequence
//! number of the stream must be there exactly once, from 1 to the highest, with no loss
//! record, and every open of the storm must have arrived.
//!
//! The spool's peak is the largest `vigil_forward_spool_bytes` seen (sampled twice a second).

use std::{
    collections::HashMap,
    io::{BufRead, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    storm::{Counter, Target},
    worker::{Kind, Pace, Worker},
};
use crate::{config::Config, forward::Select, runtime::Agent};

pub struct Plan {
    pub before: Duration,
    pub outage: Duration,
    pub after: Duration,
    pub rate: u32,
}

/// How long the spool may take to drain after the storm before the bench gives up.
const DRAIN: Duration = Duration::from_secs(600);

const LAG: &str = "vigil_forward_lag_records{destination=\"collector\"}";
const CONNECTED: &str = "vigil_forward_connected{destination=\"collector\"}";
const SPOOL: &str = "vigil_forward_spool_bytes";

fn start_collector(port: u16, out: &Path, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = Command::new(std::env::current_exe().context("finding the vigil binary")?)
        .arg("collect")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting vigil collect")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "vigil collect did not listen in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}

fn signal(child: &mut Child, signal: libc::c_int) -> std::io::Result<std::process::ExitStatus> {
    // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    child.wait()
}

/// `GET /metrics` over a plain HTTP/1.1 request; `None` when it cannot be read.
fn scrape(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The value of the sample `name` (with its labels, as printed) in a metrics page.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// What the collector's file holds.
#[derive(Debug, Default, PartialEq)]
struct Collected {
    records: u64,
    /// Records per sequence number, per stream.
    seqs: HashMap<String, HashMap<u64, u32>>,
    loss_records: u64,
    /// File events of the storm (its process, its file).
    storm_events: u64,
}

/// Whether a collected event is one of the storm's file events.
fn storm_event(event: &serde_json::Value, pid: u32, path: &str) -> bool {
    if event["kind"] != "file" {
        return false;
    }
    let process = &event["process"];
    let pid = u64::from(pid);
    if process["tgid"].as_u64() != Some(pid) && process["pid"].as_u64() != Some(pid) {
        return false;
    }
    // The `detail` oneof, however serde names its variant; or a flat `file`.
    let detail = event["detail"]
        .as_object()
        .and_then(|d| d.values().next())
        .unwrap_or(&event["file"]);
    detail["path"] == path
}

fn read_collected(out: &Path, pid: u32, path: &str) -> anyhow::Result<Collected> {
    let file = std::fs::File::open(out).with_context(|| format!("opening {}", out.display()))?;
    let mut collected = Collected::default();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.context("reading the collector's file")?;
        let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        collected.records += 1;
        let stream = record["stream"].as_str().unwrap_or("").to_owned();
        if let Some(seq) = record["seq"].as_u64() {
            *collected
                .seqs
                .entry(stream)
                .or_default()
                .entry(seq)
                .or_default() += 1;
        }
        if record.get("loss").is_some() {
            collected.loss_records += 1;
        }
        if storm_event(&record["event"], pid, path) {
            collected.storm_events += 1;
        }
    }
    Ok(collected)
}

/// (highest, missing in 1..=highest, numbers seen more than once) of one stream.
fn check_seqs(seqs: &HashMap<u64, u32>) -> (u64, u64, u64) {
    let highest = seqs.keys().copied().max().unwrap_or(0);
    let missing = (1..=highest).filter(|s| !seqs.contains_key(s)).count() as u64;
    let repeated = seqs.values().filter(|&&n| n > 1).count() as u64;
    (highest, missing, repeated)
}

pub async fn run(plan: Plan) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-bench-outage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run_in(&plan, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(plan: &Plan, dir: &Path) -> anyhow::Result<()> {
    let (out, log, file) = (
        dir.join("collected.jsonl"),
        dir.join("collector.log"),
        dir.join("target"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port")?
        .port();
    let mut config = Config::load(None).context("the embedded default config")?;
    config.files.watch.push(format!("{}/", dir.display()));
    config.api.enabled = false;
    config.telemetry.metrics_address = "127.0.0.1:0".into();
    config.forward.select = Select::All;
    config.forward.spool_dir = dir.join("spool");
    config.forward.collector.endpoint = format!("http://127.0.0.1:{port}");
    let total = plan.before + plan.outage + plan.after;
    println!(
        "collector outage under load: open storm at {}/s for {:.0} s, every event forwarded \
         (select = all) to vigil collect, killed (SIGKILL) at {:.0} s and restarted {:.0} s later",
        plan.rate,
        total.as_secs_f64(),
        plan.before.as_secs_f64(),
        plan.outage.as_secs_f64()
    );
    let mut collector = start_collector(port, &out, &log)?;
    let worker = Worker::spawn_paced(
        Kind::Open,
        Pace {
            count: u64::MAX,
            seconds: Some(total.as_secs_f64()),
            rate: Some(plan.rate),
        },
        Some(&file),
    )?;
    let (pid, path) = (worker.pid, file.to_string_lossy().into_owned());
    let target = Target {
        pid,
        port: 0,
        file: Some(file.clone()),
    };
    let (exporter, counts) = Counter::new(target, super::open::classify, 1);
    let agent = Agent::start(&config, Box::new(exporter)).context("starting Vigil")?;
    let metrics = agent
        .metrics_addr()
        .context("the metrics endpoint is off")?;
    let storm = tokio::task::spawn_blocking(move || worker.go_counted());
    let started = Instant::now();
    let mut spool_peak = 0f64;
    let watch = |spool_peak: &mut f64| {
        let body = scrape(metrics).unwrap_or_default();
        if let Some(bytes) = sample(&body, SPOOL) {
            *spool_peak = spool_peak.max(bytes);
        }
        body
    };
    let mut killed = false;
    let mut restarted = None;
    while !storm.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let body = tokio::task::block_in_place(|| watch(&mut spool_peak));
        let t = started.elapsed();
        if !killed && t >= plan.before {
            signal(&mut collector, libc::SIGKILL).context("killing vigil collect")?;
            killed = true;
            println!("  {:.1} s: collector killed", t.as_secs_f64());
        }
        if killed && restarted.is_none() && t >= plan.before + plan.outage {
            println!(
                "  {:.1} s: restarting the collector; lag {} records, spool {:.1} MiB, \
                 connected {}",
                t.as_secs_f64(),
                sample(&body, LAG).unwrap_or(f64::NAN),
                sample(&body, SPOOL).unwrap_or(f64::NAN) / 1048576.0,
                sample(&body, CONNECTED).unwrap_or(f64::NAN)
            );
            collector = tokio::task::block_in_place(|| start_collector(port, &out, &log))?;
            restarted = Some(Instant::now());
        }
    }
    let (timing, generated) = storm.await??;
    println!(
        "  {:.1} s: storm done, {generated} opens in {:.1} s",
        started.elapsed().as_secs_f64(),
        timing.wall.as_secs_f64()
    );
    // The storm may end before the planned restart when it ran slow: restart now.
    if restarted.is_none() {
        if !killed {
            signal(&mut collector, libc::SIGKILL).context("killing vigil collect")?;
        }
        collector = tokio::task::block_in_place(|| start_collector(port, &out, &log))?;
        restarted = Some(Instant::now());
    }
    // The storm's last events reach the spool within the reader's poll and the pipeline's
    // tick: give them a moment before waiting for the lag to reach 0.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deadline = Instant::now() + DRAIN;
    let drained = loop {
        let body = tokio::task::block_in_place(|| watch(&mut spool_peak));
        if sample(&body, LAG) == Some(0.0) && sample(&body, CONNECTED) == Some(1.0) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let drain = restarted.map_or(Duration::ZERO, |r| r.elapsed());
    let summary = agent.stop().await;
    signal(&mut collector, libc::SIGINT).context("stopping vigil collect")?;
    let counts = std::mem::take(&mut *counts.lock().unwrap_or_else(|e| e.into_inner()));
    let collected = tokio::task::block_in_place(|| read_collected(&out, pid, &path))?;
    println!(
        "  spool drained: {drained} ({:.1} s from the restart until the lag was 0)",
        drain.as_secs_f64()
    );
    println!("generated opens (the worker's count)       {generated}");
    println!(
        "captured by the agent (its file events)     {}",
        counts.classes.first().copied().unwrap_or(0)
    );
    println!(
        "storm events at the collector               {}",
        collected.storm_events
    );
    println!(
        "records at the collector                    {} (the storm's and the node's events)",
        collected.records
    );
    for (stream, seqs) in &collected.seqs {
        let (highest, missing, repeated) = check_seqs(seqs);
        println!(
            "stream {stream}: sequence numbers 1..={highest}, {} distinct, {missing} missing, \
             {repeated} written more than once",
            seqs.len()
        );
    }
    println!(
        "loss records at the collector               {}",
        collected.loss_records
    );
    println!(
        "agent's lost events (all causes)            {}; loss causes: {}",
        summary.lost,
        counts.causes()
    );
    println!(
        "spool peak                                  {:.1} MiB (vigil_forward_spool_bytes, \
         sampled every 0.5 s; whole segments)",
        spool_peak / 1048576.0
    );
    let collector_log = std::fs::read_to_string(&log).unwrap_or_default();
    let duplicates: Vec<&str> = collector_log
        .lines()
        .filter(|l| l.contains("records written") || l.contains("duplicate"))
        .collect();
    if !duplicates.is_empty() {
        println!("collector's log: {}", duplicates.join(" | "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_samples_and_sequence_checks() {
        let body = "# HELP x\nvigil_forward_lag_records{destination=\"collector\"} 12\n\
                    vigil_forward_spool_bytes 4194304\n";
        assert_eq!(sample(body, LAG), Some(12.0));
        assert_eq!(sample(body, SPOOL), Some(4_194_304.0));
        assert_eq!(sample(body, CONNECTED), None);
        let seqs: HashMap<u64, u32> = [(1, 1), (2, 2), (4, 1)].into_iter().collect();
        assert_eq!(check_seqs(&seqs), (4, 1, 1));
        let event = serde_json::json!({
            "kind": "file",
            "process": {"pid": 7, "tgid": 7},
            "detail": {"File": {"path": "/tmp/x/target"}},
        });
        assert!(storm_event(&event, 7, "/tmp/x/target"));
        assert!(!storm_event(&event, 8, "/tmp/x/target"));
        assert!(!storm_event(&event, 7, "/tmp/x/other"));
    }
}
