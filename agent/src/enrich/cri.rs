//! A client of the container runtime's CRI socket (`runtime.v1` over a unix socket): the
//! container name, image and pod of a container id, as the kubelet's runtime knows them.
//!
//! Every call has a timeout; a socket that is absent, slow or speaks something else gives an
//! error, never a hang or a panic.

use std::{
    collections::HashSet,
    future::Future,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::{
    ContainerFilter, ContainerStatusRequest, ListContainersRequest, ListPodSandboxRequest,
    PodSandboxStatusRequest, VersionRequest, runtime_service_client::RuntimeServiceClient,
};
use tonic::transport::{Channel, Endpoint, Uri};

use super::{
    cgroup_path::{ContainerId, Runtime},
    config::AUTO_SOCKETS,
    workload::{
        KUBERNETES_LABEL_PREFIX, LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE,
        LABEL_POD_UID, Metadata, Pod, image_digest, non_empty,
    },
};

/// The CRI API types, for callers that drive a runtime themselves (tests, tools).
pub use k8s_cri::v1 as api;

/// A CRI runtime service client on a channel from [`connect_channel`].
pub type RuntimeClient = RuntimeServiceClient<Channel>;

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("no CRI socket found (tried {tried})")]
    NoSocket { tried: String },
    #[error("cannot connect to the CRI socket {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    /// The socket accepted the connection, which broke while HTTP/2 was being set up: the
    /// server wrote something else and hung up before the client's preface went out.
    #[error("the CRI socket {path} accepted the connection but does not speak gRPC")]
    Handshake {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("`{call}` on the CRI socket took more than {timeout:?}")]
    Timeout {
        call: &'static str,
        timeout: Duration,
    },
    #[error("the runtime does not know {id}")]
    NotFound { id: ContainerId },
    /// The connection broke or did not carry gRPC: the socket closed at once, or answered
    /// with something that is not HTTP/2 (an HTTP/1 server, random bytes).
    #[error("`{call}` failed: the socket does not speak gRPC")]
    Transport {
        call: &'static str,
        #[source]
        source: tonic::Status,
    },
    #[error("`{call}` failed: {code:?}: {message}")]
    Status {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("`{call}` answered without {missing}")]
    Invalid {
        call: &'static str,
        missing: &'static str,
    },
}

impl CriError {
    /// A stable name for counters and logs.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::NoSocket { .. } | Self::Connect { .. } => "unavailable",
            Self::Status {
                code: tonic::Code::Unavailable,
                ..
            } => "unavailable",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } | Self::Handshake { .. } => "transport",
            Self::NotFound { .. } => "not_found",
            Self::Status { .. } => "error",
            Self::Invalid { .. } => "invalid",
        }
    }
}

pub use crate::telemetry::chain as error_chain;

/// The configured socket, or the first of the usual ones that exists.
pub fn find_socket(configured: Option<&Path>) -> Result<PathBuf, CriError> {
    if let Some(path) = configured {
        return Ok(path.to_owned());
    }
    AUTO_SOCKETS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| CriError::NoSocket {
            tried: AUTO_SOCKETS.join(", "),
        })
}

/// A gRPC channel to a unix socket, connected within `timeout`. A socket that accepts the
/// connection and then breaks it is a [`CriError::Handshake`], not an unavailable runtime.
pub async fn connect_channel(path: &Path, timeout: Duration) -> Result<Channel, CriError> {
    let socket = path.to_owned();
    let accepted = Arc::new(AtomicBool::new(false));
    // The URI is not used for unix sockets, but must parse.
    let endpoint = Endpoint::from_static("http://localhost").connect_timeout(timeout);
    let connect = endpoint.connect_with_connector(tower::service_fn({
        let accepted = accepted.clone();
        move |_: Uri| {
            let (socket, accepted) = (socket.clone(), accepted.clone());
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                accepted.store(true, Ordering::Relaxed);
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }
    }));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(source)) if accepted.load(Ordering::Relaxed) => Err(CriError::Handshake {
            path: path.to_owned(),
            source,
        }),
        Ok(Err(source)) => Err(CriError::Connect {
            path: path.to_owned(),
            source,
        }),
        Err(_) => Err(CriError::Timeout {
            call: "connect",
            timeout,
        }),
    }
}

/// A connected CRI client.
#[derive(Clone, Debug)]
pub struct CriClient {
    client: RuntimeServiceClient<Channel>,
    socket: PathBuf,
    timeout: Duration,
    /// The runtime behind the socket, as its `Version` named it.
    runtime: Option<Runtime>,
    version: String,
}

