use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tokio::{io::AsyncWriteExt as _, net::UnixListener};

use super::*;

const TIMEOUT: Duration = Duration::from_millis(300);

pub(crate) fn socket_path(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "vigil-cri-test-{label}-{}.sock",
        std::process::id()
    ))
}

/// A socket that accepts connections and hands each to `serve`.
fn listen<F, Fut>(label: &str, serve: F) -> PathBuf
where
    F: Fn(tokio::net::UnixStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = socket_path(label);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind a test socket");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    path
}

#[tokio::test]
async fn absent_socket_is_unavailable_at_once() {
    let started = Instant::now();
    let error = CriClient::connect(&socket_path("absent"), TIMEOUT)
        .await
        .expect_err("nothing listens");
    assert_eq!(error.cause(), "unavailable", "{error}");
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
}

#[tokio::test]
async fn silent_socket_times_out() {
    let path = listen_hostile("silent", Hostile::Silent);
    let started = Instant::now();
    let error = CriClient::connect(&path, TIMEOUT)
        .await
        .expect_err("no answer");
    assert_eq!(error.cause(), "timeout", "{error}");
    assert!(started.elapsed() < TIMEOUT * 3, "{:?}", started.elapsed());
    let _ = std::fs::remove_file(path);
}

/// What a socket that is not a CRI runtime may do when the client connects.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Hostile {
    /// Accepts, then never reads nor answers.
    Silent,
    /// 4 KiB of random bytes, then closes.
    RandomBytes,
    /// An HTTP/1.1 response, then closes.
    Http1,
    /// Closes at once.
    Close,
}

/// A socket that does `hostile` to every connection.
pub(crate) fn listen_hostile(label: &str, hostile: Hostile) -> PathBuf {
    listen(label, move |mut stream| async move {
        match hostile {
            Hostile::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
            Hostile::RandomBytes => {
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
                let bytes: Vec<u8> = (0..4096)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x.to_le_bytes()[0]
                    })
                    .collect();
                let _ = stream.write_all(&bytes).await;
            }
            Hostile::Http1 => {
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\n\r\n\xff\x00garbage",
                    )
                    .await;
            }
            Hostile::Close => {}
        }
        let _ = stream.shutdown().await;
    })
}

#[tokio::test]
async fn a_socket_that_does_not_speak_grpc_is_a_transport_error_at_once() {
    for hostile in [Hostile::RandomBytes, Hostile::Http1, Hostile::Close] {
        let path = listen_hostile(&format!("{hostile:?}"), hostile);
        let started = Instant::now();
        let error = CriClient::connect(&path, TIMEOUT)
            .await
            .expect_err("not gRPC");
        assert_eq!(error.cause(), "transport", "{hostile:?}: {error}");
        assert!(
            error.to_string().ends_with("does not speak gRPC"),
            "{hostile:?}: {error}"
        );
        assert!(
            started.elapsed() < TIMEOUT,
            "{hostile:?}: {:?}",
            started.elapsed()
        );
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn finds_the_configured_socket_without_looking() {
    let configured = Path::new("/nowhere/cri.sock");
    assert_eq!(
        find_socket(Some(configured)).expect("configured"),
        configured
    );
}

#[test]
fn runtime_names() {
    assert_eq!(runtime_named("containerd"), Some(Runtime::Containerd));
    assert_eq!(runtime_named("cri-o"), Some(Runtime::CriO));
    assert_eq!(runtime_named("something"), None);
}

#[test]
fn pod_from_kubelet_labels_and_own_labels() {
    let labels: HashMap<String, String> = [
        (LABEL_POD_NAME, "web-0"),
        (LABEL_POD_NAMESPACE, "shop"),
        (LABEL_POD_UID, "8c0d9a52-1f3e-4b7a-9c61-2d5e7f8a9b0c"),
        (LABEL_CONTAINER_NAME, "nginx"),
        ("app", "web"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let pod = pod_from_labels(&labels).expect("a pod");
    assert_eq!(pod.name.as_deref(), Some("web-0"));
    assert_eq!(pod.namespace.as_deref(), Some("shop"));
    assert_eq!(
        pod.uid.as_deref(),
        Some("8c0d9a52-1f3e-4b7a-9c61-2d5e7f8a9b0c")
    );
    let own = own_labels(labels);
    assert_eq!(own.len(), 1);
    assert_eq!(own.get("app").map(String::as_str), Some("web"));
    assert_eq!(pod_from_labels(&HashMap::new()), None);
}

/// A server quicker than the client's HTTP/2 preface: it writes and hangs up before the
/// client has written anything, so the client's first write breaks inside the connect. That
/// is still a socket that does not speak gRPC, not an unavailable runtime.
#[tokio::test]
async fn a_socket_that_hangs_up_before_the_preface_is_a_transport_error() {
    use std::io::Write as _;
    let path = socket_path("before-preface");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind a test socket");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.write_all(&[0x5a; 4096]);
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    let mut causes: HashMap<&str, usize> = HashMap::new();
    for _ in 0..50 {
        let error = CriClient::connect(&path, TIMEOUT)
            .await
            .expect_err("not gRPC");
        assert!(
            error.to_string().ends_with("does not speak gRPC"),
            "{error}"
        );
        *causes.entry(error.cause()).or_default() += 1;
    }
    assert_eq!(causes, HashMap::from([("transport", 50)]));
    let _ = std::fs::remove_file(path);
}
