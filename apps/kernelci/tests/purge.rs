//! Retention on a real database (SQLite, or PostgreSQL with KERNELCI_TEST_DATABASE_URL):
//! old rows of each kind removed in batches, new ones and what they depend on kept, the API
//! answering during a long purge, dry runs removing nothing, and `kernelci admin purge
//! --json` through the real binary (spool files by modification time, regression results).

use std::process::Command;
use std::time::Duration;

use kernelci_api::retention::{self, Kind, Purged, Retention};
use kernelci_model::time;
use kernelci_tests::{TestApp, TestDb};
use serde_json::{Value, json};

/// Runs `sql` (no binds: tests inline their own numbers) on the database at `url`.
async fn exec(url: &str, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("sqlite");
        sqlx::query(sql).execute(&pool).await.expect("exec");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("postgres");
        sqlx::query(sql).execute(&pool).await.expect("exec");
        pool.close().await;
    }
}

fn days_ago(days: i64) -> i64 {
    time::to_micros(&(time::now() - chrono::TimeDelta::days(days)))
}

fn settings(batch: u32) -> Retention {
    Retention {
        batch,
        pause: Duration::ZERO,
        ..Retention::default()
    }
}

async fn node(app: &TestApp, name: &str, kind: &str, parent: Option<&str>) -> String {
    let mut body = json!({"kind": kind, "name": name, "path": [name]});
    if let Some(p) = parent {
        body["parent"] = json!(p);
    }
    let (status, v) = app.post_admin("/node", &body).await;
    assert_eq!(status, 200, "POST /node {body}: {v}");
    v["id"].as_str().expect("id").to_string()
}

