//! `GET /metrics`: every family that docs/metrics.md names is served (the doc's table is read,
//! so the doc stays true), with samples wherever the doc says there are, and counts that
//! follow real events: execs, the findings of a rule, the ring buffer's configured size, the
//! programs' runs while kernel BPF statistics are on.

use std::{
    os::fd::{FromRawFd, OwnedFd},
    path::Path,
    process::Command,
};

use vigil::config::Config;
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    scrape::{get, metrics_until, value},
    spawn::{TempDir, install_executable, run_to_end},
};

const RULE: &str = "metrics-test-exec";
const RUNS: u64 = 3;
const RING_BYTES: u32 = 1 << 20;

/// One row of docs/metrics.md's table.
struct Documented {
    name: String,
    kind: String,
    /// When the family has samples ("always", "`api.enabled`"...).
    when: String,
}

fn documented() -> Vec<Documented> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
    let doc = std::fs::read_to_string(path).expect("docs/metrics.md");
    let rows: Vec<Documented> = doc
        .lines()
        .filter(|l| l.starts_with("| `vigil_"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            Documented {
                name: cells[1].trim_matches('`').to_owned(),
                kind: cells[2].to_owned(),
                when: cells[4].to_owned(),
            }
        })
        .collect();
    assert!(
        rows.len() > 20,
        "the table of docs/metrics.md was not found"
    );
    rows
}

/// Kernel BPF run statistics, on while this lives (`BPF_ENABLE_STATS`: counted by the kernel
/// per holder, so nothing global stays changed, unlike the sysctl).
struct BpfStats(#[expect(dead_code, reason = "held for its lifetime")] OwnedFd);

impl BpfStats {
    fn enable() -> Self {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        const BPF_STATS_RUN_TIME: u32 = 0;
        // `union bpf_attr` for this command: one u32, the statistics type.
        let attr = BPF_STATS_RUN_TIME;
        // SAFETY: bpf(2) reads `size_of::<u32>()` bytes of `attr`, which lives across the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                &raw const attr,
                size_of::<u32>(),
            )
        };
        assert!(
            fd >= 0,
            "BPF_ENABLE_STATS: {}",
            std::io::Error::last_os_error()
        );
        let fd = i32::try_from(fd).expect("an fd");
        // SAFETY: a new fd that nothing else owns.
        Self(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

#[test]
fn metrics_endpoint_serves_every_documented_family() {
    let dir = TempDir::new("metrics");
    let program = install_executable(Path::new("/bin/true"), dir.path(), "vigil-metrics-true");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("policy directory");
    std::fs::write(
        policies.join("rules.yaml"),
        format!(
            "rules:\n  - name: {RULE}\n    severity: high\n    match: {{kind: exec, process.binary: '{}'}}\n",
            program.display()
        ),
    )
    .expect("policy file");
    let mut config = Config::default();
    config.telemetry.metrics_address = "127.0.0.1:0".into();
    config.telemetry.loss_report_interval_ms = 100;
    config.ring_buffer.size_bytes = RING_BYTES;
    config.policy.default_pack = false;
    config.policy.directory = policies.display().to_string();
    // Nothing shared with an agent running beside: no pins, a private API socket.
    config.enforcement.enabled = false;
    config.api.socket = dir.path().join("vigil.sock");
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let _stats = BpfStats::enable();
    let addr = agent.metrics_addr().expect("metrics are on");
    for _ in 0..RUNS {
        run_to_end(&mut Command::new(&program), EVENT_TIMEOUT);
    }
    let finding = format!("vigil_findings_total{{rule=\"{RULE}\",severity=\"high\"}}");
    let body = metrics_until(addr, EVENT_TIMEOUT, |body| {
        value(body, &finding).is_some_and(|n| n >= RUNS)
            && value(
                body,
                "vigil_bpf_program_runs_total{program=\"process_exec\"}",
            )
            .is_some_and(|n| n >= RUNS)
    });

    for family in documented() {
        let header = format!("# TYPE {} {}\n", family.name, family.kind);
        assert!(body.contains(&header), "missing `{header}` in:\n{body}");
        let on_here = [
            "always",
            "`api.enabled`",
            "`enrich.enabled`",
            "BPF statistics on",
            "a rule fired",
        ];
        if on_here.contains(&family.when.as_str()) {
            let sample = |l: &&str| {
                l.strip_prefix(family.name.as_str())
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            };
            assert!(
                body.lines().any(|l| sample(&l)),
                "no sample of {} (samples when: {}) in:\n{body}",
                family.name,
                family.when
            );
        }
    }
    assert_eq!(value(&body, &finding), Some(RUNS), "one finding per exec");
    assert_eq!(
        value(&body, "vigil_ring_buffer_size_bytes"),
        Some(u64::from(RING_BYTES))
    );
    let used = value(&body, "vigil_ring_buffer_used_bytes").expect("ring fill");
    assert!(used <= u64::from(RING_BYTES), "{used}");
    assert!(value(&body, "vigil_events_total{kind=\"exec\"}").is_some_and(|n| n >= RUNS));
    assert!(value(&body, "vigil_process_cache_entries").is_some_and(|n| n > 0));
    assert_eq!(
        value(
            &body,
            "vigil_lost_events_total{cause=\"api_client_lagged\"}"
        ),
        Some(0)
    );
    assert!(get(addr, "/other").starts_with("HTTP/1.1 404"));
    agent.stop();
}

#[test]
fn ring_buffer_fill_shows_records_waiting_for_the_reader() {
    let mut config = Config::default();
    config.telemetry.metrics_address = "127.0.0.1:0".into();
    config.telemetry.loss_report_interval_ms = 20;
    // Once a drain has found records the reader waits a second before the next, and the
    // threshold never wakes it early: the records of the execs below wait in the ring.
    config.ring_buffer.poll_interval_ms = 1_000;
    config.ring_buffer.wakeup_threshold_bytes = config.ring_buffer.size_bytes;
    config.enforcement.enabled = false;
    config.api.enabled = false;
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let addr = agent.metrics_addr().expect("metrics are on");
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    let used = loop {
        run_to_end(&mut Command::new("/bin/true"), EVENT_TIMEOUT);
        let body = metrics_until(addr, EVENT_TIMEOUT, |_| true);
        // The gauge is sampled once per tick: absent from a scrape before the first.
        if let Some(used) = value(&body, "vigil_ring_buffer_used_bytes").filter(|&n| n > 0) {
            break used;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ring never showed a pending record"
        );
        std::thread::sleep(std::time::Duration::from_millis(30));
    };
    eprintln!("{used} bytes waiting in the ring");
    // Records are 8-byte aligned, headers included.
    assert_eq!(used % 8, 0, "{used}");
    assert!(used < u64::from(config.ring_buffer.size_bytes));
    agent.stop();
}
