//! No silent loss: a ring buffer far too small for a burst overflows, and every exec of the
//! burst is either delivered or counted as lost, with its cause, in a `loss` event.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use vigil::{config::Config, event::Detail};
use vigil_tests::{
    EVENT_TIMEOUT, Harness,
    select::loss_causes,
    spawn::{canonical_bytes, run_to_end},
};

const PROCESSES: usize = 300;

#[test]
fn an_overflowing_ring_buffer_reports_its_losses_by_cause() {
    let mut config = Config::default();
    // One page of ring, drained once a second, never woken early: a burst must overflow it.
    config.ring_buffer.size_bytes = 4096;
    config.ring_buffer.wakeup_threshold_bytes = 4096;
    config.ring_buffer.poll_interval_ms = 1000;
    config.telemetry.loss_report_interval_ms = 200;
    let Some(mut agent) = Harness::start(&config) else {
        return;
    };
    let binary = canonical_bytes(Path::new("/bin/true"));
    let started = Instant::now();
    let mut pids = Vec::with_capacity(PROCESSES);
    for _ in 0..PROCESSES {
        pids.push(run_to_end(&mut Command::new("/bin/true"), EVENT_TIMEOUT).pid);
    }
    let burst = started.elapsed();
    assert!(burst < Duration::from_secs(30), "the burst took {burst:?}");

    let lost_exec = agent.collect_until("a loss event for execs", EVENT_TIMEOUT, |events| {
        let lost: u64 = loss_causes(events)
            .iter()
            .filter(|(cause, _)| *cause == "ringbuf_full_exec")
            .map(|(_, n)| n)
            .sum();
        (lost > 0).then_some(lost)
    });
    // Let the last reports arrive, then count what was delivered of the burst.
    agent.collect_for(Duration::from_millis(1500));
    let delivered = agent
        .events()
        .iter()
        .filter(|e| match &e.detail {
            Detail::Exec(x) => pids.contains(&x.task.key.tgid) && x.image.binary.path == binary,
            _ => false,
        })
        .count() as u64;
    let lost_exec_total: u64 = loss_causes(agent.events())
        .iter()
        .filter(|(cause, _)| *cause == "ringbuf_full_exec")
        .map(|(_, n)| n)
        .sum();
    assert!(lost_exec >= 1);
    assert!(
        delivered < PROCESSES as u64,
        "a one-page ring drained once a second should not hold {PROCESSES} execs"
    );
    // Other processes on the machine may have lost execs too, so at least, not exactly.
    assert!(
        delivered + lost_exec_total >= PROCESSES as u64,
        "{delivered} delivered + {lost_exec_total} counted lost < {PROCESSES} generated"
    );
    let summary = agent.stop();
    assert!(
        summary.lost >= lost_exec_total,
        "the summary counts every loss"
    );
}
