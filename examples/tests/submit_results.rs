//! Runs the `submit_results` example against a real KCIDB receiver: the KCIDB router of
//! `kernelci-kcidb-server` with its ingester on SQLite, served in-process on a port.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "../submit_results.rs"]
mod example;

use std::time::Duration;

use kernelci_kcidb::client::ClientError;
use kernelci_kcidb_server::{
    DEFAULT_MAX_BODY, IngestLimits, KcidbConfig, KcidbDb, KcidbState, Verifier, kcidb_router,
};

/// The receiver under `/kcidb` (as `kernelci up` mounts it) on a runtime of its own: the
/// example's client is blocking and runs on the test thread.
struct Receiver {
    submit_url: String,
    keys: Verifier,
    db: KcidbDb,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn start_receiver() -> Receiver {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = Verifier::new("examples-kcidb-secret", None);
    let state = KcidbState::new(KcidbConfig {
        spool_dir: dir.path().join("spool"),
        verifier: Some(keys.clone()),
        max_body: DEFAULT_MAX_BODY,
    })
    .unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("kcidb.sqlite3").display());
    let (submit_url, db) = rt.block_on(async {
        let db = KcidbDb::open(&db_url).await.unwrap();
        state.spawn_ingester(db.clone(), IngestLimits::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = kcidb_router(state, false);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}/kcidb/submit"), db)
    });
    Receiver {
        submit_url,
        keys,
        db,
        rt,
        _dir: dir,
    }
}

#[test]
fn the_results_are_valid_v5_3() {
    let submission = example::results();
    submission.validate().expect("valid");
    let json: serde_json::Value = serde_json::from_str(&submission.to_json()).unwrap();
    assert_eq!(json["version"]["major"], 5);
    assert_eq!(json["version"]["minor"], 3);
    assert_eq!(json["checkouts"].as_array().unwrap().len(), 1);
    assert_eq!(json["builds"].as_array().unwrap().len(), 1);
    assert_eq!(json["tests"].as_array().unwrap().len(), 2);
}

#[test]
fn the_submission_reaches_the_database() {
    let receiver = start_receiver();
    let token = receiver.keys.issue(example::ORIGIN, false, 1);
    let receipt = example::send(
        &example::results(),
        &receiver.submit_url,
        &token,
        Duration::from_secs(30),
    )
    .expect("submitted");
    assert_eq!(receipt.status, "processed", "{:?}", receipt.reply);

    let (counts, build, test) = receiver.rt.block_on(async {
        (
            receiver.db.counts().await.unwrap(),
            receiver.db.object("builds", "mylab:build-1").await.unwrap(),
            receiver.db.object("tests", "mylab:test-2").await.unwrap(),
        )
    });
    assert_eq!(
        (counts.checkouts, counts.builds, counts.tests),
        (1, 1, 2),
        "{counts:?}"
    );
    let build = build.expect("build stored");
    assert_eq!(build["checkout_id"], "mylab:checkout-1");
    assert_eq!(build["status"], "PASS");
    let test = test.expect("test stored");
    assert_eq!(test["path"], "kselftest.timers.nanosleep");
    assert_eq!(test["status"], "FAIL");

    // Sending it again changes nothing: KCIDB merges an object submitted twice.
    let again = example::send(
        &example::results(),
        &receiver.submit_url,
        &token,
        Duration::from_secs(30),
    )
    .expect("resubmitted");
    assert_eq!(again.status, "processed");
    let counts = receiver.rt.block_on(receiver.db.counts()).unwrap();
    assert_eq!((counts.checkouts, counts.builds, counts.tests), (1, 1, 2));
}

#[test]
fn a_token_of_another_origin_is_refused() {
    let receiver = start_receiver();
    let token = receiver.keys.issue("otherlab", false, 1);
    let err = example::send(
        &example::results(),
        &receiver.submit_url,
        &token,
        Duration::from_secs(30),
    )
    .expect_err("refused");
    match err {
        ClientError::Refused { status, .. } => assert_eq!(status, 403, "{err}"),
        other => panic!("expected a refusal, got {other}"),
    }
    let counts = receiver.rt.block_on(receiver.db.counts()).unwrap();
    assert_eq!(counts.total(), 0);
}
