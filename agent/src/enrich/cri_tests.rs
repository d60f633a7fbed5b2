use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tokio::{io::AsyncWriteExt, net::UnixListener};

use super::*;

const TIMEOUT: Duration = Duration::from_millis(300);

fn socket_path(label: &str) -> PathBuf {
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
    let path = listen("silent", |stream| async move {
        // Holds the connection open and never answers.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let started = Instant::now();
    let error = CriClient::connect(&path, TIMEOUT)
        .await
        .expect_err("no answer");
    assert_eq!(error.cause(), "timeout", "{error}");
    assert!(started.elapsed() < TIMEOUT * 3, "{:?}", started.elapsed());
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn garbage_answer_is_an_error_not_a_panic() {
    let path = listen("garbage", |mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n\xff\x00garbage")
            .await;
        let _ = stream.shutdown().await;
    });
    let started = Instant::now();
    let error = CriClient::connect(&path, TIMEOUT)
        .await
        .expect_err("not gRPC");
    assert!(
        matches!(error.cause(), "unavailable" | "error" | "timeout"),
        "{error}"
    );
    assert!(started.elapsed() < TIMEOUT * 3, "{:?}", started.elapsed());
    let _ = std::fs::remove_file(path);
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
