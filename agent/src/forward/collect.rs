//! `vigil collect`: a small reference collector. It serves `vigil.v1.Collector`, writes
//! each record once as a JSON line (`{"node", "stream", "seq", "event" | "loss"}`), and
//! acknowledges what it has written and synced. Duplicates (records resent after a
//! reconnect) are recognised by `(node, stream, seq)` and skipped; the highest sequence per
//! stream is recovered from the output file at start, so a restarted collector skips them too.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, BufWriter, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex},
};

use futures_util::FutureExt as _;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

use crate::api::proto::{
    Ack, Record,
    collector_server::{Collector, CollectorServer},
    record::Body,
};

/// Acknowledge at least every this many records.
const ACK_EVERY: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("opening {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path} for the sequence numbers already stored")]
    Recover {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {field} {path}")]
    Pem {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is not a loopback address: give --tls-cert and --tls-key (and --tls-client-ca), or --insecure"
    )]
    Plaintext(SocketAddr),
    #[error("serving on {address}")]
    Serve {
        address: SocketAddr,
        #[source]
        source: tonic::transport::Error,
    },
}

#[derive(Clone, Debug, Default)]
pub struct CollectOptions {
    pub listen: Option<SocketAddr>,
    pub out: PathBuf,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub insecure: bool,
}

struct Store {
    out: BufWriter<File>,
    /// Highest sequence number stored, per `(node, stream)`.
    last: HashMap<(String, String), u64>,
    written: u64,
    duplicates: u64,
}

#[derive(Clone)]
struct Service {
    store: Arc<Mutex<Store>>,
}

type AckStream = Pin<Box<dyn Stream<Item = Result<Ack, Status>> + Send>>;

#[tonic::async_trait]
impl Collector for Service {
    type PublishStream = AckStream;

