//! The link to an OpenTelemetry collector: spooled records as OTLP log records over
//! OTLP/gRPC (`opentelemetry-proto`), a batch per export call; a batch is acknowledged in the
//! spool when the call succeeds.
//!
//! Each record is one `ResourceLogs` whose resource is the workload it is about, with OTel
//! semantic-convention attributes (`host.name`, `k8s.*`, `container.*`, `process.*`); the
//! log record carries the rule (`vigil.rule.*`), the action, and the whole event as JSON in
//! `vigil.event`.

use std::{sync::atomic::Ordering::Relaxed, time::Duration};

use opentelemetry_proto::tonic::{
    collector::logs::v1::{ExportLogsServiceRequest, logs_service_client::LogsServiceClient},
    common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber},
    resource::v1::Resource,
};
use prost::Message as _;
use tonic::transport::Endpoint;

use super::writer::Shared;
use crate::api::proto::{self, event::Detail, record::Body};

const NAME: &str = "otlp";

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connecting")]
    Connect(#[source] tonic::transport::Error),
    #[error("export call")]
    Export(#[source] tonic::Status),
    #[error("export call timed out")]
    Timeout,
    #[error("reading the spool")]
    Spool(#[from] super::spool::SpoolError),
    #[error("spooled record {seq} is not a record: {source}")]
    Decode {
        seq: u64,
        #[source]
        source: prost::DecodeError,
    },
}

/// Delivers until the forwarder stops.
pub async fn run(endpoint: Endpoint, batch: usize, shared: Shared) {
    super::retry::run(NAME, shared, |shared| session(&endpoint, batch, shared)).await;
}

async fn session(
    endpoint: &Endpoint,
    batch: usize,
    mut shared: Shared,
) -> Result<(), SessionError> {
    let stats = shared.stats.destination(NAME);
    let channel = super::channel::connect(endpoint)
        .await
        .map_err(SessionError::Connect)?;
    let mut client = LogsServiceClient::new(channel);
    stats.connected.store(1, Relaxed);
    tracing::info!(destination = NAME, "Connected to the OTLP endpoint.");
    let mut reader = shared.spool.borrow().reader(NAME);
    loop {
        let records = shared.spool.borrow().read(&mut reader, batch)?;
        let Some(&(last, _)) = records.last() else {
            if *shared.stop.borrow() {
                return Ok(());
            }
            tokio::select! {
                _ = shared.appended.changed() => {}
                _ = shared.stop.changed() => {}
            }
            continue;
        };
        let mut resource_logs = Vec::with_capacity(records.len());
        for (seq, bytes) in &records {
            let record = proto::Record::decode(bytes.as_slice())
                .map_err(|source| SessionError::Decode { seq: *seq, source })?;
            resource_logs.push(resource_log(&record));
        }
        let request = ExportLogsServiceRequest { resource_logs };
        let call = client.export(request);
        let response = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .map_err(|_| SessionError::Timeout)?
            .map_err(SessionError::Export)?
            .into_inner();
        if let Some(partial) = response.partial_success
            && partial.rejected_log_records > 0
        {
            // The receiver read them and refused them: resending would not help.
            stats
                .rejected_total
                .fetch_add(partial.rejected_log_records as u64, Relaxed);
            tracing::warn!(rejected = partial.rejected_log_records, message = %partial.error_message, "The OTLP receiver rejected log records.");
        }
        stats.sent_total.fetch_add(records.len() as u64, Relaxed);
        shared.spool.borrow_mut().ack(NAME, last)?;
        stats
            .acked_seq
            .store(shared.spool.borrow().acked(NAME), Relaxed);
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> Option<KeyValue> {
    (!value.is_empty()).then(|| kv(key, Value::StringValue(value.to_owned())))
}

fn int(key: &str, value: u32) -> KeyValue {
    kv(key, Value::IntValue(i64::from(value)))
}

fn strings(key: &str, values: &[String]) -> KeyValue {
    kv(
        key,
        Value::ArrayValue(ArrayValue {
            values: values
                .iter()
                .map(|v| AnyValue {
                    value: Some(Value::StringValue(v.clone())),
                })
                .collect(),
        }),
    )
}

/// One record as OTLP: its workload as the resource, the record as one log record.
pub fn resource_log(record: &proto::Record) -> ResourceLogs {
    let mut resource = vec![kv("host.name", Value::StringValue(record.node.clone()))];
    let mut attributes = vec![
        kv("vigil.stream", Value::StringValue(record.stream.clone())),
        kv("vigil.seq", Value::IntValue(record.seq as i64)),
    ];
    let mut log = LogRecord {
        observed_time_unix_nano: now_unix_ns(),
        ..Default::default()
    };
    match &record.body {
        Some(Body::Event(event)) => {
            resource.extend(workload(event));
            log.time_unix_nano = u64::try_from(event.time_unix_ns).unwrap_or(0);
            event_record(event, &mut log, &mut attributes);
        }
        Some(Body::Loss(loss)) => {
            log.event_name = "vigil.loss".into();
            log.severity_number = SeverityNumber::Warn as i32;
            log.severity_text = "WARN".into();
            log.time_unix_nano = log.observed_time_unix_nano;
            log.body = Some(AnyValue {
                value: Some(Value::StringValue(format!(
                    "{} records were dropped from the forwarding spool ({})",
                    loss.count, loss.cause
                ))),
            });
            attributes.extend([
                kv(
                    "vigil.loss.first_seq",
                    Value::IntValue(loss.first_seq as i64),
                ),
                kv("vigil.loss.last_seq", Value::IntValue(loss.last_seq as i64)),
                kv("vigil.loss.count", Value::IntValue(loss.count as i64)),
                kv("vigil.loss.cause", Value::StringValue(loss.cause.clone())),
            ]);
        }
        None => {}
    }
    log.attributes = attributes;
    ResourceLogs {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: "vigil".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            log_records: vec![log],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The OTel resource attributes of the process, container and pod of `event`.
fn workload(event: &proto::Event) -> Vec<KeyValue> {
    let mut out = Vec::new();
    if let Some(p) = &event.process {
        out.push(int("process.pid", p.tgid));
        out.push(int("process.parent_pid", p.ppid));
        out.push(int("process.user.id", p.uid));
        out.extend(text("process.executable.path", &p.binary));
        if let Some(name) = p.binary.rsplit('/').next() {
            out.extend(text("process.executable.name", name));
        }
        out.extend(text("process.working_directory", &p.cwd));
        if !p.args.is_empty() {
            out.push(strings("process.command_args", &p.args));
        }
    }
    if let Some(c) = &event.container {
        out.extend(text("container.id", &c.id));
        out.extend(text("container.name", &c.name));
        out.extend(text("container.runtime.name", &c.runtime));
        out.extend(text("container.image.name", &c.image));
        if !c.image_digest.is_empty() {
            out.push(strings(
                "container.image.repo_digests",
                std::slice::from_ref(&c.image_digest),
            ));
        }
    }
    if let Some(p) = &event.pod {
        out.extend(text("k8s.pod.name", &p.name));
        out.extend(text("k8s.namespace.name", &p.namespace));
        out.extend(text("k8s.pod.uid", &p.uid));
        for (key, value) in &p.labels {
            out.push(kv(
                &format!("k8s.pod.label.{key}"),
                Value::StringValue(value.clone()),
            ));
        }
    }
    out
}

fn event_record(event: &proto::Event, log: &mut LogRecord, attributes: &mut Vec<KeyValue>) {
    log.event_name = format!("vigil.{}", event.kind);
    let (severity, body) = match &event.detail {
        Some(Detail::Finding(f)) => {
            attributes.extend(text("vigil.rule.name", &f.rule));
            attributes.extend(text("vigil.rule.severity", &f.severity));
            if !f.tags.is_empty() {
                attributes.push(strings("vigil.rule.tags", &f.tags));
            }
            attributes.extend(text("vigil.rule.mode", &f.mode));
            attributes.extend(text("vigil.event.kind", &f.event_kind));
            attributes.extend(text("vigil.action", &f.action));
            attributes.extend(text("vigil.action.status", &f.action_status));
            let body = if f.description.is_empty() {
                f.rule.clone()
            } else {
                format!("{}: {}", f.rule, f.description)
            };
            (severity(&f.severity), body)
        }
        Some(Detail::Loss(_)) => (SeverityNumber::Warn, "events were lost".to_owned()),
        _ => (SeverityNumber::Info, event.kind.clone()),
    };
    log.severity_number = severity as i32;
    log.severity_text = severity
        .as_str_name()
        .trim_start_matches("SEVERITY_NUMBER_")
        .into();
    log.body = Some(AnyValue {
        value: Some(Value::StringValue(body)),
    });
    if let Ok(json) = serde_json::to_string(event) {
        attributes.push(kv("vigil.event", Value::StringValue(json)));
    }
}

/// A rule's severity as an OTel severity number.
fn severity(severity: &str) -> SeverityNumber {
    match severity {
        "critical" => SeverityNumber::Fatal,
        "high" => SeverityNumber::Error,
        "medium" => SeverityNumber::Warn,
        "low" => SeverityNumber::Info2,
        _ => SeverityNumber::Info,
    }
}

fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn a_finding_becomes_a_log_record_about_its_workload() {
        let record = proto::Record {
            node: "node-1".into(),
            stream: "abc".into(),
            seq: 7,
            body: Some(Body::Event(proto::Event {
                kind: "finding".into(),
                time_unix_ns: 1_700_000_000_000_000_000,
                process: Some(proto::Process {
                    tgid: 42,
                    ppid: 1,
                    binary: "/usr/bin/curl".into(),
                    args: vec!["curl".into(), "-s".into()],
                    ..Default::default()
                }),
                container: Some(proto::Container {
                    id: "c0ffee".into(),
                    image: "docker.io/library/alpine:3".into(),
                    ..Default::default()
                }),
                pod: Some(proto::Pod {
                    name: "web-0".into(),
                    namespace: "shop".into(),
                    labels: [("app".to_owned(), "web".to_owned())].into(),
                    ..Default::default()
                }),
                detail: Some(Detail::Finding(Box::new(proto::Finding {
                    rule: "shell_in_container".into(),
                    description: "A shell ran in a container".into(),
                    severity: "high".into(),
                    tags: vec!["T1059".into()],
                    ..Default::default()
                }))),
                ..Default::default()
            })),
        };
        let logs = resource_log(&record);
        let resource = &logs.resource.as_ref().expect("resource").attributes;
        assert_eq!(
            attr(resource, "host.name"),
            Some(&Value::StringValue("node-1".into()))
        );
        assert_eq!(attr(resource, "process.pid"), Some(&Value::IntValue(42)));
        assert_eq!(
            attr(resource, "process.executable.name"),
            Some(&Value::StringValue("curl".into()))
        );
        assert_eq!(
            attr(resource, "k8s.namespace.name"),
            Some(&Value::StringValue("shop".into()))
        );
        assert_eq!(
            attr(resource, "k8s.pod.label.app"),
            Some(&Value::StringValue("web".into()))
        );
        assert_eq!(
            attr(resource, "container.id"),
            Some(&Value::StringValue("c0ffee".into()))
        );
        let log = &logs.scope_logs[0].log_records[0];
        assert_eq!(log.event_name, "vigil.finding");
        assert_eq!(log.severity_number, SeverityNumber::Error as i32);
        assert_eq!(log.severity_text, "ERROR");
        assert_eq!(log.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(
            attr(&log.attributes, "vigil.rule.name"),
            Some(&Value::StringValue("shell_in_container".into()))
        );
        assert_eq!(
            attr(&log.attributes, "vigil.seq"),
            Some(&Value::IntValue(7))
        );
        let Some(Value::StringValue(json)) = attr(&log.attributes, "vigil.event") else {
            panic!("the event as JSON");
        };
        assert!(json.contains("\"shell_in_container\""), "{json}");
    }
}
