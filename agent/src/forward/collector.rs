//! The link to a Vigil collector: one `Publish` stream per session, at most `window` records
//! unacknowledged. A broken session is retried with backoff and resumes after the last
//! acknowledged record, so the collector sees every record at least once, in order.

use std::{sync::atomic::Ordering::Relaxed, time::Duration};

use prost::Message as _;
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use super::writer::Shared;
use crate::api::proto::{self, collector_client::CollectorClient};

const NAME: &str = "collector";

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connecting")]
    Connect(#[source] tonic::transport::Error),
    #[error("opening the publish stream")]
    Open(#[source] tonic::Status),
    #[error("the collector ended the stream")]
    Ended,
    #[error("reading acknowledgements")]
    Ack(#[source] tonic::Status),
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
pub async fn run(endpoint: Endpoint, window: usize, shared: Shared) {
    super::retry::run(NAME, shared, |shared| session(&endpoint, window, shared)).await;
}

async fn session(
    endpoint: &Endpoint,
    window: usize,
    mut shared: Shared,
) -> Result<(), SessionError> {
    let stats = shared.stats.destination(NAME);
    let channel = super::channel::connect(endpoint)
        .await
        .map_err(SessionError::Connect)?;
    let mut client = CollectorClient::new(channel);
    let (tx, rx) = mpsc::channel::<proto::Record>(window);
    let mut acks = client
        .publish(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(SessionError::Open)?
        .into_inner();
    stats.connected.store(1, Relaxed);
    tracing::info!(destination = NAME, "Connected to the collector.");
    let mut reader = shared.spool.borrow().reader(NAME);
    loop {
        let stopping = *shared.stop.borrow();
        // The spool's cursor, not the last ack: a size limit may have moved it past drops.
        let acked = shared.spool.borrow().acked(NAME);
        let in_flight = (reader.next_seq() - 1).saturating_sub(acked) as usize;
        if !stopping && in_flight < window {
            let records = shared
                .spool
                .borrow()
                .read(&mut reader, window - in_flight)?;
            for (seq, bytes) in records {
                let record = proto::Record::decode(bytes.as_slice())
                    .map_err(|source| SessionError::Decode { seq, source })?;
                // Capacity equals the window, so this waits only if the transport stalls.
                if tx.send(record).await.is_err() {
                    return Err(SessionError::Ended);
                }
                stats.sent_total.fetch_add(1, Relaxed);
            }
        }
        let in_flight = (reader.next_seq() - 1).saturating_sub(acked);
        if stopping && in_flight == 0 {
            return Ok(());
        }
        tokio::select! {
            ack = acks.message() => match ack {
                Ok(Some(ack)) => {
                    shared.spool.borrow_mut().ack(NAME, ack.seq)?;
                    stats.acked_seq.store(shared.spool.borrow().acked(NAME), Relaxed);
                }
                Ok(None) => return Err(SessionError::Ended),
                Err(status) => return Err(SessionError::Ack(status)),
            },
            _ = shared.appended.changed(), if !stopping => {}
            _ = shared.stop.changed(), if !stopping => {}
            _ = tokio::time::sleep(Duration::from_millis(500)), if stopping => return Ok(()),
        }
    }
}
