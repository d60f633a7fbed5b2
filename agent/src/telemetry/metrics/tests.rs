use std::time::Duration;

use super::*;
use crate::enrich::EnrichCounter;

fn full_snapshot() -> Snapshot {
    let mut kernel = [0; KernelCounter::ALL.len()];
    kernel[KernelCounter::RingbufFullExec as usize] = 7;
    let mut drops = [0; Drop::ALL.len()];
    drops[Drop::QueueFullFork as usize] = 2;
    let mut stats = EnrichStats::default();
    stats.add(EnrichCounter::IncompleteTimeout, 6);
    Snapshot {
        events: vec![("exec", 10), ("exit", 9)],
        kernel,
        drops,
        findings: vec![("exec-from-temp-dir".into(), "high", 3)],
        ring: Some(RingUsage {
            used_bytes: 4096,
            size_bytes: 8 << 20,
        }),
        cache_entries: 5,
        cache_bytes: 4096,
        enrich: Some(EnrichMetrics {
            stats,
            pending_events: 12,
            containers: 2,
        }),
        dns_malformed: 3,
        api_dropped: Some(4),
        enforcement: vec![("exec_killed", "ok", 2)],
        programs: Some(vec![ProgramRun {
            name: "process_exec",
            run_time: Duration::from_micros(1500),
            runs: 42,
        }]),
        ..Snapshot::default()
    }
}

#[test]
fn renders_every_family_with_labels() {
    let text = render(&full_snapshot());
    for sample in [
        "vigil_dns_malformed_total 3\n",
        "vigil_api_dropped_total 4\n",
        "vigil_lost_events_total{cause=\"api_client_lagged\"} 4\n",
        "vigil_enforcement_actions_total{action=\"exec_killed\",outcome=\"ok\"} 2\n",
        "vigil_events_total{kind=\"exec\"} 10\n",
        "vigil_lost_events_total{cause=\"ringbuf_full_exec\"} 7\n",
        "vigil_lost_events_total{cause=\"queue_full_fork\"} 2\n",
        "vigil_findings_total{rule=\"exec-from-temp-dir\",severity=\"high\"} 3\n",
        "vigil_ring_buffer_used_bytes 4096\n",
        "vigil_ring_buffer_size_bytes 8388608\n",
        "vigil_process_cache_entries 5\n",
        "vigil_enrich_incomplete_total{cause=\"timeout\"} 6\n",
        "vigil_enrich_lookups_total{result=\"found\"} 0\n",
        "vigil_enrich_events_held_total 0\n",
        "vigil_enrich_pending_events 12\n",
        "vigil_enrich_containers 2\n",
        "vigil_bpf_program_run_seconds_total{program=\"process_exec\"} 0.0015\n",
        "vigil_bpf_program_runs_total{program=\"process_exec\"} 42\n",
        "# TYPE vigil_process_cache_bytes gauge\n",
    ] {
        assert!(text.contains(sample), "no {sample:?} in:\n{text}");
    }
    check_exposition(&text);
}

#[test]
fn every_family_is_listed_once_in_table_order_even_with_nothing_on() {
    for snapshot in [Snapshot::default(), full_snapshot()] {
        let text = render(&snapshot);
        let types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        let expected: Vec<String> = families::ALL
            .iter()
            .map(|f| format!("{} {}", f.name, f.kind.name()))
            .collect();
        assert_eq!(types, expected);
        check_exposition(&text);
    }
    let off = render(&Snapshot::default());
    let has_sample = |name: &str| off.lines().any(|l| l.starts_with(name));
    assert!(!has_sample("vigil_api_dropped_total "), "{off}");
    assert!(!has_sample("vigil_bpf_program_runs_total{"), "{off}");
    assert!(!has_sample("vigil_enrich_pending_events "), "{off}");
}

#[test]
fn a_rule_name_is_escaped_in_its_label() {
    let text = render(&Snapshot {
        findings: vec![("odd\"rule\\name\n".into(), "low", 1)],
        ..Snapshot::default()
    });
    assert!(
        text.contains("vigil_findings_total{rule=\"odd\\\"rule\\\\name\\n\",severity=\"low\"} 1\n"),
        "{text}"
    );
    check_exposition(&text);
}

/// Every sample belongs to the family whose header precedes it, with that family's label
/// names, and has a numeric value.
fn check_exposition(text: &str) {
    let mut current: Option<&families::Family> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().expect("a name");
            current = families::ALL.iter().copied().find(|f| f.name == name);
            assert!(current.is_some(), "unknown family {name}");
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let family = current.expect("a sample after a family header");
        let (series, value) = line.rsplit_once(' ').expect("a value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        assert_eq!(name, family.name, "{line}");
        let names: Vec<&str> = labels
            .split("\",")
            .filter_map(|pair| pair.split_once("=\"").map(|(k, _)| k))
            .collect();
        assert_eq!(names, family.labels, "{line}");
    }
}

/// docs/metrics.md's table: (name, type, labels) per row.
fn documented() -> Vec<(String, String, Vec<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
    let doc = std::fs::read_to_string(path).expect("docs/metrics.md");
    doc.lines()
        .filter(|l| l.starts_with("| `vigil_"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let unquote = |c: &str| c.trim_matches('`').to_owned();
            let labels = cells[3]
                .split(',')
                .map(|l| unquote(l.trim()))
                .filter(|l| !l.is_empty())
                .collect();
            (unquote(cells[1]), cells[2].to_owned(), labels)
        })
        .collect()
}

#[test]
fn docs_metrics_md_lists_every_family_with_its_type_and_labels() {
    let expected: Vec<(String, String, Vec<String>)> = families::ALL
        .iter()
        .map(|f| {
            let labels = f.labels.iter().map(|l| (*l).to_owned()).collect();
            (f.name.to_owned(), f.kind.name().to_owned(), labels)
        })
        .collect();
    assert_eq!(documented(), expected);
}
