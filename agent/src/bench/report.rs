//! What `vigil bench connect` and `vigil bench open` print: a line per run, then medians side
//! by side (no tracer, Vigil, the peer) and what each tracer captured.

use super::{
    exec::median,
    peer::PeerRun,
    storm::{RunResult, Spec},
};

fn med(results: &[RunResult], f: impl Fn(&RunResult) -> Option<f64>) -> f64 {
    let mut v: Vec<f64> = results.iter().filter_map(f).collect();
    median(&mut v)
}

fn peer(r: &RunResult) -> Option<&PeerRun> {
    r.peer.as_ref()
}

fn tool_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
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
    if let Some(p) = &r.peer {
        println!(
            "         {} {:.3} s ({}; it reported {} lost)",
            tool_name(spec.peer),
            p.storm.wall.as_secs_f64(),
            classes(spec.peer_classes, &p.captured, spec.count),
            p.lost
        );
    }
}

/// One row of the side-by-side table: a label and up to three cells.
fn row(label: &str, cells: [String; 3]) {
    println!(
        "{label:<34}{:>12}{:>12}{:>12}",
        cells[0], cells[1], cells[2]
    );
}

pub fn report(spec: &Spec, results: &[RunResult]) {
    let tool = tool_name(spec.peer);
    let has_peer = results.iter().any(|r| r.peer.is_some());
    let secs = |v: f64| format!("{v:.3} s");
    let base_wall = |r: &RunResult| r.base.wall.as_secs_f64();
    let base_cpu = |r: &RunResult| Some(r.base.cpu?.as_secs_f64());
    let wall = [
        med(results, |r| Some(base_wall(r))),
        med(results, |r| Some(r.vigil.storm.wall.as_secs_f64())),
        med(results, |r| Some(peer(r)?.storm.wall.as_secs_f64())),
    ];
    let slowdown = [
        med(results, |r| {
            Some(r.vigil.storm.wall.as_secs_f64() / base_wall(r))
        }),
        med(results, |r| {
            Some(peer(r)?.storm.wall.as_secs_f64() / base_wall(r))
        }),
    ];
    let cpu = [
        med(results, base_cpu),
        med(results, |r| Some(r.vigil.storm.cpu?.as_secs_f64())),
        med(results, |r| Some(peer(r)?.storm.cpu?.as_secs_f64())),
    ];
    let cpu_ratio = [
        med(results, |r| {
            Some(r.vigil.storm.cpu?.as_secs_f64() / base_cpu(r)?)
        }),
        med(results, |r| {
            Some(peer(r)?.storm.cpu?.as_secs_f64() / base_cpu(r)?)
        }),
    ];
    let kernel_ns = [
        med(results, |r| Some(r.vigil.kernel_ns_per_event)),
        med(results, |r| Some(peer(r)?.kernel_ns_per_event)),
    ];
    let tracer_cpu = [
        med(results, |r| Some(r.vigil.cpu.as_secs_f64())),
        med(results, |r| Some(peer(r)?.cpu.as_secs_f64())),
    ];
    let lost = [
        results.iter().map(|r| r.vigil.lost).max().unwrap_or(0),
        results
            .iter()
            .filter_map(|r| Some(peer(r)?.lost))
            .max()
            .unwrap_or(0),
    ];
    let peer_cell = |s: String| if has_peer { s } else { "-".into() };
    println!();
    row(
        "medians of the runs",
        ["no tracer".into(), "vigil".into(), tool.into()],
    );
    row(
        "storm wall time",
        [secs(wall[0]), secs(wall[1]), peer_cell(secs(wall[2]))],
    );
    row(
        "slowdown (wall / no tracer's)",
        [
            String::new(),
            format!("{:.2}", slowdown[0]),
            peer_cell(format!("{:.2}", slowdown[1])),
        ],
    );
    row(
        "storm thread CPU (user+sys)",
        [secs(cpu[0]), secs(cpu[1]), peer_cell(secs(cpu[2]))],
    );
    row(
        "CPU ratio (CPU / no tracer's)",
        [
            String::new(),
            format!("{:.2}", cpu_ratio[0]),
            peer_cell(format!("{:.2}", cpu_ratio[1])),
        ],
    );
    row(
        "kernel ns per iteration",
        [
            String::new(),
            format!("{:.0}", kernel_ns[0]),
            peer_cell(format!("{:.0}", kernel_ns[1])),
        ],
    );
    row(
        "tracer process CPU (user+sys)",
        [
            String::new(),
            format!("{:.0} ms", tracer_cpu[0] * 1e3),
            peer_cell(format!("{:.0} ms", tracer_cpu[1] * 1e3)),
        ],
    );
    row(
        "lost, its own count (worst run)",
        [
            String::new(),
            lost[0].to_string(),
            peer_cell(lost[1].to_string()),
        ],
    );
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
    if has_peer {
        captured(
            tool,
            spec.peer_classes,
            results,
            |r| Some(&peer(r)?.captured),
            spec.count,
        );
        println!(
            "  ({tool}'s own loss count can fall short: a perf-buffer loss is reported only \
             with the CPU's next record, so the last losses of a storm go unreported)"
        );
    }
    println!();
    println!("kernel ns per run of each program (medians; runs in the storm window):");
    if let Some(first) = results.first() {
        for (i, (name, _, _)) in first.vigil.programs.iter().enumerate() {
            let ns = med(results, |r| r.vigil.programs.get(i).map(|p| p.1));
            let runs = med(results, |r| r.vigil.programs.get(i).map(|p| p.2 as f64));
            println!("  vigil {name:<22} {ns:>6.0} ns x {runs:.0}");
        }
    }
    if let Some(first) = results.iter().find_map(peer) {
        for (i, (name, _, _)) in first.programs.iter().enumerate() {
            let ns = med(results, |r| peer(r)?.programs.get(i).map(|p| p.1));
            let runs = med(results, |r| peer(r)?.programs.get(i).map(|p| p.2 as f64));
            // The kernel keeps 15 bytes of a name: number them (in load order).
            let name = format!("{name}#{}", i + 1);
            println!("  {tool} {name:<18} {ns:>6.0} ns x {runs:.0}");
        }
    }
    if has_peer {
        println!(
            "vigil / {tool}: kernel ns per iteration {:.2}, storm CPU {:.2}, wall {:.2}",
            kernel_ns[0] / kernel_ns[1],
            cpu[1] / cpu[2],
            wall[1] / wall[2]
        );
    } else {
        println!(
            "peer: {} not installed (Debian libbpf-tools); no side-by-side figures",
            spec.peer
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
