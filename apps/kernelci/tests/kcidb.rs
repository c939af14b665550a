//! The KCIDB role in the real binary: `kcidb token`, `kcidb serve` (unprefixed) and
//! `kernelci up` (under /kcidb), on SQLite in the data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn token(data_dir: &std::path::Path, origin: &str) -> String {
    let dir = data_dir.to_str().unwrap();
    let (code, out, err) = common::run(
        &["kcidb", "token", "--origin", origin, "--data-dir", dir],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

fn submission(origin: &str) -> String {
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": format!("{origin}:c1"), "origin": origin}],
    })
    .to_string()
}

async fn submit_and_wait(client: &reqwest::Client, base: &str, token: &str) {
    let resp = client
        .post(format!("{base}/submit"))
        .bearer_auth(token)
        .body(submission("lab"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_string();
    let mut status = Value::Null;
    for _ in 0..100 {
        let resp = client
            .get(format!("{base}/status?id={id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        status = resp.json::<Value>().await.unwrap()["status"].clone();
        if status == "processed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "processed");
    // Another origin's objects are refused.
    let resp = client
        .post(format!("{base}/submit"))
        .bearer_auth(token)
        .body(submission("other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
}

#[tokio::test]
async fn up_mounts_kcidb_under_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let token = token(dir.path(), "lab");
    let server = common::start("up", dir.path(), &[], &[]);
    let client = reqwest::Client::new();
    submit_and_wait(&client, &format!("{}/kcidb", server.base), &token).await;
    let health = client
        .get(format!("{}/kcidb/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "OK");
    assert!(dir.path().join("kcidb-spool/archive").is_dir());
    assert!(dir.path().join("kcidb.db").is_file());
    // The Maestro API is still there.
    let resp = client
        .get(format!("{}/latest/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn kcidb_serve_alone_is_unprefixed() {
    let dir = tempfile::tempdir().unwrap();
    let token = token(dir.path(), "lab");
    let port = common::free_port();
    let mut child = Command::new(common::bin())
        .args([
            "kcidb",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("KERNELCI_DATABASE_URL")
        .env_remove("KERNELCI_KCIDB_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines.next().expect("kcidb serve exited").unwrap();
        if line.contains("listening on") {
            break;
        }
    }
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    submit_and_wait(&client, &base, &token).await;
    let resp = client
        .post(format!("{base}/kcidb/submit"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kcidb_commands_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, _, err) = common::run(
        &["kcidb", "token", "--origin", "Bad!", "--data-dir", d],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--origin"), "{err}");
    let (code, out, _) = common::run(
        &[
            "kcidb",
            "token",
            "--origin",
            "lab",
            "--admin",
            "--data-dir",
            d,
        ],
        &[("KERNELCI_KCIDB_SECRET", "s")],
    );
    assert_eq!(code, 0);
    let verifier = kernelci_kcidb_server::Verifier::new("s", None);
    assert!(verifier.verify(out.trim()).unwrap().admin);
    // An empty secret does not silently disable authentication.
    let (code, _, err) = common::run(
        &["kcidb", "serve", "--listen", "127.0.0.1:1", "--data-dir", d],
        &[("KERNELCI_KCIDB_SECRET", "")],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--kcidb-no-auth"), "{err}");
}
