//! The forwarder end to end without root: events handed over while no collector listens go
//! to the spool; a spool too small for them drops the oldest, counts them and says so in the
//! stream; an in-process `vigil collect` then receives the rest in order.

use std::{sync::Arc, time::Duration};

use super::{ForwardConfig, Forwarder, Select, collect};
use crate::{
    event::{Detail, Event, Loss},
    telemetry::{Counters, Drop},
};

fn marker(i: u64) -> Event {
    // Loss events are among what `select = findings` forwards; the count tells them apart.
    Event::new(
        i,
        0,
        None,
        None,
        Detail::Loss(Loss {
            counts: vec![("marker", i)],
        }),
    )
}

fn temp(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-forward-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config(dir: &std::path::Path, port: u16) -> ForwardConfig {
    let mut config = ForwardConfig {
        select: Select::Findings,
        spool_dir: dir.join("spool"),
        spool_max_bytes: 64 * 1024,
        segment_bytes: 4096,
        ..ForwardConfig::default()
    };
    config.collector.endpoint = format!("http://127.0.0.1:{port}");
    config
}

#[test]
fn a_full_spool_drops_the_oldest_counts_them_and_tells_the_collector() {
    let dir = temp("full");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let counters = Arc::new(Counters::default());
    let forwarder = Forwarder::start(&config(&dir, port), "node-a".into(), counters.clone())
        .expect("start")
        .expect("a destination is configured");
    // About 200 bytes a record: 2,000 of them overflow 64 KiB several times over.
    const N: u64 = 2000;
    for chunk in (1..=N).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<Event> = chunk.iter().map(|&i| marker(i)).collect();
        forwarder.offer(&batch);
        std::thread::sleep(Duration::from_millis(5));
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let out = dir.join("collected.jsonl");
    let (bound, _) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(collect::serve(
        collect::CollectOptions {
            listen: Some(([127, 0, 0, 1], port).into()),
            out: out.clone(),
            ..Default::default()
        },
        bound,
        async {
            let _ = stopped.await;
        },
    ));
    // Done when every marker is delivered or reported dropped.
    let marker_of =
        |l: &serde_json::Value| l["event"]["detail"]["Loss"]["causes"]["marker"].as_u64();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let delivered = lines.iter().filter_map(marker_of).count() as u64;
        let reported: u64 = lines
            .iter()
            .filter_map(|l| l["loss"]["count"].as_u64())
            .sum();
        if delivered + reported == N && lines.iter().filter_map(marker_of).any(|m| m == N) {
            break lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery: {delivered} delivered, {reported} reported dropped"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    forwarder.stop();
    let _ = stop.send(());
    let (written, _) = runtime
        .block_on(server)
        .expect("join")
        .expect("the collector ran");
    assert_eq!(written as usize, lines.len());

    let dropped = counters.snapshot()[Drop::ForwardSpoolFull as usize];
    assert!(dropped > 0, "the spool overflowed");
    let losses: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("loss")).collect();
    let reported: u64 = losses.iter().filter_map(|l| l["count"].as_u64()).sum();
    assert_eq!(reported, dropped, "every drop is in a loss record");
    assert!(losses.iter().all(|l| l["cause"] == "spool_full"));
    // Delivered markers are increasing, and with the dropped ones account for all of them.
    let markers: Vec<u64> = lines.iter().filter_map(marker_of).collect();
    assert!(markers.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(markers.len() as u64 + dropped, N);
    // Sequence numbers increase, and every one is either delivered or in a loss record.
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    let mut accounted: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
    for loss in &losses {
        let (first, last) = (loss["first_seq"].as_u64(), loss["last_seq"].as_u64());
        accounted.extend(first.expect("first_seq")..=last.expect("last_seq"));
    }
    let max = *seqs.last().expect("records");
    let missing: Vec<u64> = (1..=max).filter(|s| !accounted.contains(s)).collect();
    assert!(missing.is_empty(), "unexplained gaps: {missing:?}");
    let _ = std::fs::remove_dir_all(dir);
}
