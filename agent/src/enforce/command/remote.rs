//! The commands through the running agent's API (`Response` service).

use std::path::Path;

use tonic::transport::Channel;

use super::ContainCommand;
use crate::api::{client, proto, proto::response_client::ResponseClient};

/// Why a listing through the agent did not happen.
#[derive(Debug)]
pub enum ListError {
    /// No agent answers (the cause, in a few words): the pinned maps can be read instead.
    Unreachable(String),
    /// The agent answered with an error.
    Failed(anyhow::Error),
}

async fn connect(socket: &Path) -> anyhow::Result<ResponseClient<Channel>> {
    let channel = client::reach(socket).await.map_err(|unreachable| {
        anyhow::anyhow!(
            "{unreachable}: start `vigil run`, name its socket with --socket or --config, or act on the pinned maps without the agent with --direct"
        )
    })?;
    Ok(ResponseClient::new(channel))
}

/// An error status as a sentence: the agent's message names the field at fault.
fn refused(status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{} (gRPC {:?})", status.message(), status.code())
}

pub async fn contain(
    socket: &Path,
    command: &ContainCommand,
    reason: &str,
) -> anyhow::Result<proto::ContainReply> {
    let mut client = connect(socket).await?;
    let answer = match (command, command.request(reason)) {
        (ContainCommand::Release { id }, _) => {
            client
                .release(proto::ReleaseRequest {
                    id: *id,
                    reason: reason.to_owned(),
                })
                .await
        }
        (_, Some(request)) => client.contain(request).await,
        (_, None) => anyhow::bail!("no request for {command:?}"),
    };
    answer
        .map(tonic::Response::into_inner)
        .map_err(|s| refused(&s))
}

pub async fn list(socket: &Path) -> Result<proto::ListActionsReply, ListError> {
    let mut client = ResponseClient::new(
        client::reach(socket)
            .await
            .map_err(ListError::Unreachable)?,
    );
    client
        .list_actions(proto::ListActionsRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| ListError::Failed(refused(&s)))
}
