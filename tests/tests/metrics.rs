//! `GET /metrics`: the documented families, with counts that follow real events.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::Command,
    time::{Duration, Instant},
};

use vigil::config::Config;
use vigil_tests::{EVENT_TIMEOUT, Harness, spawn::run_to_end};

fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}

fn value(body: &str, sample: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_endpoint_serves_the_documented_families() {
    let mut config = Config::default();
    config.telemetry.metrics_address = "127.0.0.1:0".into();
    config.telemetry.loss_report_interval_ms = 100;
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let addr = agent.metrics_addr().expect("metrics are on");
    for _ in 0..5 {
        run_to_end(&mut Command::new("/bin/true"), EVENT_TIMEOUT);
    }
    // Snapshots are rendered once per tick: wait for one that counts our execs.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let body = loop {
        let response = get(addr, "/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("Content-Type: text/plain; version=0.0.4"));
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        if value(&body, "vigil_events_total{kind=\"exec\"}").is_some_and(|n| n >= 5) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no exec counted in time:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for family in [
        "# TYPE vigil_events_total counter",
        "# TYPE vigil_lost_events_total counter",
        "# TYPE vigil_process_cache_entries gauge",
        "# TYPE vigil_process_cache_bytes gauge",
        "# TYPE vigil_process_cache_misses_total counter",
        "vigil_lost_events_total{cause=\"ringbuf_full_exec\"} ",
        "vigil_lost_events_total{cause=\"queue_full_exec\"} ",
        "vigil_enrich_incomplete_total{cause=\"timeout\"} ",
    ] {
        assert!(body.contains(family), "missing `{family}` in:\n{body}");
    }
    assert!(value(&body, "vigil_process_cache_entries").is_some_and(|n| n > 0));
    assert!(get(addr, "/other").starts_with("HTTP/1.1 404"));
    agent.stop();
}
