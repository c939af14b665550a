//! `kernelci admin backup` / `admin restore` against real servers: SQLite in the data
//! directory (backed up while `kernelci up` runs), and PostgreSQL when `KERNELCI_TEST_PG`
//! names a server.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;

const NODES: usize = 3;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn kcidb_token(data_dir: &Path) -> String {
    let (code, out, err) = common::run(
        &[
            "kcidb",
            "token",
            "--origin",
            "lab",
            "--data-dir",
            path(data_dir),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

/// Create NODES nodes as the bootstrap administrator and one KCIDB checkout; returns the
/// first node as the API serves it.
async fn populate(base: &str, data_dir: &Path) -> Value {
    let admin = std::fs::read_to_string(data_dir.join("admin.token")).unwrap();
    let client = reqwest::Client::new();
    let mut first = None;
    for i in 0..NODES {
        let body =
            json!({"kind": "checkout", "name": format!("checkout-{i}"), "path": ["checkout"]});
        let resp = client
            .post(format!("{base}/latest/node"))
            .bearer_auth(admin.trim())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let node: Value = resp.json().await.unwrap();
        first.get_or_insert(node);
    }
    let token = kcidb_token(data_dir);
    let doc = json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": "lab:c1", "origin": "lab"}],
    });
    let resp = client
        .post(format!("{base}/kcidb/submit"))
        .bearer_auth(&token)
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut status = Value::Null;
    for _ in 0..200 {
        let resp = client
            .get(format!("{base}/kcidb/status?id={id}"))
            .bearer_auth(&token)
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
    let id = first.as_ref().unwrap()["id"].as_str().unwrap();
    get_node(base, id).await
}

async fn get_node(base: &str, id: &str) -> Value {
    let resp = reqwest::get(format!("{base}/latest/node/{id}"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

async fn node_count(base: &str) -> u64 {
    let resp = reqwest::get(format!("{base}/latest/count?kind=checkout"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    v.as_u64().unwrap_or_else(|| panic!("count: {v}"))
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("backup.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn sqlite_backup_while_running_and_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = common::start("up", &data, &[], &[]);
    let node = populate(&server.base, &data).await;

    // Backed up while the server runs.
    let dest = tmp.path().join("backup");
    let (code, out, err) = common::run(
        &["admin", "backup", path(&dest), "--data-dir", path(&data)],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rsync"), "{out}");
    assert!(dest.join("kernelci.db").is_file());
    assert!(dest.join("kcidb.db").is_file());
    let m = manifest(&dest);
    assert_eq!(m["backend"], "sqlite");
    assert_eq!(m["databases"]["kernelci.db"]["nodes"], NODES);
    assert_eq!(m["databases"]["kcidb.db"]["checkouts"], 1);
    drop(server);

    // A non-empty DEST is refused.
    let (code, _, err) = common::run(
        &["admin", "backup", path(&dest), "--data-dir", path(&data)],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("not empty"), "{err}");

    // Restored into a fresh data directory, the server sees the same data.
    let fresh = tmp.path().join("fresh");
    let (code, out, err) = common::run(
        &[
            "admin",
            "restore",
            path(&dest),
            "--data-dir",
            path(&fresh),
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["databases"], m["databases"]);
    let server = common::start("up", &fresh, &[], &[]);
    assert_eq!(node_count(&server.base).await, NODES as u64);
    let id = node["id"].as_str().unwrap();
    assert_eq!(get_node(&server.base, id).await, node);
    let url = format!("sqlite://{}?mode=ro", fresh.join("kcidb.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (checkouts,): (i64,) = sqlx::query_as("SELECT count(*) FROM checkouts")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(checkouts, 1);
    conn.close().await.unwrap();

    // Restoring over existing databases is refused, running server or not.
    let (code, _, err) = common::run(
        &["admin", "restore", path(&dest), "--data-dir", path(&fresh)],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("refusing"), "{err}");
    drop(server);
    let (code, _, err) = common::run(
        &["admin", "restore", path(&dest), "--data-dir", path(&fresh)],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("kernelci.db"), "{err}");

    // Not a backup; bad arguments.
    let (code, _, err) = common::run(
        &[
            "admin",
            "restore",
            path(tmp.path()),
            "--data-dir",
            path(&fresh),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("backup.json"), "{err}");
    let (code, _, _) = common::run(&["admin", "backup"], &[]);
    assert_eq!(code, 2);
}

/// Per-table row counts of schema public.
async fn pg_counts(url: &str) -> Vec<(String, i64)> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM public.\"{t}\""
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        out.push((t, n));
    }
    conn.close().await.unwrap();
    out
}

#[tokio::test]
async fn postgres_backup_and_restore() {
    let Some(base) = kernelci_tests::pg_server_url() else {
        eprintln!("skipped: set KERNELCI_TEST_PG=postgres://user@host:port/db to run");
        return;
    };
    let first = kernelci_tests::TestDb::postgres(&base).await;
    let second = kernelci_tests::TestDb::postgres(&base).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = common::start("up", &data, &["--database-url", &first.url], &[]);
    let node = populate(&server.base, &data).await;

    let dest = tmp.path().join("backup");
    let (code, out, err) = common::run(
        &[
            "admin",
            "backup",
            path(&dest),
            "--database-url",
            &first.url,
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["backend"], "postgres");
    assert!(dest.join("kernelci.pgdump").is_file());
    assert_eq!(
        manifest(&dest)["databases"]["kernelci.pgdump"]["nodes"],
        NODES
    );
    drop(server);

    let (code, _, err) = common::run(
        &[
            "admin",
            "restore",
            path(&dest),
            "--database-url",
            &second.url,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let restored = pg_counts(&second.url).await;
    assert!(!restored.is_empty());
    assert_eq!(restored, pg_counts(&first.url).await);

    let data2 = tmp.path().join("data2");
    let server = common::start("up", &data2, &["--database-url", &second.url], &[]);
    assert_eq!(node_count(&server.base).await, NODES as u64);
    let id = node["id"].as_str().unwrap();
    assert_eq!(get_node(&server.base, id).await, node);
    drop(server);

    // A database with tables is refused; so is a SQLite restore of a PostgreSQL backup.
    let (code, _, err) = common::run(
        &[
            "admin",
            "restore",
            path(&dest),
            "--database-url",
            &first.url,
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("refusing"), "{err}");
    let (code, _, err) = common::run(
        &[
            "admin",
            "restore",
            path(&dest),
            "--data-dir",
            path(&tmp.path().join("data3")),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--database-url"), "{err}");
    // `first` and `second` are dropped here (DROP DATABASE).
}
