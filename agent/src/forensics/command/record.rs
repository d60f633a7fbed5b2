//! `vigil capture record --out DIR [--filter ...]`: the running agent's event stream
//! (`Sensor.GetEvents`, with the stream's filters) written into rotating capture files
//! ([`CaptureDir`]) until a stop is asked for (SIGINT, SIGTERM) or the agent stops; the
//! current file is finished either way, so that it reads as intact.
//!
//! What the stream loses (a recorder too slow for the agent) arrives as `loss` events: they
//! are recorded with the rest, and counted in the report.

use std::{future::Future, io::Write, path::PathBuf, time::Duration};

use anyhow::Context as _;

use super::{parse_duration, parse_size};
use crate::{
    api::{client, proto},
    forensics::capture::{self, CaptureDir, RotateLimits},
};

#[derive(clap::Args, Debug)]
pub struct RecordArgs {
    /// The directory of the capture files (created with mode 0700; files are 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// The agent's API socket (`api.socket`).
    #[arg(long, default_value = super::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Record only what passes: `kind=K` (repeatable: any of them), `binary=REGEX`,
    /// `container=ID`, `pod=NAMESPACE/NAME`, `namespace=NS`, `label=KEY=VALUE`,
    /// `severity=S` (repeatable), `findings`. Different keys must all hold.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Start a new file once the current one holds this much (K, M, G; 0: no limit).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub max_file_size: u64,
    /// Start a new file once the current one is this old (s, m, h; 0: no limit).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub max_file_age: Duration,
    /// Keep at most this many of the node's files in the directory, deleting the oldest
    /// (0: keep them all).
    #[arg(long, default_value_t = 0)]
    pub max_files: usize,
}

impl RecordArgs {
    fn limits(&self) -> RotateLimits {
        RotateLimits {
            max_bytes: (self.max_file_size > 0).then_some(self.max_file_size),
            max_age: (!self.max_file_age.is_zero()).then_some(self.max_file_age),
            max_files: (self.max_files > 0).then_some(self.max_files),
        }
    }
}

