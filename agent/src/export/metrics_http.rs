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
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        read_request_line(&mut stream, &mut request),
    );
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

/// Reads until the request line is complete (a client may send it in several segments), the
/// buffer is full or the client stops sending; returns the bytes read.
async fn read_request_line(
    stream: &mut tokio::net::TcpStream,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() && !buf[..n].contains(&b'\n') {
        match stream.read(&mut buf[n..]).await? {
            0 => break,
            read => n += read,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_line_split_across_segments_is_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (_metrics, rx) = watch::channel(Arc::<str>::from("vigil_x 1\n"));
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(serve(listener, rx, shutdown));
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        client.set_nodelay(true).expect("nodelay");
        client.write_all(b"GET ").await.expect("first part");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        client
            .write_all(b"/metrics HTTP/1.1\r\n\r\n")
            .await
            .expect("second part");
        let mut response = String::new();
        client
            .read_to_string(&mut response)
            .await
            .expect("response");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nvigil_x 1\n"), "{response}");
    }
}
