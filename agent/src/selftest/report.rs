//! The suite's output: one line per check, meant for a machine reading a serial console.
//!
//! Every line starts with [`PREFIX`] and carries one JSON object, so a reader can pick the
//! lines out of a console that the kernel and other programs write to as well:
//!
//! ```text
//! vigil-selftest {"kind":"begin","kernel":"6.1.0-50-cloud-amd64","arch":"x86_64"}
//! vigil-selftest {"kind":"check","check":"capture.exec","status":"pass","detail":"..."}
//! vigil-selftest {"kind":"end","pass":20,"fail":0,"unsupported":4}
//! ```
//!
//! `cargo xtask test-kernels` parses these (xtask/src/kernels/report.rs); change both together.

use std::io::Write as _;

use serde::Serialize;

/// What starts every line of the suite.
pub const PREFIX: &str = "vigil-selftest ";

/// How one check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    /// The kernel (or this build of Vigil) cannot do it; the detail says why and what is used
    /// instead.
    Unsupported(String),
}

impl Outcome {
    fn status(&self) -> &'static str {
        match self {
            Self::Pass(_) => "pass",
            Self::Fail(_) => "fail",
            Self::Unsupported(_) => "unsupported",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::Pass(d) | Self::Fail(d) | Self::Unsupported(d) => d,
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line<'a> {
    Begin {
        kernel: &'a str,
        arch: &'a str,
    },
    Check {
        check: &'a str,
        status: &'a str,
        detail: &'a str,
        /// Since the suite started: where a slow guest spends its time.
        ms: u64,
    },
    End {
        pass: usize,
        fail: usize,
        unsupported: usize,
    },
}

/// Prints the lines and counts the outcomes.
pub struct Reporter {
    started: std::time::Instant,
    pass: usize,
    fail: usize,
    unsupported: usize,
}

impl Reporter {
    pub fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
            pass: 0,
            fail: 0,
            unsupported: 0,
        }
    }

    pub fn begin(&self) {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        emit(&Line::Begin {
            kernel: kernel.trim(),
            arch: std::env::consts::ARCH,
        });
    }

    pub fn record(&mut self, check: &str, outcome: Outcome) {
        match outcome {
            Outcome::Pass(_) => self.pass += 1,
            Outcome::Fail(_) => self.fail += 1,
            Outcome::Unsupported(_) => self.unsupported += 1,
        }
        emit(&Line::Check {
            check,
            status: outcome.status(),
            detail: &crate::telemetry::shorten(outcome.detail(), DETAIL_MAX),
            ms: self.started.elapsed().as_millis() as u64,
        });
    }

    pub fn record_all(&mut self, rows: Vec<(String, Outcome)>) {
        for (check, outcome) in rows {
            self.record(&check, outcome);
        }
    }

    /// Prints the closing line; true when nothing failed.
    pub fn end(&self) -> bool {
        emit(&Line::End {
            pass: self.pass,
            fail: self.fail,
            unsupported: self.unsupported,
        });
        self.fail == 0
    }
}

/// Longest detail printed.
const DETAIL_MAX: usize = 2400;

fn emit(line: &Line<'_>) {
    let json = serde_json::to_string(line).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    // One write per line, so that the line reaches the console in one piece.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{PREFIX}{json}\n").as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::shorten;

    #[test]
    fn a_check_line_is_one_json_object_after_the_prefix() {
        let line = Line::Check {
            check: "capture.exec",
            status: Outcome::Fail("a \"quoted\" reason".into()).status(),
            detail: "a \"quoted\" reason",
            ms: 1,
        };
        let json = serde_json::to_string(&line).expect("serializes");
        let value: serde_json::Value = serde_json::from_str(&json).expect("parses");
        assert_eq!(value["kind"], "check");
        assert_eq!(value["status"], "fail");
        assert_eq!(value["detail"], "a \"quoted\" reason");
    }

    #[test]
    fn a_long_detail_keeps_its_start_and_its_end() {
        let detail = format!("start {} end", "x".repeat(10_000));
        let short = shorten(&detail, 100);
        assert!(short.len() < 160, "{short}");
        assert!(
            short.starts_with("start") && short.ends_with("x end"),
            "{short}"
        );
        assert_eq!(shorten("short", 100), "short");
    }
}
