//! `vigil capture dump [--pid P | --container ID | --pod NS/NAME]`: asks the running agent
//! (`Response.DumpRecorder` on its API socket) to write its flight recorder to a capture file,
//! and prints where the file is and what it holds.

use std::{io::Write, path::PathBuf};

use crate::api::{client, proto, proto::response_client::ResponseClient};

#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// The agent's API socket (`api.socket`).
    #[arg(long, default_value = super::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Only this process's tree: it and its descendants, the events of the processes above
    /// it, and whoever on this node talked to its sockets.
    #[arg(long, conflicts_with_all = ["container", "pod"])]
    pub pid: Option<u32>,
    /// Only this container's events (an id or a prefix of it).
    #[arg(long, conflicts_with = "pod")]
    pub container: Option<String>,
    /// Only this pod's events: NAMESPACE/NAME.
    #[arg(long, value_parser = parse_pod)]
    pub pod: Option<(String, String)>,
    /// Why (an incident number, a name): written into the file's header.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// How far back, seconds (0: all that the ring holds, `[recorder] max_age_s`).
    #[arg(long, default_value_t = 0)]
    pub pre: u32,
    /// Keep collecting this many seconds after now (at most 300) before writing.
    #[arg(long, default_value_t = 0)]
    pub post: u32,
    /// Print the reply (the API's `DumpRecorderReply`) as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_pod(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!("`{text}` is not NAMESPACE/NAME")),
    }
}

impl DumpArgs {
    pub fn request(&self) -> proto::DumpRecorderRequest {
        use proto::dump_recorder_request::Scope;
        let scope = match (&self.pid, &self.container, &self.pod) {
            (Some(pid), _, _) => Some(Scope::Pid(*pid)),
            (None, Some(id), _) => Some(Scope::ContainerId(id.clone())),
            (None, None, Some((namespace, name))) => Some(Scope::Pod(proto::PodName {
                namespace: namespace.clone(),
                name: name.clone(),
            })),
            (None, None, None) => None,
        };
        proto::DumpRecorderRequest {
            scope,
            reason: self.reason.clone(),
            pre_seconds: self.pre,
            post_seconds: self.post,
        }
    }
}

/// Asks the agent on `args.socket` for the dump.
pub async fn run(args: &DumpArgs) -> anyhow::Result<proto::DumpRecorderReply> {
    let channel = client::reach(&args.socket).await.map_err(|unreachable| {
        anyhow::anyhow!("{unreachable}: start `vigil run`, or name its socket with --socket")
    })?;
    ResponseClient::new(channel)
        .dump_recorder(args.request())
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| anyhow::anyhow!("{} (gRPC {:?})", s.message(), s.code()))
}

/// The reply as a few readable lines, or as JSON.
pub fn print(
    reply: &proto::DumpRecorderReply,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, reply).map_err(std::io::Error::other)?;
        return writeln!(out);
    }
    writeln!(out, "{}", reply.path)?;
    writeln!(
        out,
        "  {} events of {} processes, {} bytes, scope {}",
        reply.events, reply.processes, reply.bytes, reply.scope
    )?;
    let mut kinds: Vec<_> = reply.kinds.iter().collect();
    kinds.sort();
    for (kind, n) in kinds {
        writeln!(out, "    {kind}: {n}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_namespace_slash_name() {
        assert_eq!(parse_pod("prod/web-0"), Ok(("prod".into(), "web-0".into())));
        for bad in ["web-0", "/web-0", "prod/", "a/b/c"] {
            assert!(parse_pod(bad).is_err(), "{bad}");
        }
    }
}
