//! Reading the guests' console logs and reporting the matrix: a table of kernel x arch x
//! check, the reasons behind every cell that is not a pass, the tail of the log of any guest
//! with a failure, and the same as Markdown for docs/kernels.md.
//!
//! The lines read are those of `vigil selftest` (agent/src/selftest/report.rs).

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use serde_json::Value;

use super::initramfs::BOOTED;

const PREFIX: &str = "vigil-selftest ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Unsupported,
}

impl Status {
    fn cell(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::Unsupported => "n/s",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

/// One guest's results.
pub struct Run {
    /// The series asked for (`6.1`) and the guest's architecture (`x86_64`).
    pub series: String,
    pub arch: &'static str,
    pub package: String,
    /// `uname -r` in the guest, from the suite's first line.
    pub release: Option<String>,
    pub checks: Vec<Check>,
    pub log: PathBuf,
    pub elapsed: Duration,
}

impl Run {
    pub fn column(&self) -> String {
        format!("{} {}", self.series, self.arch)
    }

    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }
}

/// What a console log says: the kernel release and every check. A suite that did not reach
/// its last line becomes a failed `guest.suite` check, with what the log shows of why.
pub fn parse(log: &str, qemu_status: &str) -> (Option<String>, Vec<Check>) {
    let mut release = None;
    let mut checks = Vec::new();
    let mut ended = false;
    for line in log.lines() {
        let Some(at) = line.find(PREFIX) else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(line[at + PREFIX.len()..].trim()) else {
            continue;
        };
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
        match value["kind"].as_str() {
            Some("begin") => release = Some(text("kernel")),
            Some("end") => ended = true,
            Some("check") => {
                let status = match value["status"].as_str() {
                    Some("pass") => Status::Pass,
                    Some("unsupported") => Status::Unsupported,
                    _ => Status::Fail,
                };
                checks.push(Check {
                    name: text("check"),
                    status,
                    detail: text("detail"),
                });
            }
            _ => {}
        }
    }
    if !ended {
        let reached = if release.is_some() {
            "the suite started but did not finish"
        } else if log.contains(BOOTED) {
            "the guest booted but the suite printed nothing"
        } else {
            "the guest never reached /init"
        };
        checks.push(Check {
            name: "guest.suite".into(),
            status: Status::Fail,
            detail: format!("{reached} (QEMU: {qemu_status})"),
        });
    }
    (release, checks)
}

/// Check names in the order the first run that has them printed them.
fn check_names(runs: &[Run]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for run in runs {
        for check in &run.checks {
            if !names.contains(&check.name) {
                names.push(check.name.clone());
            }
        }
    }
    names
}

fn cell<'r>(run: &'r Run, name: &str) -> Option<&'r Check> {
    run.checks.iter().find(|c| c.name == name)
}

/// Each check with its mark in every run's column (`-`: that run has no such check).
fn grid<'n>(runs: &[Run], names: &'n [String]) -> Vec<(&'n str, Vec<&'static str>)> {
    names
        .iter()
        .map(|name| {
            let marks = runs
                .iter()
                .map(|run| cell(run, name).map_or("-", |c| c.status.cell()))
                .collect();
            (name.as_str(), marks)
        })
        .collect()
}

/// The table for a terminal, then the reasons of every cell that is not a pass.
pub fn render_text(runs: &[Run]) -> String {
    let names = check_names(runs);
    let width = names.iter().map(String::len).max().unwrap_or(5).max(5) + 2;
    let columns: Vec<String> = runs.iter().map(Run::column).collect();
    let mut out = String::new();
    for run in runs {
        let _ = writeln!(
            out,
            "{:<14} {} ({}), {:.1} s, log {}",
            run.column(),
            run.release.as_deref().unwrap_or("?"),
            run.package,
            run.elapsed.as_secs_f64(),
            run.log.display()
        );
    }
    let _ = write!(out, "\n{:<width$}", "check");
    for column in &columns {
        let _ = write!(out, "{column:<14}");
    }
    out.push('\n');
    for (name, marks) in grid(runs, &names) {
        let _ = write!(out, "{name:<width$}");
        for mark in marks {
            let _ = write!(out, "{mark:<14}");
        }
        out.push('\n');
    }
    let notes = notes(runs, &names);
    if !notes.is_empty() {
        out.push_str("\nnot a pass:\n");
        for (who, name, status, detail) in notes {
            let _ = writeln!(out, "  {name} [{who}] {}: {detail}", status.cell());
        }
    }
    out
}