impl CriClient {
    /// Connects to `socket` and asks the runtime its name; every call then has `timeout`.
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<Self, CriError> {
        let channel = connect_channel(socket, timeout).await?;
        let mut client = Self {
            client: RuntimeServiceClient::new(channel),
            socket: socket.to_owned(),
            timeout,
            runtime: None,
            version: String::new(),
        };
        let mut rpc = client.client.clone();
        let version = client
            .call("Version", rpc.version(VersionRequest::default()))
            .await?;
        client.runtime = runtime_named(&version.runtime_name);
        client.version = format!("{} {}", version.runtime_name, version.runtime_version);
        Ok(client)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `<runtime name> <runtime version>` as the runtime reported them.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// One call with the timeout, its error named after `call`.
    async fn call<T>(
        &self,
        call: &'static str,
        rpc: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CriError> {
        match tokio::time::timeout(self.timeout, rpc).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if from_transport(&status) => Err(CriError::Transport {
                call,
                source: status,
            }),
            Ok(Err(status)) => Err(CriError::Status {
                call,
                code: status.code(),
                message: status.message().to_owned(),
            }),
            Err(_) => Err(CriError::Timeout {
                call,
                timeout: self.timeout,
            }),
        }
    }

    /// Container name, image and pod of `id`; `id` may also be a pod sandbox (the pause
    /// container), which gives its pod only.
    pub async fn lookup(&self, id: &ContainerId) -> Result<Metadata, CriError> {
        let (mut status_rpc, mut list_rpc) = (self.client.clone(), self.client.clone());
        let status = self.call(
            "ContainerStatus",
            status_rpc.container_status(ContainerStatusRequest {
                container_id: id.0.clone(),
                verbose: false,
            }),
        );
        // ContainerStatus does not name the pod sandbox; the container list does.
        let listed = self.call(
            "ListContainers",
            list_rpc.list_containers(ListContainersRequest {
                filter: Some(ContainerFilter {
                    id: id.0.clone(),
                    ..ContainerFilter::default()
                }),
            }),
        );
        let (status, listed) = tokio::join!(status, listed);
        let status = match status {
            Ok(response) => response.status.ok_or(CriError::Invalid {
                call: "ContainerStatus",
                missing: "a status",
            })?,
            Err(CriError::Status {
                code: tonic::Code::NotFound,
                ..
            }) => return self.lookup_sandbox(id).await,
            Err(error) => return Err(error),
        };
        let sandbox_id = listed
            .ok()
            .and_then(|l| l.containers.into_iter().find(|c| c.id == id.0))
            .map(|c| c.pod_sandbox_id)
            .filter(|s| !s.is_empty());
        let pod = match sandbox_id {
            Some(sandbox) => self.pod(&sandbox).await.ok(),
            None => None,
        }
        .or_else(|| pod_from_labels(&status.labels));
        let name = status
            .metadata
            .as_ref()
            .and_then(|m| non_empty(&m.name))
            .or_else(|| status.labels.get(LABEL_CONTAINER_NAME).cloned());
        Ok(Metadata {
            runtime: self.runtime,
            name,
            image: status.image.as_ref().and_then(|i| non_empty(&i.image)),
            image_digest: image_digest(&status.image_ref),
            pod,
        })
    }

    async fn lookup_sandbox(&self, id: &ContainerId) -> Result<Metadata, CriError> {
        match self.pod(&id.0).await {
            Ok(pod) => Ok(Metadata {
                runtime: self.runtime,
                pod: Some(pod),
                ..Metadata::default()
            }),
            Err(CriError::Status {
                code: tonic::Code::NotFound,
                ..
            }) => Err(CriError::NotFound { id: id.clone() }),
            Err(error) => Err(error),
        }
    }

    async fn pod(&self, sandbox_id: &str) -> Result<Pod, CriError> {
        let mut rpc = self.client.clone();
        let response = self
            .call(
                "PodSandboxStatus",
                rpc.pod_sandbox_status(PodSandboxStatusRequest {
                    pod_sandbox_id: sandbox_id.to_owned(),
                    verbose: false,
                }),
            )
            .await?;
        let status = response.status.ok_or(CriError::Invalid {
            call: "PodSandboxStatus",
            missing: "a status",
        })?;
        let metadata = status.metadata.ok_or(CriError::Invalid {
            call: "PodSandboxStatus",
            missing: "metadata",
        })?;
        Ok(Pod {
            name: non_empty(&metadata.name),
            namespace: non_empty(&metadata.namespace),
            uid: non_empty(&metadata.uid),
            labels: own_labels(status.labels),
        })
    }

    /// The ids of every container and pod sandbox the runtime has.
    pub async fn list_ids(&self) -> Result<HashSet<ContainerId>, CriError> {
        let (mut containers_rpc, mut sandboxes_rpc) = (self.client.clone(), self.client.clone());
        let containers = self
            .call(
                "ListContainers",
                containers_rpc.list_containers(ListContainersRequest::default()),
            )
            .await?;
        let sandboxes = self
            .call(
                "ListPodSandbox",
                sandboxes_rpc.list_pod_sandbox(ListPodSandboxRequest::default()),
            )
            .await?;
        Ok(containers
            .containers
            .into_iter()
            .map(|c| c.id)
            .chain(sandboxes.items.into_iter().map(|s| s.id))
            .map(ContainerId)
            .collect())
    }
}

/// Whether `status` was made by the client's transport (the connection failed under the
/// call) rather than sent by a runtime.
fn from_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status)
        .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
}

/// The runtime a CRI `Version` names.
fn runtime_named(name: &str) -> Option<Runtime> {
    match name {
        "containerd" => Some(Runtime::Containerd),
        "cri-o" => Some(Runtime::CriO),
        "docker" | "cri-dockerd" => Some(Runtime::Docker),
        _ => None,
    }
}

/// A pod from the kubelet's labels on a container, when its sandbox could not be read.
fn pod_from_labels(labels: &std::collections::HashMap<String, String>) -> Option<Pod> {
    let get = |key: &str| labels.get(key).and_then(|v| non_empty(v));
    let pod = Pod {
        name: get(LABEL_POD_NAME),
        namespace: get(LABEL_POD_NAMESPACE),
        uid: get(LABEL_POD_UID),
        labels: Default::default(),
    };
    (pod.name.is_some() || pod.uid.is_some()).then_some(pod)
}

fn own_labels(
    labels: std::collections::HashMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    labels
        .into_iter()
        .filter(|(key, _)| !key.starts_with(KUBERNETES_LABEL_PREFIX))
        .collect()
}

#[cfg(test)]
#[path = "cri_tests.rs"]
pub(super) mod tests;
