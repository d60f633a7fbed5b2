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
}

#[derive(Debug)]
struct Compiled {
    kinds: Vec<String>,
    binary: Option<Regex>,
    pod_namespace: String,
    pod_name: String,
    container_id: String,
    findings_only: bool,
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
        Ok(Self {
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
        let pod = event.pod.as_deref();
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
}
