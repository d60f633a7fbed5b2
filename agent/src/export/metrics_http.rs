//! `GET /metrics` over plain HTTP on the configured address (off by default; metrics hold
//! counters only, no event data). Serves the latest snapshot the pipeline rendered, and the
//! probes a supervisor (the kubelet) asks: `/readyz` answers 200 once the pipeline has
//! published its first snapshot (the programs are attached by then: the endpoint starts only
//! after), `/healthz` while the snapshots keep coming (a stalled pipeline turns it to 503).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
};

/// What the pipeline publishes on every tick: the rendered metrics, and when.
#[derive(Clone, Debug)]
pub struct Published {
    pub body: Arc<str>,
    pub at: Instant,
}

impl Published {
    pub fn now(body: String) -> Self {
        Self {
            body: body.into(),
            at: Instant::now(),
        }
    }
}

/// How long without a new snapshot before `/healthz` reports the pipeline stalled: ten ticks,
/// and never less than 30 s (a tick waits while the pipeline works through a large batch).
pub fn stall_limit(tick: Duration) -> Duration {
    (tick * 10).max(Duration::from_secs(30))
}

/// Serves until `shutdown` turns true. A bad request gets an error status; a broken client
/// only ends its own connection.
pub async fn serve(
    listener: TcpListener,
    metrics: watch::Receiver<Option<Published>>,
    stall_limit: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let latest = metrics.borrow().clone();
                tokio::spawn(respond(stream, latest, stall_limit));
            }
        }
    }
}

/// Status and body of the two probes.
fn probe(path: &[u8], latest: Option<&Published>, stall_limit: Duration) -> (&'static str, String) {
    let Some(latest) = latest else {
        return (
            "503 Service Unavailable",
            "starting: the pipeline has not published yet\n".into(),
        );
    };
    let age = latest.at.elapsed();
    if path == b"/healthz" && age > stall_limit {
        return (
            "503 Service Unavailable",
            format!(
                "stalled: no pipeline tick for {:.0} s (limit {:.0} s)\n",
                age.as_secs_f64(),
                stall_limit.as_secs_f64()
            ),
        );
    }
    ("200 OK", "ok\n".into())
}

async fn respond(
    mut stream: tokio::net::TcpStream,
    latest: Option<Published>,
    stall_limit: Duration,
) {
    let mut request = [0u8; 1024];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        read_request_line(&mut stream, &mut request),
    );
    let Ok(Ok(n)) = read.await else { return };
    let line = request[..n]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let path = line
        .strip_prefix(b"GET ")
        .and_then(|rest| rest.split(|&b| b == b' ' || b == b'?').next());
    let (status, content_type, body): (&str, &str, String) = match path {
        Some(b"/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            latest.map(|l| l.body.to_string()).unwrap_or_default(),
        ),
        Some(path @ (b"/healthz" | b"/readyz")) => {
            let (status, body) = probe(path, latest.as_ref(), stall_limit);
            (status, "text/plain", body)
        }
        Some(_) => (
            "404 Not Found",
            "text/plain",
            "only /metrics, /healthz and /readyz are served\n".into(),
        ),
        None => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n".into(),
        ),
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
        let (_metrics, rx) = watch::channel(Some(Published::now("vigil_x 1\n".into())));
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(serve(listener, rx, Duration::from_secs(30), shutdown));
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        client.set_nodelay(true).expect("nodelay");
        client.write_all(b"GET ").await.expect("first part");
        tokio::time::sleep(Duration::from_millis(50)).await;
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

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut response = String::new();
        client
            .read_to_string(&mut response)
            .await
            .expect("response");
        response
    }

    #[tokio::test]
    async fn probes_follow_the_pipeline_start_then_its_ticks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (publish, rx) = watch::channel(None);
        let (_stop, shutdown) = watch::channel(false);
        let limit = Duration::from_millis(300);
        tokio::spawn(serve(listener, rx, limit, shutdown));

        // Before the first snapshot: neither ready nor healthy, and no metrics yet.
        for path in ["/readyz", "/healthz"] {
            let response = get(addr, path).await;
            assert!(response.starts_with("HTTP/1.1 503 "), "{path}: {response}");
            assert!(response.ends_with("starting: the pipeline has not published yet\n"));
        }

        publish.send_replace(Some(Published::now("vigil_up 1\n".into())));
        for path in ["/readyz", "/healthz", "/healthz?verbose"] {
            let response = get(addr, path).await;
            assert!(
                response.starts_with("HTTP/1.1 200 OK\r\n"),
                "{path}: {response}"
            );
            assert!(response.ends_with("\r\n\r\nok\n"), "{response}");
        }
        assert!(get(addr, "/metrics").await.ends_with("vigil_up 1\n"));

        // No tick for longer than the limit: still ready (it started), no longer healthy.
        tokio::time::sleep(limit + Duration::from_millis(100)).await;
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200 "));
        let stalled = get(addr, "/healthz").await;
        assert!(stalled.starts_with("HTTP/1.1 503 "), "{stalled}");
        assert!(stalled.contains("stalled: no pipeline tick"), "{stalled}");

        // The next tick makes it healthy again.
        publish.send_replace(Some(Published::now("vigil_up 1\n".into())));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200 "));
        assert!(get(addr, "/other").await.starts_with("HTTP/1.1 404 "));
    }

    #[test]
    fn the_stall_limit_is_ten_ticks_and_at_least_30_s() {
        assert_eq!(stall_limit(Duration::from_secs(1)), Duration::from_secs(30));
        assert_eq!(stall_limit(Duration::from_secs(5)), Duration::from_secs(50));
    }
}
