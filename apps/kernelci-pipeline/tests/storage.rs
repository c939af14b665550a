//! The kernelci-storage upload client against a stand-in receiver on a real port (no
//! kernelci-storage server can run here): the request must follow the protocol of
//! specs/pipeline.md §8 (`POST <api>/upload`, `Authorization` verbatim, multipart field
//! `path` and file `file0`), 5xx is retried, 4xx is not.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kernelci_pipeline::storage::{ArtifactStore, KernelciStorage};

#[derive(Clone, Default)]
struct Seen {
    calls: Arc<AtomicUsize>,
    fail_first: usize,
    status_on_fail: u16,
    last: Arc<std::sync::Mutex<Option<(String, String, String)>>>,
}

async fn upload(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = seen.calls.fetch_add(1, Ordering::SeqCst);
    if n < seen.fail_first {
        return StatusCode::from_u16(seen.status_on_fail).unwrap();
    }
    let auth = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let ctype = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    *seen.last.lock().unwrap() = Some((auth, ctype, String::from_utf8_lossy(&body).into_owned()));
    StatusCode::OK
}

async fn serve(seen: Seen) -> String {
    let app = Router::new()
        .route("/upload", post(upload))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn uploads_follow_the_kernelci_storage_protocol() {
    let seen = Seen::default();
    let api = serve(seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bzImage");
    std::fs::write(&file, b"kernel bytes").unwrap();
    let st = KernelciStorage::new(&api, "https://files.example.org/", "Bearer tok.en");
    let url = st
        .upload(&file, "kbuild-gcc-x86-6b0a/bzImage")
        .await
        .unwrap();
    assert_eq!(url, "https://files.example.org/kbuild-gcc-x86-6b0a/bzImage");
    let (auth, ctype, body) = seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(auth, "Bearer tok.en", "the credential is sent verbatim");
    assert!(
        ctype.starts_with("multipart/form-data; boundary="),
        "{ctype}"
    );
    assert!(
        body.contains("name=\"path\"\r\n\r\nkbuild-gcc-x86-6b0a\r\n"),
        "{body}"
    );
    assert!(
        body.contains("name=\"file0\"; filename=\"bzImage\""),
        "{body}"
    );
    assert!(body.contains("kernel bytes"), "{body}");
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let seen = Seen {
        fail_first: 2,
        status_on_fail: 503,
        ..Seen::default()
    };
    let api = serve(seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.txt");
    std::fs::write(&file, b"log").unwrap();
    let st = KernelciStorage::new(&api, &api, "Bearer t");
    st.upload(&file, "job-1/log.txt").await.unwrap();
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);

    let refused = Seen {
        fail_first: 100,
        status_on_fail: 403,
        ..Seen::default()
    };
    let api = serve(refused.clone()).await;
    let st = KernelciStorage::new(&api, &api, "Bearer wrong");
    let err = st.upload(&file, "job-1/log.txt").await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(
        refused.calls.load(Ordering::SeqCst),
        1,
        "4xx is not retried"
    );

    // A name escaping the storage root never leaves the machine.
    let err = st.upload(&file, "../etc/passwd").await.unwrap_err();
    assert!(err.to_string().contains("refusing"), "{err}");
    assert_eq!(refused.calls.load(Ordering::SeqCst), 1);
}
