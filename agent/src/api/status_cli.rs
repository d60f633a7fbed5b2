//! `vigil status`: a running agent's state over its API, from `GetHealth`, `GetInfo` and the
//! `Response` service's `ListActions` (the enforcement in force), as text or as one JSON
//! object.

use std::{fmt::Write as _, path::Path};

use anyhow::Context as _;
use serde::Serialize;

use super::proto;

/// Everything `vigil status` shows.
#[derive(Debug, Serialize)]
pub struct Report {
    pub health: proto::Health,
    pub info: proto::Info,
    /// `None` when the agent does not serve the `Response` service to this client.
    pub enforcement: Option<proto::ListActionsReply>,
}

/// Asks the agent serving `socket`.
pub async fn fetch(socket: &Path) -> anyhow::Result<Report> {
    let mut sensor = super::client::connect(socket)
        .await
        .with_context(|| format!("no agent answers on {}", socket.display()))?;
    let health = sensor
        .get_health(proto::HealthRequest {})
        .await
        .context("GetHealth")?
        .into_inner();
    let info = sensor
        .get_info(proto::InfoRequest {})
        .await
        .context("GetInfo")?
        .into_inner();
    let enforcement = crate::enforce::command::list(socket).await.ok();
    Ok(Report {
        health,
        info,
        enforcement,
    })
}

/// Sorted `key=value` pairs, or `none`.
fn pairs(map: &std::collections::HashMap<String, u64>) -> String {
    let mut items: Vec<_> = map.iter().collect();
    items.sort();
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Report {
    /// The readable report.
    pub fn render_text(&self) -> String {
        let (h, i) = (&self.health, &self.info);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "vigil {} on {} (kernel {}), up {}",
            i.version,
            i.node,
            i.kernel_release,
            uptime(i.uptime_seconds.max(h.uptime_seconds))
        );
        let _ = writeln!(
            out,
            "events: {} exported, {:.1}/s over the last {} s; {} lost",
            h.events, i.events_per_second, i.rate_window_seconds, h.losses
        );
        let _ = writeln!(out, "drops by cause: {}", pairs(&i.drops));
        let _ = writeln!(out, "caches: {}", pairs(&i.caches));
        let _ = writeln!(out, "hooks: {}", i.hooks.join(", "));
        for fallback in &i.fallbacks {
            let _ = writeln!(out, "degraded: {fallback}");
        }
        let _ = writeln!(out, "exporters:");
        for e in &i.exporters {
            let _ = writeln!(
                out,
                "  {:<18} {:<12} {}  {}",
                e.name,
                e.state,
                e.target,
                pairs(&e.counters)
            );
        }
        let enforcing = i.rules.iter().filter(|r| r.mode == "enforce").count();
        let _ = writeln!(
            out,
            "policies: {} rules in force ({enforcing} enforce, {} monitor) from {} files",
            i.rules.len(),
            i.rules.len() - enforcing,
            i.policy_sources.len()
        );
        for r in &i.rules {
            let _ = writeln!(
                out,
                "  {:<44} {:<8} {:<7} {:<13} {}",
                r.name, r.severity, r.mode, r.action, r.source
            );
        }
        match &self.enforcement {
            Some(list) => {
                let _ = writeln!(out, "enforcement: {} rules", list.rules.len());
                for line in crate::enforce::command::listing(list).lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
            None => {
                let _ = writeln!(out, "enforcement: not served to this client");
            }
        }
        out
    }
}

/// `2d 03h 04m 05s`, leading zero units left out.
fn uptime(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h:02}h {m:02}m {s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_a_duration() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(65), "1m 05s");
        assert_eq!(uptime(3 * 3600 + 4 * 60 + 5), "3h 04m 05s");
        assert_eq!(uptime(2 * 86_400 + 5), "2d 00h 00m 05s");
    }

    #[test]
    fn text_report_names_each_section() {
        let report = Report {
            health: proto::Health {
                serving: true,
                uptime_seconds: 61,
                events: 1000,
                losses: 3,
                api_dropped: 0,
            },
            info: proto::Info {
                version: "0.1.0".into(),
                node: "n1".into(),
                events_per_second: 12.5,
                rate_window_seconds: 60,
                drops: [("ringbuf_full_exec".to_owned(), 3)].into(),
                rules: vec![proto::PolicyRule {
                    name: "exec-from-temp-dir".into(),
                    severity: "high".into(),
                    mode: "monitor".into(),
                    action: "none".into(),
                    source: "execution.yaml".into(),
                }],
                ..proto::Info::default()
            },
            enforcement: None,
        };
        let text = report.render_text();
        for expected in [
            "vigil 0.1.0 on n1",
            "up 1m 01s",
            "1000 exported, 12.5/s over the last 60 s; 3 lost",
            "drops by cause: ringbuf_full_exec=3",
            "policies: 1 rules in force (0 enforce, 1 monitor)",
            "exec-from-temp-dir",
            "enforcement: not served",
        ] {
            assert!(text.contains(expected), "`{expected}` in:\n{text}");
        }
    }
}
