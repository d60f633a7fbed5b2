//! What `vigil bench connect` and `vigil bench open` print: a line per run, then medians side
//! by side (no tracer, Vigil, each peer) and what each tracer captured.

use super::{
    exec::median,
    peer::PeerRun,
    storm::{RunResult, Spec},
};

fn med(results: &[RunResult], f: impl Fn(&RunResult) -> Option<f64>) -> f64 {
    let mut v: Vec<f64> = results.iter().filter_map(f).collect();
    median(&mut v)
}

fn peer(r: &RunResult, i: usize) -> Option<&PeerRun> {
    r.peers.get(i)?.as_ref()
}

/// "name n/expected" for each class.
fn classes(names: &[(&str, u64)], counts: &[u64], iterations: u32) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(counts)
        .map(|((name, per), n)| format!("{name} {n}/{}", u64::from(iterations) * per))
        .collect();
    parts.join(", ")
}

pub fn run_line(spec: &Spec, run: u32, r: &RunResult) {
    let v = &r.vigil;
    println!(
        "  run {run}: no tracer {:.3} s, vigil {:.3} s ({}; lost {})",
        r.base.wall.as_secs_f64(),
        v.storm.wall.as_secs_f64(),
        classes(spec.classes, &v.classes, spec.count),
        v.lost
    );
    for (p, run) in spec.peers.iter().zip(&r.peers) {
        if let Some(run) = run {
            println!(
                "         {} {:.3} s ({}; it reported {} lost)",
                p.name,
                run.storm.wall.as_secs_f64(),
                classes(p.classes, &run.captured, spec.count),
                run.lost
            );
        }
    }
}

/// One row of the side-by-side table: a label and a cell per column.
fn row(label: &str, cells: &[String]) {
    let mut line = format!("{label:<34}");
    for cell in cells {
        line.push_str(&format!("{cell:>12}"));
    }
    println!("{line}");
}

/// A figure of a run, `None` when it has none.
type Figure<'a> = &'a dyn Fn(&RunResult) -> Option<f64>;

/// A cell per column: empty for the no-tracer column when `base` is false, `-` for a peer
/// that did not run.
fn cells(
    results: &[RunResult],
    peers: usize,
    base: Option<Figure<'_>>,
    vigil: Figure<'_>,
    of_peer: &dyn Fn(&RunResult, &PeerRun) -> Option<f64>,
    show: &dyn Fn(f64) -> String,
) -> Vec<String> {
    let mut out = vec![base.map_or_else(String::new, |f| show(med(results, f)))];
    out.push(show(med(results, vigil)));
    for i in 0..peers {
        let v = med(results, |r| of_peer(r, peer(r, i)?));
        out.push(if v.is_nan() { "-".into() } else { show(v) });
    }
    out
}

