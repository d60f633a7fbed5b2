//! Reading the agent's Prometheus endpoint (`telemetry.metrics_address`).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

/// The whole HTTP response to `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}

/// The value of `sample` (a metric name with its labels) in a text exposition.
pub fn value(body: &str, sample: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Scrapes `/metrics` until `ready` accepts the body (snapshots are rendered once per tick);
/// panics after `timeout` with the last body.
#[track_caller]
pub fn metrics_until(addr: SocketAddr, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let response = get(addr, "/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("Content-Type: text/plain; version=0.0.4"));
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        if ready(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "metrics not as expected in time:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