async fn node_exists(app: &TestApp, id: &str) -> bool {
    // Upstream answers a missing node with 200 and `null`.
    let (status, v) = app.get(&format!("/node/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    !v.is_null()
}

fn ids(list: &[&str]) -> String {
    list.iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn purge(app: &TestApp, kind: Kind, r: &Retention, dry: bool) -> Purged {
    retention::purge(&*app.store, kind, r, time::now(), dry)
        .await
        .expect("purge")
}

#[tokio::test]
async fn nodes_go_by_age_leaves_first_never_orphaning() {
    let app = TestApp::start().await;
    // An old tree: checkout -> kbuild -> two tests, all 200 days old.
    let c1 = node(&app, "c1", "checkout", None).await;
    let k1 = node(&app, "k1", "kbuild", Some(&c1)).await;
    let t1 = node(&app, "t1", "test", Some(&k1)).await;
    let t2 = node(&app, "t2", "test", Some(&k1)).await;
    // An old tree with a young test under it: the test keeps its ancestors.
    let c2 = node(&app, "c2", "checkout", None).await;
    let k2 = node(&app, "k2", "kbuild", Some(&c2)).await;
    let t3 = node(&app, "t3", "test", Some(&k2)).await;
    let young = node(&app, "t4", "test", Some(&k2)).await;
    // A young tree.
    let c3 = node(&app, "c3", "checkout", None).await;
    let k3 = node(&app, "k3", "kbuild", Some(&c3)).await;
    let old = [&c1, &k1, &t1, &t2, &c2, &k2, &t3].map(String::as_str);
    exec(
        &app.db.url,
        &format!(
            "UPDATE nodes SET created = {} WHERE id IN ({})",
            days_ago(200),
            ids(&old)
        ),
    )
    .await;
    let r = settings(2);

    let dry = purge(&app, Kind::Nodes, &r, true).await;
    assert_eq!(
        dry,
        Purged {
            removed: 4,
            batches: 0
        },
        "k1, t1, t2, t3"
    );
    assert!(node_exists(&app, &t1).await, "a dry run removes nothing");

    let done = purge(&app, Kind::Nodes, &r, false).await;
    // Batch 1: t1, t2 (leaves); batch 2: t3 and k1 (a leaf now); then nothing.
    assert_eq!(
        done,
        Purged {
            removed: 4,
            batches: 2
        }
    );
    for gone in [&k1, &t1, &t2, &t3] {
        assert!(!node_exists(&app, gone).await, "{gone} purged");
    }
    for kept in [&c1, &c2, &k2, &young, &c3, &k3] {
        assert!(node_exists(&app, kept).await, "{kept} kept");
    }
    assert_eq!(
        purge(&app, Kind::Nodes, &r, false).await,
        Purged::default(),
        "a second round finds nothing"
    );
    // 0 days: kept forever.
    let forever = Retention {
        nodes: None,
        ..settings(2)
    };
    exec(
        &app.db.url,
        &format!("UPDATE nodes SET created = {}", days_ago(400)),
    )
    .await;
    assert_eq!(
        purge(&app, Kind::Nodes, &forever, false).await,
        Purged::default()
    );
}

#[tokio::test]
async fn events_and_telemetry_go_by_age_and_cursors_never_skip() {
    let app = TestApp::start().await;
    for i in 0..5 {
        let (status, v) = app
            .send_json(
                "POST",
                "/publish/chan",
                Some(&app.admin_token),
                &json!({"data": {"i": i}}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    // A subscriber whose cursor is at the 5th event; 2 more events come after it.
    let (status, sub) = app
        .send_json(
            "POST",
            "/subscribe/chan",
            Some(&app.admin_token),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{sub}");
    for i in 5..7 {
        let (status, _) = app
            .send_json(
                "POST",
                "/publish/chan",
                Some(&app.admin_token),
                &json!({"data": {"i": i}}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let events_before = app.store.last_event_seq().await.expect("seq");
    exec(
        &app.db.url,
        &format!("UPDATE events SET ts = {}", days_ago(10)),
    )
    .await;
    let r = settings(2);
    assert_eq!(
        purge(&app, Kind::Events, &r, true).await.removed,
        5,
        "only events at or below the lowest cursor"
    );
    let done = purge(&app, Kind::Events, &r, false).await;
    assert_eq!(
        done,
        Purged {
            removed: 5,
            batches: 3
        }
    );
    let left = app.store.events_after(0, 100).await.expect("events");
    let seqs: Vec<i64> = left.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [events_before - 1, events_before]);
    // The subscriber still gets both, in order.
    let id = sub["id"].as_i64().expect("id");
    for i in 5..7 {
        let (status, v) = app
            .get(&format!("/listen/{id}"), Some(&app.admin_token))
            .await;
        assert_eq!(status, 200, "{v}");
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap_or("{}"))
            .unwrap_or_else(|_| v["data"].clone());
        assert_eq!(data["data"]["i"], json!(i), "{v}");
    }

    // Telemetry: 3 old, 1 new.
    let old = time::format(&(time::now() - chrono::TimeDelta::days(20)));
    let body = json!([
        {"kind": "runtime_error", "runtime": "a", "ts": old},
        {"kind": "runtime_error", "runtime": "a", "ts": old},
        {"kind": "runtime_error", "runtime": "a", "ts": old},
        {"kind": "runtime_error", "runtime": "a"},
    ]);
    let (status, v) = app
        .send_json("POST", "/telemetry", Some(&app.admin_token), &body)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(purge(&app, Kind::Telemetry, &r, true).await.removed, 3);
    let done = purge(&app, Kind::Telemetry, &r, false).await;
    assert_eq!(
        done,
        Purged {
            removed: 3,
            batches: 2
        }
    );
    let (_, page) = app.get("/telemetry", None).await;
    assert_eq!(page["total"], json!(1), "{page}");
}

#[tokio::test]
async fn the_api_answers_during_a_long_purge() {
    let app = TestApp::start().await;
    let url = app.db.url.clone();
    let n = 20_000;
    let ts = days_ago(30);
    let insert = if url.starts_with("sqlite:") {
        format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
             INSERT INTO events (id, ts, channel, owner, data, envelope) \
             SELECT 'old' || i, {ts}, 'chan', NULL, '{{}}', '{{}}' FROM s"
        )
    } else {
        format!(
            "INSERT INTO events (id, ts, channel, owner, data, envelope) \
             SELECT 'old' || i, {ts}, 'chan', NULL, '{{}}'::jsonb, '{{}}' \
             FROM generate_series(1, {n}) AS i"
        )
    };
    exec(&url, &insert).await;
    let r = Retention {
        batch: 100,
        pause: Duration::from_millis(2),
        ..Retention::default()
    };
    let store = app.store.clone();
    let task = tokio::spawn(async move {
        retention::purge(&*store, Kind::Events, &r, time::now(), false)
            .await
            .expect("purge")
    });
    // Reads and writes while it runs.
    let mut during = 0;
    let mut created = 0;
    while !task.is_finished() {
        let (status, v) = app.get("/nodes?limit=1", None).await;
        assert_eq!(status, 200, "{v}");
        node(&app, &format!("n{created}"), "checkout", None).await;
        created += 1;
        if !task.is_finished() {
            during += 1;
        }
    }
    let done = task.await.expect("task");
    assert_eq!(done.removed, n);
    assert_eq!(done.batches, n / 100);
    assert!(
        during > 0,
        "some requests were answered while the purge ran"
    );
    // The node events written meanwhile are new: kept.
    let left = app.store.events_after(0, 100_000).await.expect("events");
    assert_eq!(left.len(), created);
}

#[tokio::test]
async fn admin_purge_json_through_the_binary() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path();
    let sqlite = db.url.starts_with("sqlite:");
    // Maestro: open the store where the binary will look for it.
    let maestro_url = if sqlite {
        format!("sqlite://{}", data.join("kernelci.db").display())
    } else {
        db.url.clone()
    };
    let store = kernelci_store::open(&maestro_url).await.expect("store");
    drop(store);
    exec(
        &maestro_url,
        &format!(
            "INSERT INTO telemetry (id, ts, kind, runtime, is_infra_error, retry, extra) VALUES \
             ('a', {old}, 'runtime_error', 'r', 0, 0, '{{}}'), \
             ('b', {old}, 'runtime_error', 'r', 0, 0, '{{}}'), \
             ('c', {new}, 'runtime_error', 'r', 0, 0, '{{}}')",
            old = days_ago(30),
            new = days_ago(1)
        )
        .replace(
            ", 0, 0, '{}')",
            if sqlite {
                ", 0, 0, '{}')"
            } else {
                ", FALSE, 0, '{}')"
            },
        ),
    )
    .await;
    // KCIDB: regression results by checkout time.
    let kcidb_url = if sqlite {
        format!("sqlite://{}", data.join("kcidb.db").display())
    } else {
        db.url.clone()
    };
    let kdb = kernelci_kcidb_server::KcidbDb::open(&kcidb_url)
        .await
        .expect("kcidb");
    drop(kdb);
    let t = |days: i64| {
        (chrono::Utc::now() - chrono::TimeDelta::days(days))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    };
    let rows: Vec<String> = [("o1", 400), ("o2", 300), ("o3", 200), ("o4", 10)]
        .iter()
        .map(|(id, days)| {
            format!(
                "('i', '{id}', 'c', 'g', '{}', 'FAIL', 'kernel', 'o', 'l', 'p')",
                t(*days)
            )
        })
        .collect();
    exec(
        &kcidb_url,
        &format!(
            "INSERT INTO regress_results (identity, object_id, checkout_id, git_commit_hash, \
             checkout_time, status, class, origin, lab, platform) VALUES {}",
            rows.join(", ")
        ),
    )
    .await;
    // Spool: one archived file 40 days old, a failed one (and its reason) 31 days old, one
    // archived file new.
    let spool = kernelci_kcidb_server::Spool::open(data.join("kcidb-spool")).expect("spool");
    let now = std::time::SystemTime::now();
    let day = Duration::from_secs(86_400);
    for (path, age) in [
        (spool.archive_path("submission-a.json"), 40),
        (spool.failed_path("submission-b.json"), 31),
        (spool.failed_path("submission-b.json.reason"), 31),
        (spool.archive_path("submission-c.json"), 1),
    ] {
        std::fs::write(&path, b"{}").expect("write");
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_modified(now - day * age).expect("mtime");
    }

    let run = |extra: &[&str]| -> Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kernelci"));
        cmd.args(["admin", "purge", "--json", "--purge-batch", "2"])
            .args(["--purge-pause-ms", "0", "--data-dir"])
            .arg(data)
            .args(extra)
            .env_remove("KERNELCI_DATABASE_URL")
            .env_remove("KERNELCI_KCIDB_SPOOL");
        if !sqlite {
            cmd.args(["--database-url", &db.url]);
        }
        let out = cmd.output().expect("run kernelci");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let counts = |v: &Value| -> Vec<(String, u64, u64)> {
        let mut out: Vec<_> = v["purged"]
            .as_object()
            .expect("purged")
            .iter()
            .map(|(k, c)| {
                (
                    k.clone(),
                    c["removed"].as_u64().expect("removed"),
                    c["batches"].as_u64().expect("batches"),
                )
            })
            .collect();
        out.sort();
        out
    };
    let expected = |batches: bool| {
        let b = |n: u64| if batches { n } else { 0 };
        vec![
            ("events".to_string(), 0, 0),
            ("nodes".to_string(), 0, 0),
            ("regress_results".to_string(), 3, b(2)),
            ("spool".to_string(), 3, b(2)),
            ("telemetry".to_string(), 2, b(1)),
        ]
    };
    let dry = run(&["--dry-run"]);
    assert_eq!(dry["dry_run"], json!(true));
    assert_eq!(counts(&dry), expected(false));
    assert!(spool.archive_path("submission-a.json").exists(), "dry run");
    let done = run(&[]);
    assert_eq!(done["dry_run"], json!(false));
    assert_eq!(counts(&done), expected(true));
    assert!(!spool.archive_path("submission-a.json").exists());
    assert!(!spool.failed_path("submission-b.json.reason").exists());
    assert!(spool.archive_path("submission-c.json").exists());
    let again = run(&[]);
    assert!(
        counts(&again).iter().all(|(_, removed, _)| *removed == 0),
        "{again}"
    );
}
