//! A client of the API over its unix socket (`vigil events`, `vigil contain`, `vigil capture`,
//! tests).

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use super::proto::sensor_client::SensorClient;

/// A connection to the API served on `socket`, for any of its services.
pub async fn channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket: PathBuf = socket.to_owned();
    // The URI is required by the endpoint but unused: the connector dials the socket.
    Endpoint::from_static("http://vigil.sock")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(socket)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
}

/// [`channel`], or why no agent answers on `socket` as a sentence with the innermost cause:
/// `no agent answers on /run/vigil/vigil.sock (No such file or directory (os error 2))`.
pub async fn reach(socket: &Path) -> Result<Channel, String> {
    channel(socket).await.map_err(|error| {
        let mut cause: &dyn std::error::Error = &error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        format!("no agent answers on {} ({cause})", socket.display())
    })
}

/// Connects to the `Sensor` service served on `socket`.
pub async fn connect(socket: &Path) -> Result<SensorClient<Channel>, tonic::transport::Error> {
    Ok(SensorClient::new(channel(socket).await?))
}

/// One readable line for `event`: time, kind, pid, binary and the detail's gist.
pub fn line(event: &super::proto::Event) -> String {
    use super::proto::event::Detail;
    let (pid, binary) = event
        .process
        .as_ref()
        .map(|p| (p.pid, p.binary.as_str()))
        .unwrap_or((0, ""));
    let gist = match &event.detail {
        Some(Detail::Exec(_)) => event
            .process
            .as_ref()
            .map(|p| p.args.join(" "))
            .unwrap_or_default(),
        Some(Detail::Exit(e)) => match (e.exit_code, e.signal) {
            (Some(code), _) => format!("code={code}"),
            (_, Some(signal)) => format!("signal={signal}"),
            _ => String::new(),
        },
        Some(Detail::Fork(f)) => format!("caller={}", f.caller_pid),
        Some(Detail::Network(n)) => format!(
            "{} {} -> {} ret={}",
            n.op,
            n.local,
            if n.remote.is_empty() {
                &n.address
            } else {
                &n.remote
            },
            n.ret
        ),
        Some(Detail::Dns(d)) => format!("{} {} -> {}", d.name, d.qtype, d.dst),
        Some(Detail::Syscall(s)) => format!("{} ret={}", s.name, s.ret),
        Some(Detail::File(f)) => format!("{} {} ret={}", f.op, f.path, f.ret),
        Some(Detail::CredChange(c)) => format!("{} ret={}", c.syscall, c.ret),
        Some(Detail::Finding(f)) => format!(
            "rule={} severity={} action={}:{}",
            f.rule, f.severity, f.action, f.action_status
        ),
        Some(Detail::Enforcement(e)) => {
            let mut gist = format!(
                "{} by {} target={} outcome={}",
                e.action, e.by, e.target, e.outcome
            );
            if let Some(id) = e.rule_id {
                gist.push_str(&format!(" rule_id={id}"));
            }
            if !e.requested_by.is_empty() {
                gist.push_str(&format!(" requested_by=\"{}\"", e.requested_by));
            }
            if !e.error.is_empty() {
                gist.push_str(&format!(" error=\"{}\"", e.error));
            }
            gist
        }
        Some(Detail::Loss(l)) => format!("lost={}", l.total),
        None => String::new(),
    };
    format!(
        "{} {:<11} pid={pid} {binary} {gist}",
        event.time, event.kind
    )
}