/// The stream filter of the `--filter` flags (one allow filter: every key must hold).
pub fn filter(items: &[String]) -> Result<proto::EventFilter, String> {
    let mut filter = proto::EventFilter::default();
    let once = |slot: &mut String, key: &str, value: &str| {
        if slot.is_empty() {
            *slot = value.to_owned();
            Ok(())
        } else {
            Err(format!("--filter {key}= is given twice"))
        }
    };
    for item in items {
        let (key, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
        let empty = || format!("--filter {item}: `{key}=` needs a value");
        match (key, value) {
            ("findings", "") => filter.findings_only = true,
            (_, "") => return Err(empty()),
            ("kind", kind) => filter.kinds.push(kind.to_owned()),
            ("severity", severity) => filter.severities.push(severity.to_owned()),
            ("binary", regex) => once(&mut filter.binary_regex, key, regex)?,
            ("container", id) => once(&mut filter.container_id, key, id)?,
            ("namespace", ns) => once(&mut filter.pod_namespace, key, ns)?,
            ("pod", pod) => {
                let Some((ns, name)) = pod.split_once('/') else {
                    return Err(format!("--filter {item}: the pod is NAMESPACE/NAME"));
                };
                once(&mut filter.pod_namespace, "namespace", ns)?;
                once(&mut filter.pod_name, key, name)?;
            }
            ("label", label) => {
                let Some((k, v)) = label.split_once('=') else {
                    return Err(format!("--filter {item}: the label is KEY=VALUE"));
                };
                filter.pod_labels.insert(k.to_owned(), v.to_owned());
            }
            _ => {
                return Err(format!(
                    "--filter {item}: unknown key `{key}` (kind, binary, container, pod, namespace, label, severity, findings)"
                ));
            }
        }
    }
    Ok(filter)
}

/// What a recording wrote.
#[derive(Debug, Default)]
pub struct Recorded {
    pub events: u64,
    /// Events the stream lost because this recorder fell behind (from its `loss` events).
    pub lost: u64,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
    /// Why it ended: `stopped` (asked to), `the agent closed the stream`.
    pub ended: &'static str,
}

/// Records until `stop` resolves or the agent ends the stream; says on `err` when the stream
/// is open (everything the agent exports from then on is recorded).
pub async fn run(
    args: &RecordArgs,
    stop: impl Future<Output = ()>,
    err: &mut dyn Write,
) -> anyhow::Result<Recorded> {
    let request = proto::EventsRequest {
        allow: vec![filter(&args.filters).map_err(anyhow::Error::msg)?],
        deny: vec![],
    };
    let channel = client::reach(&args.socket).await.map_err(|unreachable| {
        anyhow::anyhow!("{unreachable}: start `vigil run`, or name its socket with --socket")
    })?;
    let mut sensor = proto::sensor_client::SensorClient::new(channel);
    let info = sensor
        .get_info(proto::InfoRequest {})
        .await
        .context("asking the agent who it is (GetInfo)")?
        .into_inner();
    let mut header = capture::header(&info.node);
    header.kernel_release = info.kernel_release;
    header.metadata.extend([
        ("command".to_owned(), "vigil capture record".to_owned()),
        ("recorded_agent_version".to_owned(), info.version),
        ("filter".to_owned(), args.filters.join(" ")),
    ]);
    let mut dir = CaptureDir::new(&args.out, header, args.limits())?;
    let mut stream = sensor
        .get_events(request)
        .await
        .map_err(|s| anyhow::anyhow!("{} (gRPC {:?})", s.message(), s.code()))
        .context("starting the event stream")?
        .into_inner();
    writeln!(
        err,
        "vigil capture record: recording {} into {} (SIGINT or SIGTERM stops)",
        info.node,
        args.out.display()
    )?;
    let mut recorded = Recorded::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(stop);
    let failed = loop {
        tokio::select! {
            () = &mut stop => {
                recorded.ended = "stopped";
                break None;
            }
            _ = tick.tick() => dir.tick()?,
            message = stream.message() => match message {
                Ok(Some(event)) => {
                    if let Some(proto::event::Detail::Loss(loss)) = &event.detail {
                        recorded.lost += loss.causes.get("api_client_lagged").copied().unwrap_or(0);
                    }
                    dir.write(&event)?;
                    recorded.events += 1;
                    if let Some(current) = dir.current()
                        && recorded.files.last().map(PathBuf::as_path) != Some(current)
                    {
                        recorded.files.push(current.to_owned());
                    }
                }
                Ok(None) => {
                    recorded.ended = "the agent closed the stream";
                    break None;
                }
                Err(status) => break Some(status),
            },
        }
    };
    // Finished even when the stream failed: what was recorded stays readable as intact.
    dir.finish()?;
    match failed {
        Some(status) => Err(anyhow::anyhow!(
            "the event stream failed after {} events: {} (gRPC {:?}); the files written are finished",
            recorded.events,
            status.message(),
            status.code()
        )),
        None => Ok(recorded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn filters_build_one_stream_filter() {
        let f = filter(&items(&[
            "kind=exec",
            "kind=connect",
            "binary=/bin/.*sh$",
            "pod=prod/web-0",
            "label=app=web",
            "severity=high",
            "findings",
        ]))
        .expect("valid");
        assert_eq!(f.kinds, ["exec", "connect"]);
        assert_eq!(f.binary_regex, "/bin/.*sh$");
        assert_eq!(
            (f.pod_namespace.as_str(), f.pod_name.as_str()),
            ("prod", "web-0")
        );
        assert_eq!(f.pod_labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(f.severities, ["high"]);
        assert!(f.findings_only);
        assert_eq!(filter(&[]).expect("none"), proto::EventFilter::default());
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        let error = |list: &[&str]| filter(&items(list)).expect_err("invalid");
        assert!(error(&["colour=red"]).contains("unknown key `colour`"));
        assert!(error(&["kind="]).contains("needs a value"));
        assert!(error(&["binary=a", "binary=b"]).contains("given twice"));
        assert!(error(&["pod=web"]).contains("NAMESPACE/NAME"));
        assert!(error(&["namespace=a", "pod=b/c"]).contains("given twice"));
        assert!(error(&["label=app"]).contains("KEY=VALUE"));
    }
}
