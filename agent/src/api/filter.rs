//! `EventsRequest` filters, compiled once per stream and evaluated on domain events (before
//! conversion, so a filtered-out event costs no allocation).

use regex::Regex;

use super::proto;
use crate::event::{Detail, Event};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("binary_regex `{pattern}` is not a valid regular expression")]
    Regex {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("severities: `{0}` is not a severity (info, low, medium, high, critical)")]
    Severity(String),
}

#[derive(Debug)]
struct Compiled {
    kinds: Vec<String>,
    binary: Option<Regex>,
    pod_namespace: String,
    pod_name: String,
    container_id: String,
    findings_only: bool,
    pod_labels: std::collections::HashMap<String, String>,
    severities: Vec<crate::policy::Severity>,
}

impl Compiled {
    fn new(f: proto::EventFilter) -> Result<Self, FilterError> {
        let binary = if f.binary_regex.is_empty() {
            None
        } else {
            Some(
                Regex::new(&f.binary_regex).map_err(|source| FilterError::Regex {
                    pattern: f.binary_regex.clone(),
                    source,
                })?,
            )
        };
        let severities = f
            .severities
            .iter()
            .map(|s| {
                crate::policy::Severity::parse(s).ok_or_else(|| FilterError::Severity(s.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            pod_labels: f.pod_labels,
            severities,
            kinds: f.kinds,
            binary,
            pod_namespace: f.pod_namespace,
            pod_name: f.pod_name,
            container_id: f.container_id,
            findings_only: f.findings_only,
        })
    }

    fn matches(&self, event: &Event) -> bool {
        let kind = event.detail.kind();
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k == kind) {
            return false;
        }
        if self.findings_only && !matches!(event.detail, Detail::Finding(_)) {
            return false;
        }
        if let Some(re) = &self.binary {
            let Some(process) = &event.process else {
                return false;
            };
            if !re.is_match(&crate::export::escape::escape(&process.binary.path)) {
                return false;
            }
        }
        if !self.severities.is_empty() {
            let Detail::Finding(finding) = &event.detail else {
                return false;
            };
            if !self.severities.contains(&finding.rule.severity) {
                return false;
            }
        }
        let pod = event.pod.as_deref();
        if !self.pod_labels.is_empty()
            && !pod.is_some_and(|p| {
                self.pod_labels
                    .iter()
                    .all(|(k, v)| p.labels.get(k).is_some_and(|have| have == v))
            })
        {
            return false;
        }
        if !self.pod_namespace.is_empty()
            && pod.and_then(|p| p.namespace.as_deref()) != Some(self.pod_namespace.as_str())
        {
            return false;
        }
        if !self.pod_name.is_empty()
            && pod.and_then(|p| p.name.as_deref()) != Some(self.pod_name.as_str())
        {
            return false;
        }
        if !self.container_id.is_empty()
            && !event
                .container
                .as_deref()
                .is_some_and(|c| c.id.as_str().starts_with(&self.container_id))
        {
            return false;
        }
        true
    }
}

/// Allow filters (any may match; none: all pass) and deny filters (none may match).
#[derive(Debug)]
pub struct EventFilter {
    allow: Vec<Compiled>,
    deny: Vec<Compiled>,
}

impl EventFilter {
    pub fn new(request: proto::EventsRequest) -> Result<Self, FilterError> {
        Ok(Self {
            allow: request
                .allow
                .into_iter()
                .map(Compiled::new)
                .collect::<Result<_, _>>()?,
            deny: request
                .deny
                .into_iter()
                .map(Compiled::new)
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn matches(&self, event: &Event) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|f| f.matches(event)))
            && !self.deny.iter().any(|f| f.matches(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Loss;

    fn loss() -> Event {
        Event::new(1, 0, None, None, Detail::Loss(Loss::default()))
    }

    #[test]
    fn allow_and_deny_by_kind_and_binary() {
        let kinds = |k: &str| proto::EventFilter {
            kinds: vec![k.into()],
            ..Default::default()
        };
        let all = EventFilter::new(proto::EventsRequest::default()).expect("filter");
        assert!(all.matches(&loss()));
        let only_exec = EventFilter::new(proto::EventsRequest {
            allow: vec![kinds("exec")],
            deny: vec![],
        })
        .expect("filter");
        assert!(!only_exec.matches(&loss()));
        let deny_loss = EventFilter::new(proto::EventsRequest {
            allow: vec![],
            deny: vec![kinds("loss")],
        })
        .expect("filter");
        assert!(!deny_loss.matches(&loss()));
        // A binary regex needs a process: a loss event has none.
        let binary = EventFilter::new(proto::EventsRequest {
            allow: vec![proto::EventFilter {
                binary_regex: "true$".into(),
                ..Default::default()
            }],
            deny: vec![],
        })
        .expect("filter");
        assert!(!binary.matches(&loss()));
        let bad = EventFilter::new(proto::EventsRequest {
            allow: vec![proto::EventFilter {
                binary_regex: "(".into(),
                ..Default::default()
            }],
            deny: vec![],
        });
        assert!(matches!(bad, Err(FilterError::Regex { .. })));
    }

    #[test]
    fn pod_labels_must_all_match_and_severities_keep_findings_only() {
        let mut event = loss();
        event.pod = Some(std::sync::Arc::new(crate::enrich::Pod {
            labels: [
                ("app".to_owned(), "web".to_owned()),
                ("tier".to_owned(), "front".to_owned()),
            ]
            .into(),
            ..Default::default()
        }));
        let labels = |pairs: &[(&str, &str)]| {
            EventFilter::new(proto::EventsRequest {
                allow: vec![proto::EventFilter {
                    pod_labels: pairs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    ..Default::default()
                }],
                deny: vec![],
            })
            .expect("filter")
        };
        assert!(labels(&[("app", "web")]).matches(&event));
        assert!(labels(&[("app", "web"), ("tier", "front")]).matches(&event));
        assert!(!labels(&[("app", "db")]).matches(&event));
        assert!(!labels(&[("app", "web"), ("zone", "a")]).matches(&event));
        assert!(!labels(&[("app", "web")]).matches(&loss()), "no pod");
        let severities = |names: &[&str]| {
            EventFilter::new(proto::EventsRequest {
                allow: vec![proto::EventFilter {
                    severities: names.iter().map(|s| (*s).to_owned()).collect(),
                    ..Default::default()
                }],
                deny: vec![],
            })
        };
        assert!(
            !severities(&["high"]).expect("filter").matches(&loss()),
            "not a finding"
        );
        assert!(matches!(severities(&["severe"]), Err(FilterError::Severity(s)) if s == "severe"));
    }
}
