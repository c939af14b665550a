//! `kernelci_kcidb::client` (feature `client`) against the real KCIDB role on a port, with
//! the background ingester on SQLite or PostgreSQL: a stream of objects cut into
//! submissions, a streamed file, status polling until `processed`, refusals and retries.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use kernelci_kcidb::Build;
use kernelci_kcidb::client::{Client, ClientError, Retry};
use kernelci_kcidb::stream::AnyObject;
use kernelci_kcidb_server::{
    DEFAULT_MAX_BODY, IngestLimits, KcidbConfig, KcidbDb, KcidbState, Verifier, kcidb_router,
};
use kernelci_tests::TestDb;

fn build(i: usize) -> AnyObject {
    let mut b: Build = serde_json::from_value(serde_json::json!({
        "id": format!("lab:b{i}"), "origin": "lab", "checkout_id": "lab:c1",
        "status": if i.is_multiple_of(3) { "FAIL" } else { "PASS" }}))
    .unwrap();
    b.architecture = Some("x86_64".into());
    AnyObject::Build(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_submits_streams_and_waits() {
    let testdb = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let db = KcidbDb::open(&testdb.url).await.unwrap();
    let keys = Verifier::new("client-test-secret", None);
    let state = KcidbState::new(KcidbConfig {
        spool_dir: dir.path().join("spool"),
        verifier: Some(keys.clone()),
        max_body: DEFAULT_MAX_BODY,
    })
    .unwrap();
    state.spawn_ingester(db.clone(), IngestLimits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/submit", listener.local_addr().unwrap());
    let app = kcidb_router(state, true);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let token = keys.issue("lab", false, 1);
    let other = keys.issue("other", false, 1);
    let file = dir.path().join("one.json");
    std::fs::write(
        &file,
        serde_json::json!({"version": {"major": 5, "minor": 3},
            "checkouts": [{"id": "lab:c1", "origin": "lab", "tree_name": "mainline"}]})
        .to_string(),
    )
    .unwrap();
    let bad_file = dir.path().join("missing.json");

    // The client is blocking: run it off the runtime's threads.
    let (receipts, statuses, refused, missing) = tokio::task::spawn_blocking(move || {
        let client = Client::new(&url, &token).unwrap();
        let first = client.submit_file(&file).unwrap();
        let receipts = client.submit_objects((0..2500).map(build), 1000).unwrap();
        let mut statuses = vec![client.wait(&first.id, Duration::from_secs(30)).unwrap()];
        for r in &receipts {
            statuses.push(client.wait(&r.id, Duration::from_secs(30)).unwrap());
        }
        let foreign = Client::new(&url, &other).unwrap();
        let refused = foreign.submit_objects([build(9999)], 10).unwrap_err();
        let missing = client.submit_file(&bad_file).unwrap_err();
        (receipts, statuses, refused, missing)
    })
    .await
    .unwrap();
    assert_eq!(receipts.len(), 3, "2,500 objects in submissions of 1,000");
    let objects: Vec<u64> = receipts
        .iter()
        .map(|r| r.reply["objects"].as_u64().unwrap())
        .collect();
    assert_eq!(objects, [1000, 1000, 500]);
    assert!(
        statuses.iter().all(|s| s.status == "processed"),
        "{statuses:?}"
    );
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.checkouts, counts.builds), (1, 2500));
    match refused {
        ClientError::Refused { status, .. } => assert_eq!(status, 403),
        other => panic!("{other}"),
    }
    assert!(matches!(missing, ClientError::File { .. }), "{missing}");
}

#[test]
fn unreachable_receivers_are_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(&format!("http://127.0.0.1:{port}/submit"), "t")
        .unwrap()
        .with_retry(Retry {
            tries: 3,
            first_delay: Duration::from_millis(20),
        });
    let start = std::time::Instant::now();
    match client.submit_bytes(b"{}".to_vec()).unwrap_err() {
        ClientError::Unreachable { tries, .. } => assert_eq!(tries, 3),
        other => panic!("{other}"),
    }
    assert!(
        start.elapsed() >= Duration::from_millis(60),
        "waited 20 + 40 ms"
    );
    assert!(matches!(
        Client::new("ftp://x/submit", "t").unwrap_err(),
        ClientError::BadUrl { .. }
    ));
    assert!(matches!(
        client.status("abc").unwrap_err(),
        ClientError::Unreachable { .. }
    ));
}