pub fn report(spec: &Spec, results: &[RunResult]) {
    let n = spec.peers.len();
    let secs = |v: f64| format!("{v:.3} s");
    let ratio = |v: f64| format!("{v:.2}");
    let base_wall = |r: &RunResult| r.base.wall.as_secs_f64();
    let base_cpu = |r: &RunResult| Some(r.base.cpu?.as_secs_f64());
    println!();
    let mut header = vec!["no tracer".to_owned(), "vigil".to_owned()];
    header.extend(spec.peers.iter().map(|p| p.name.to_owned()));
    row("medians of the runs", &header);
    row(
        "storm wall time",
        &cells(
            results,
            n,
            Some(&|r| Some(base_wall(r))),
            &|r| Some(r.vigil.storm.wall.as_secs_f64()),
            &|_, p| Some(p.storm.wall.as_secs_f64()),
            &secs,
        ),
    );
    row(
        "slowdown (wall / no tracer's)",
        &cells(
            results,
            n,
            None,
            &|r| Some(r.vigil.storm.wall.as_secs_f64() / base_wall(r)),
            &|r, p| Some(p.storm.wall.as_secs_f64() / base_wall(r)),
            &ratio,
        ),
    );
    row(
        "slowdown, BPF statistics on",
        &cells(
            results,
            n,
            None,
            &|r| Some(r.vigil.wall_with_stats.as_secs_f64() / base_wall(r)),
            &|r, p| Some(p.wall_with_stats.as_secs_f64() / base_wall(r)),
            &ratio,
        ),
    );
    row(
        "storm thread CPU (user+sys)",
        &cells(
            results,
            n,
            Some(&base_cpu),
            &|r| Some(r.vigil.storm.cpu?.as_secs_f64()),
            &|_, p| Some(p.storm.cpu?.as_secs_f64()),
            &secs,
        ),
    );
    row(
        "CPU ratio (CPU / no tracer's)",
        &cells(
            results,
            n,
            None,
            &|r| Some(r.vigil.storm.cpu?.as_secs_f64() / base_cpu(r)?),
            &|r, p| Some(p.storm.cpu?.as_secs_f64() / base_cpu(r)?),
            &ratio,
        ),
    );
    row(
        "kernel ns per iteration",
        &cells(
            results,
            n,
            None,
            &|r| Some(r.vigil.kernel_ns_per_event),
            &|_, p| Some(p.kernel_ns_per_event),
            &|v| format!("{v:.0}"),
        ),
    );
    row(
        "tracer process CPU (user+sys)",
        &cells(
            results,
            n,
            None,
            &|r| Some(r.vigil.cpu.as_secs_f64()),
            &|_, p| Some(p.cpu.as_secs_f64()),
            &|v| format!("{:.0} ms", v * 1e3),
        ),
    );
    row(
        "tracer peak RSS",
        &cells(
            results,
            n,
            None,
            &|r| Some(r.vigil.peak_rss_kib as f64),
            &|_, p| Some(p.peak_rss_kib as f64),
            &|v| format!("{:.1} MiB", v / 1024.0),
        ),
    );
    let mut lost = vec![
        String::new(),
        results
            .iter()
            .map(|r| r.vigil.lost)
            .max()
            .unwrap_or(0)
            .to_string(),
    ];
    for i in 0..n {
        let worst = results.iter().filter_map(|r| Some(peer(r, i)?.lost)).max();
        lost.push(worst.map_or_else(|| "-".into(), |l| l.to_string()));
    }
    row("lost, its own count (worst run)", &lost);
    println!();
    captured(
        "vigil",
        spec.classes,
        results,
        |r| Some(&r.vigil.classes),
        spec.count,
    );
    for r in results.iter().filter(|r| !r.vigil.losses.is_empty()) {
        let causes: Vec<String> = r
            .vigil
            .losses
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        println!("  vigil loss causes in a run: {}", causes.join(", "));
    }
    for (i, p) in spec.peers.iter().enumerate() {
        if results.iter().any(|r| peer(r, i).is_some()) {
            captured(
                p.name,
                p.classes,
                results,
                |r| Some(&peer(r, i)?.captured),
                spec.count,
            );
        }
    }
    println!(
        "  (a peer's own loss count can fall short: a perf-buffer loss is reported only with \
         the CPU's next record, so the last losses of a storm go unreported)"
    );
    println!();
    println!("kernel ns per run of each program (medians; runs in the storm window):");
    if let Some(first) = results.first() {
        for (i, (name, _, _)) in first.vigil.programs.iter().enumerate() {
            let ns = med(results, |r| r.vigil.programs.get(i).map(|p| p.1));
            let runs = med(results, |r| r.vigil.programs.get(i).map(|p| p.2 as f64));
            println!("  vigil {name:<22} {ns:>6.0} ns x {runs:.0}");
        }
    }
    for (j, p) in spec.peers.iter().enumerate() {
        let Some(first) = results.iter().find_map(|r| peer(r, j)) else {
            println!(
                "peer: {} not installed ({}); no side-by-side figures for it",
                p.tool,
                if p.tool == super::peer::BPFTRACE {
                    "Debian bpftrace"
                } else {
                    "Debian libbpf-tools"
                }
            );
            continue;
        };
        for (i, (name, _, _)) in first.programs.iter().enumerate() {
            let ns = med(results, |r| peer(r, j)?.programs.get(i).map(|p| p.1));
            let runs = med(results, |r| peer(r, j)?.programs.get(i).map(|p| p.2 as f64));
            // The kernel keeps 15 bytes of a name: number them (in load order).
            let name = format!("{name}#{}", i + 1);
            println!("  {} {name:<18} {ns:>6.0} ns x {runs:.0}", p.name);
        }
    }
    // Same-run ratios: each run's Vigil figure over the same run's peer figure, median. The
    // kernel ratio to three places: its target, 1/20, is 0.05.
    for (j, p) in spec.peers.iter().enumerate() {
        if results.iter().all(|r| peer(r, j).is_none()) {
            continue;
        }
        let kernel = med(results, |r| {
            Some(r.vigil.kernel_ns_per_event / peer(r, j)?.kernel_ns_per_event)
        });
        let cpu = med(results, |r| {
            Some(r.vigil.storm.cpu?.as_secs_f64() / peer(r, j)?.storm.cpu?.as_secs_f64())
        });
        let wall = med(results, |r| {
            Some(r.vigil.storm.wall.as_secs_f64() / peer(r, j)?.storm.wall.as_secs_f64())
        });
        println!(
            "vigil / {}: kernel ns per iteration {kernel:.3}, storm CPU {cpu:.2}, wall {wall:.2} \
             (medians of same-run ratios)",
            p.name
        );
    }
}

/// Worst..best run of each class against what the iterations should give.
fn captured(
    who: &str,
    names: &[(&str, u64)],
    results: &[RunResult],
    counts: impl Fn(&RunResult) -> Option<&Vec<u64>>,
    iterations: u32,
) {
    for (i, (name, per)) in names.iter().enumerate() {
        let all = results.iter().filter_map(|r| counts(r)?.get(i).copied());
        let (worst, best) = all.fold((u64::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
        println!(
            "{who} {name}: {}..{best} of {} ({per} per iteration; worst..best run)",
            if worst == u64::MAX { 0 } else { worst },
            u64::from(iterations) * per
        );
    }
}
