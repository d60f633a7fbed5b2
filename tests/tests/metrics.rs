//! `GET /metrics`: the documented families, with counts that follow real events.

use std::process::Command;

use vigil::config::Config;
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    scrape::{get, metrics_until, value},
    spawn::run_to_end,
};

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
    let body = metrics_until(addr, EVENT_TIMEOUT, |body| {
        value(body, "vigil_events_total{kind=\"exec\"}").is_some_and(|n| n >= 5)
    });
    for family in [
        "# TYPE vigil_events_total counter",
        "# TYPE vigil_lost_events_total counter",
        "# TYPE vigil_process_cache_entries gauge",
        "# TYPE vigil_process_cache_bytes gauge",
        "# TYPE vigil_process_cache_misses_total counter",
        "vigil_lost_events_total{cause=\"ringbuf_full_exec\"} ",
        "vigil_lost_events_total{cause=\"queue_full_exec\"} ",
        "vigil_enrich_incomplete_total{cause=\"timeout\"} ",
        "# TYPE vigil_dns_malformed_total counter",
    ] {
        assert!(body.contains(family), "missing `{family}` in:\n{body}");
    }
    assert!(value(&body, "vigil_process_cache_entries").is_some_and(|n| n > 0));
    assert!(get(addr, "/other").starts_with("HTTP/1.1 404"));
    agent.stop();
}
