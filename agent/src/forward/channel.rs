//! A gRPC channel to a destination: plain HTTP/2, or TLS with an explicit CA and, for mutual
//! TLS, this agent's certificate.

use std::{path::Path, time::Duration};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::config::Destination;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("forward.{destination}.endpoint `{endpoint}` is not a URI")]
    Endpoint {
        destination: &'static str,
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("forward.{destination}.{field}: reading {path}")]
    Pem {
        destination: &'static str,
        field: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "forward.{destination}: an https endpoint needs tls_ca (and tls_cert with tls_key for mutual TLS)"
    )]
    MissingCa { destination: &'static str },
    #[error("forward.{destination}: tls_cert and tls_key go together")]
    HalfIdentity { destination: &'static str },
    #[error("forward.{destination}: TLS settings")]
    Tls {
        destination: &'static str,
        #[source]
        source: tonic::transport::Error,
    },
}

/// The endpoint for `dest`, validated (files read) but not connected.
pub fn endpoint(destination: &'static str, dest: &Destination) -> Result<Endpoint, ChannelError> {
    let timeout = Duration::from_millis(dest.timeout_ms.max(1));
    let endpoint = Endpoint::from_shared(dest.endpoint.clone())
        .map_err(|source| ChannelError::Endpoint {
            destination,
            endpoint: dest.endpoint.clone(),
            source,
        })?
        .connect_timeout(timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(timeout);
    if !dest.endpoint.starts_with("https://") {
        return Ok(endpoint);
    }
    if dest.tls_ca.as_os_str().is_empty() {
        return Err(ChannelError::MissingCa { destination });
    }
    let pem = |field: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| ChannelError::Pem {
            destination,
            field,
            path: path.to_owned(),
            source,
        })
    };
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem("tls_ca", &dest.tls_ca)?));
    match (
        dest.tls_cert.as_os_str().is_empty(),
        dest.tls_key.as_os_str().is_empty(),
    ) {
        (true, true) => {}
        (false, false) => {
            tls = tls.identity(Identity::from_pem(
                pem("tls_cert", &dest.tls_cert)?,
                pem("tls_key", &dest.tls_key)?,
            ));
        }
        _ => return Err(ChannelError::HalfIdentity { destination }),
    }
    if !dest.tls_server_name.is_empty() {
        tls = tls.domain_name(dest.tls_server_name.clone());
    }
    endpoint
        .tls_config(tls)
        .map_err(|source| ChannelError::Tls {
            destination,
            source,
        })
}

/// Connects `endpoint`; errors are the transport's (refused, TLS handshake, timeout).
pub async fn connect(endpoint: &Endpoint) -> Result<Channel, tonic::transport::Error> {
    endpoint.connect().await
}