/// `detail` on one line, at most `max` bytes: its start and its end (where a verifier log
/// says what went wrong); the console log has all of it.
fn one_line(detail: &str, max: usize) -> String {
    let flat = detail
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" / ");
    if flat.len() <= max {
        return flat;
    }
    let mut head = max / 3;
    while !flat.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = flat.len() - (max - head);
    while !flat.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} [...] {}", &flat[..head], &flat[tail..])
}

/// Longest reason shown per cell.
const NOTE_MAX: usize = 500;

/// `(columns, check, status, detail)` of every non-pass cell; identical details of one check
/// across columns are listed once.
fn notes(runs: &[Run], names: &[String]) -> Vec<(String, String, Status, String)> {
    let mut notes: Vec<(String, String, Status, String)> = Vec::new();
    for name in names {
        let mut here: Vec<(Vec<String>, Status, String)> = Vec::new();
        for run in runs {
            let Some(check) = cell(run, name).filter(|c| c.status != Status::Pass) else {
                continue;
            };
            let detail = one_line(&check.detail, NOTE_MAX);
            match here
                .iter_mut()
                .find(|(_, s, d)| *s == check.status && *d == detail)
            {
                Some((columns, _, _)) => columns.push(run.column()),
                None => here.push((
                    vec![run.column()],
                    check.status,
                    one_line(&check.detail, NOTE_MAX),
                )),
            }
        }
        for (columns, status, detail) in here {
            notes.push((columns.join(", "), name.clone(), status, detail));
        }
    }
    notes
}