    async fn publish(
        &self,
        request: Request<Streaming<Record>>,
    ) -> Result<Response<AckStream>, Status> {
        let peer = request.remote_addr();
        let mut records = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut pending = 0usize;
            let mut ack = 0u64;
            loop {
                // Take what has arrived; acknowledge when the stream pauses or often enough.
                let next = match records.next().now_or_never() {
                    Some(next) => next,
                    None => {
                        if pending > 0 {
                            if let Err(status) = sync(&store) {
                                let _ = tx.send(Err(status)).await;
                                return;
                            }
                            pending = 0;
                            if tx.send(Ok(Ack { seq: ack })).await.is_err() {
                                return;
                            }
                        }
                        records.next().await
                    }
                };
                match next {
                    Some(Ok(record)) => {
                        ack = record.seq;
                        if let Err(status) = store_record(&store, record) {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                        pending += 1;
                        if pending >= ACK_EVERY {
                            if let Err(status) = sync(&store) {
                                let _ = tx.send(Err(status)).await;
                                return;
                            }
                            pending = 0;
                            if tx.send(Ok(Ack { seq: ack })).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Err(status)) => {
                        tracing::info!(?peer, %status, "A publisher's stream broke.");
                        let _ = sync(&store);
                        return;
                    }
                    None => {
                        let _ = sync(&store);
                        if pending > 0 {
                            let _ = tx.send(Ok(Ack { seq: ack })).await;
                        }
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

fn store_record(store: &Mutex<Store>, record: Record) -> Result<(), Status> {
    let mut store = store
        .lock()
        .map_err(|_| Status::internal("store poisoned"))?;
    let key = (record.node.clone(), record.stream.clone());
    let last = store.last.get(&key).copied().unwrap_or(0);
    if record.seq <= last {
        store.duplicates += 1;
        return Ok(());
    }
    if last > 0 && record.seq > last + 1 {
        tracing::warn!(node = %record.node, stream = %record.stream, from = last + 1, to = record.seq - 1, "Sequence numbers are missing (see the stream's loss records).");
    }
    let line = line(&record);
    store
        .out
        .write_all(line.as_bytes())
        .map_err(|e| Status::internal(format!("writing the output: {e}")))?;
    store.last.insert(key, record.seq);
    store.written += 1;
    Ok(())
}

fn sync(store: &Mutex<Store>) -> Result<(), Status> {
    let mut store = store
        .lock()
        .map_err(|_| Status::internal("store poisoned"))?;
    store
        .out
        .flush()
        .and_then(|()| store.out.get_ref().sync_data())
        .map_err(|e| Status::internal(format!("syncing the output: {e}")))
}

/// The JSON line for `record`.
pub fn line(record: &Record) -> String {
    let body = match &record.body {
        Some(Body::Event(event)) => ("event", serde_json::to_value(event)),
        Some(Body::Loss(loss)) => ("loss", serde_json::to_value(loss)),
        None => ("empty", Ok(serde_json::Value::Null)),
    };
    let mut object = serde_json::Map::new();
    object.insert("node".into(), record.node.clone().into());
    object.insert("stream".into(), record.stream.clone().into());
    object.insert("seq".into(), record.seq.into());
    object.insert(body.0.into(), body.1.unwrap_or(serde_json::Value::Null));
    let mut text = serde_json::Value::Object(object).to_string();
    text.push('\n');
    text
}

/// The highest sequence per stream in an existing output file.
fn recover(path: &Path) -> Result<HashMap<(String, String), u64>, CollectError> {
    let mut last = HashMap::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(last),
        Err(source) => {
            return Err(CollectError::Recover {
                path: path.to_owned(),
                source,
            });
        }
    };
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| CollectError::Recover {
            path: path.to_owned(),
            source,
        })?;
        // A torn last line (the collector was killed mid-write) is skipped.
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        if let (Some(node), Some(stream), Some(seq)) = (
            field("node"),
            field("stream"),
            value.get("seq").and_then(serde_json::Value::as_u64),
        ) {
            let entry = last.entry((node, stream)).or_insert(0);
            *entry = (*entry).max(seq);
        }
    }
    Ok(last)
}

/// Serves until `shutdown` resolves; returns (records written, duplicates skipped).
pub async fn serve(
    options: CollectOptions,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> Result<(u64, u64), CollectError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let address = options
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let tls = options.tls_cert.is_some() || options.tls_key.is_some();
    if !tls && !options.insecure && !address.ip().is_loopback() {
        return Err(CollectError::Plaintext(address));
    }
    let last = recover(&options.out)?;
    let open_error = |source| CollectError::Open {
        path: options.out.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(&options.out)
        .map_err(open_error)?;
    end_torn_line(&mut file).map_err(open_error)?;
    let store = Arc::new(Mutex::new(Store {
        out: BufWriter::new(file),
        last,
        written: 0,
        duplicates: 0,
    }));
    let mut builder = tonic::transport::Server::builder();
    if tls {
        builder = builder
            .tls_config(server_tls(&options)?)
            .map_err(|source| CollectError::Serve { address, source })?;
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| CollectError::Open {
            path: PathBuf::from(address.to_string()),
            source,
        })?;
    let local = listener.local_addr().unwrap_or(address);
    let _ = bound.send(local);
    tracing::info!(address = %local, out = %options.out.display(), tls, "Collecting.");
    builder
        .add_service(CollectorServer::new(Service {
            store: store.clone(),
        }))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
        .map_err(|source| CollectError::Serve { address, source })?;
    let _ = sync(&store);
    let store = store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok((store.written, store.duplicates))
}

/// Ends a line torn by a crash, so that the next record starts on a line of its own.
fn end_torn_line(file: &mut File) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

fn server_tls(options: &CollectOptions) -> Result<tonic::transport::ServerTlsConfig, CollectError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let pem = |field: &'static str, path: &Option<PathBuf>| {
        let path = path.clone().unwrap_or_default();
        std::fs::read(&path).map_err(|source| CollectError::Pem {
            field,
            path,
            source,
        })
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        pem("--tls-cert", &options.tls_cert)?,
        pem("--tls-key", &options.tls_key)?,
    ));
    if options.tls_client_ca.is_some() {
        tls = tls.client_ca_root(Certificate::from_pem(pem(
            "--tls-client-ca",
            &options.tls_client_ca,
        )?));
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto;

    #[test]
    fn recovery_reads_the_highest_sequence_per_stream_and_skips_a_torn_line() {
        let path = std::env::temp_dir().join(format!("vigil-collect-{}", std::process::id()));
        let record = |node: &str, seq| {
            line(&Record {
                node: node.into(),
                stream: "s".into(),
                seq,
                body: Some(Body::Loss(proto::SpoolLoss::default())),
            })
        };
        let text = [
            record("a", 1),
            record("a", 2),
            record("b", 9),
            "{\"node\":\"a\",\"str".into(),
        ]
        .concat();
        std::fs::write(&path, text).expect("write");
        let last = recover(&path).expect("recover");
        assert_eq!(last.get(&("a".into(), "s".into())), Some(&2));
        assert_eq!(last.get(&("b".into(), "s".into())), Some(&9));
        let _ = std::fs::remove_file(path);
    }
}
