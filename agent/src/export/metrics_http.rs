//! `GET /metrics` over plain HTTP on the configured address (off by default; metrics hold
//! counters only, no event data). Serves the latest snapshot the pipeline rendered.

use std::sync::Arc;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
};

/// Serves until `shutdown` turns true. A bad request gets an error status; a broken client
/// only ends its own connection.
pub async fn serve(
    listener: TcpListener,
    metrics: watch::Receiver<Arc<str>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let body = metrics.borrow().clone();
                tokio::spawn(respond(stream, body));
            }
        }
    }
}

async fn respond(mut stream: tokio::net::TcpStream, body: Arc<str>) {
    let mut request = [0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut request));
    let Ok(Ok(n)) = read.await else { return };
    let line = request[..n]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let (status, content_type, body): (&str, &str, &str) =
        if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?") {
            ("200 OK", "text/plain; version=0.0.4", &body)
        } else if line.starts_with(b"GET ") {
            ("404 Not Found", "text/plain", "only /metrics is served\n")
        } else {
            (
                "405 Method Not Allowed",
                "text/plain",
                "only GET is served\n",
            )
        };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}