/// The last `lines` lines of a guest's console log.
pub fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// docs/kernels.md: per guest what is enforced in the kernel and what falls back, then the
/// full matrix and the reasons.
pub fn render_markdown(runs: &[Run], date: &str, command: &str) -> String {
    let names = check_names(runs);
    let mut out = String::from("# Supported kernels\n\n");
    let _ = writeln!(
        out,
        "Generated by `{command}` on {date} from the last run of the kernel matrix: stock Debian \
         kernels booted under QEMU (TCG, no network) with a busybox initramfs running `vigil \
         selftest` (agent/src/selftest). Rerun it after changing a program or a hook.\n"
    );
    out.push_str(
        "| kernel | arch | Debian package | result | enforced in the kernel | falls back |\n",
    );
    out.push_str("|---|---|---|---|---|---|\n");
    for run in runs {
        let passed = |prefix: &str| -> Vec<String> {
            run.checks
                .iter()
                .filter(|c| c.name.starts_with(prefix) && c.status == Status::Pass)
                .map(|c| c.name[prefix.len()..].to_owned())
                .collect()
        };
        let mut enforced = passed("enforce.");
        enforced.extend(passed("lsm.").into_iter().map(|n| format!("BPF-LSM {n}")));
        let fallbacks: Vec<String> = run
            .checks
            .iter()
            .filter(|c| c.status == Status::Unsupported)
            .filter(|c| c.name.starts_with("lsm.") || c.name.starts_with("load."))
            .map(|c| c.name.clone())
            .collect();
        let failed = run
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        let result = if failed == 0 {
            "all checks pass".to_owned()
        } else {
            format!("**{failed} failed**")
        };
        let _ = writeln!(
            out,
            "| {} | {} | `{}` | {result} | {} | {} |",
            run.release.as_deref().unwrap_or(&run.series),
            run.arch,
            run.package,
            or_none(&enforced),
            or_none(&fallbacks),
        );
    }
    out.push_str("\n## Every check\n\n| check |");
    for run in runs {
        let _ = write!(out, " {} |", run.column());
    }
    out.push_str("\n|---|");
    for _ in runs {
        out.push_str("---|");
    }
    out.push('\n');
    for (name, marks) in grid(runs, &names) {
        let _ = writeln!(out, "| `{name}` | {} |", marks.join(" | "));
    }
    let notes = notes(runs, &names);
    if !notes.is_empty() {
        out.push_str("\nEvery cell that is not a pass, with its reason (n/s: not supported there, and what is used instead):\n\n");
        for (who, name, status, detail) in notes {
            let _ = writeln!(
                out,
                "- `{name}` ({who}, {}): {}",
                status.cell(),
                detail.replace('|', "\\|")
            );
        }
    }
    out
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[    0.1] Linux version 6.1.0\nvigil-guest: booted 6.1.0 x86_64\nvigil-selftest {\"kind\":\"begin\",\"kernel\":\"6.1.0-57-cloud-amd64\",\"arch\":\"x86_64\"}\n\
        vigil-selftest {\"kind\":\"check\",\"check\":\"probe.lsm\",\"status\":\"unsupported\",\"detail\":\"refused\"}\n\
        [    3.2] random kernel line vigil-selftest {\"kind\":\"check\",\"check\":\"capture.exec\",\"status\":\"pass\",\"detail\":\"argv\"}\n\
        vigil-selftest {\"kind\":\"check\",\"check\":\"enforce.kill_on_exec\",\"status\":\"fail\",\"detail\":\"not killed\"}\n\
        vigil-selftest {\"kind\":\"end\",\"pass\":1,\"fail\":1,\"unsupported\":1}\n";

    #[test]
    fn a_log_gives_the_release_and_every_check() {
        let (release, checks) = parse(LOG, "exit 0");
        assert_eq!(release.as_deref(), Some("6.1.0-57-cloud-amd64"));
        let got: Vec<(&str, Status)> = checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert_eq!(
            got,
            [
                ("probe.lsm", Status::Unsupported),
                ("capture.exec", Status::Pass),
                ("enforce.kill_on_exec", Status::Fail)
            ]
        );
    }

    #[test]
    fn a_suite_cut_short_is_a_failure() {
        let cut = &LOG[..LOG
            .find("vigil-selftest {\"kind\":\"end\"")
            .expect("end line")];
        let (_, checks) = parse(cut, "exit 124");
        let last = checks.last().expect("a check");
        assert_eq!(last.name, "guest.suite");
        assert_eq!(last.status, Status::Fail);
        assert!(last.detail.contains("did not finish") && last.detail.contains("124"));
        let (_, checks) = parse("[ 0.1] Kernel panic\n", "exit 0");
        assert!(checks[0].detail.contains("never reached /init"));
    }

    #[test]
    fn the_table_and_the_markdown_name_every_check_and_reason() {
        let (release, checks) = parse(LOG, "exit 0");
        let run = Run {
            series: "6.1".into(),
            arch: "x86_64",
            package: "linux-image-6.1.0-57-cloud-amd64".into(),
            release,
            checks,
            log: PathBuf::from("/tmp/log"),
            elapsed: Duration::from_secs(3),
        };
        assert!(run.failed());
        let text = render_text(std::slice::from_ref(&run));
        assert!(
            text.contains("enforce.kill_on_exec") && text.contains("FAIL"),
            "{text}"
        );
        assert!(
            text.contains("probe.lsm [6.1 x86_64] n/s: refused"),
            "{text}"
        );
        let md = render_markdown(&[run], "2026-11-30", "cargo xtask test-kernels");
        assert!(md.contains("| 6.1.0-57-cloud-amd64 | x86_64 |"), "{md}");
        assert!(md.contains("**1 failed**"), "{md}");
    }
}
