//! The roll-up the batch load keeps (`test_rollup`: tests per build, kind and status) equals
//! a `COUNT(*)` over the `tests` table after every kind of load: new objects, re-submissions
//! that change a status, a path (boot ↔ test) or a build, merges that leave a status alone,
//! duplicates within a batch, identical re-loads, and the migration of a database made
//! before the roll-up. On SQLite, or PostgreSQL with `KERNELCI_TEST_DATABASE_URL`.

use std::collections::HashMap;

use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::trees::checkout_counts;
use kernelci_kcidb::query::{CheckoutCounts, StatusCounts};
use kernelci_tests::TestDb;
use serde_json::{Value, json};

type Row = (String, String, String, i64);

const ROLLUP: &str = "SELECT build_id, kind, status, n FROM test_rollup";
const COUNTED: &str = "SELECT build_id, CASE WHEN path = 'boot' OR substr(path, 1, 5) = 'boot.' \
    THEN 'boot' ELSE 'test' END, COALESCE(status, ''), COUNT(*) FROM tests GROUP BY 1, 2, 3";

async fn rows(db: &KcidbDb, sql: &'static str) -> Vec<Row> {
    let mut out: Vec<Row> = match db {
        KcidbDb::Sqlite(pool) => sqlx::query_as(sql)
            .fetch_all(pool)
            .await
            .expect("test step"),
        KcidbDb::Postgres(pool) => sqlx::query_as(sql)
            .fetch_all(pool)
            .await
            .expect("test step"),
    };
    out.sort();
    out
}

async fn execute(db: &KcidbDb, sql: &'static str) {
    match db {
        KcidbDb::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        KcidbDb::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
    .expect("test step");
}

/// The roll-up equals the count, and the checkouts' counts equal a count over the
/// stored tests joined with their builds.
async fn assert_consistent(db: &KcidbDb, step: &str) {
    let rollup = rows(db, ROLLUP).await;
    assert_eq!(rollup, rows(db, COUNTED).await, "after {step}");
    assert!(rollup.iter().all(|r| r.3 > 0), "after {step}: {rollup:?}");
    let ids: Vec<String> = ["c1", "c2", "c3"]
        .iter()
        .map(|s| format!("t:{s}"))
        .collect();
    let got = checkout_counts(db, &ids).await.expect("test step");
    let mut want: HashMap<String, CheckoutCounts> = HashMap::new();
    for id in &ids {
        for t in ["builds", "tests"] {
            let sql = format!("SELECT CAST(data AS TEXT) FROM {t}");
            let docs: Vec<(String,)> = match db {
                KcidbDb::Sqlite(pool) => sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await
                    .expect("test step"),
                KcidbDb::Postgres(pool) => sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await
                    .expect("test step"),
            };
            for (doc,) in docs {
                let v: Value = serde_json::from_str(&doc).expect("test step");
                let status = v["status"]
                    .as_str()
                    .and_then(|s| serde_json::from_value(json!(s)).ok());
                let entry = want.entry(id.clone()).or_default();
                let counts: &mut StatusCounts = if t == "builds" {
                    if v["checkout_id"] != json!(id) {
                        continue;
                    }
                    &mut entry.builds
                } else {
                    let build = v["build_id"].as_str().expect("test step");
                    let sql = format!("SELECT checkout_id FROM builds WHERE id = '{build}'");
                    let owner: Option<(String,)> = match db {
                        KcidbDb::Sqlite(pool) => sqlx::query_as(sqlx::AssertSqlSafe(sql))
                            .fetch_optional(pool)
                            .await
                            .expect("test step"),
                        KcidbDb::Postgres(pool) => sqlx::query_as(sqlx::AssertSqlSafe(sql))
                            .fetch_optional(pool)
                            .await
                            .expect("test step"),
                    };
                    if owner.map(|o| o.0).as_deref() != Some(id) {
                        continue;
                    }
                    if kernelci_kcidb::query::is_boot_path(v["path"].as_str()) {
                        &mut entry.boots
                    } else {
                        &mut entry.tests
                    }
                };
                counts.add(status, 1);
            }
        }
    }
    for id in &ids {
        assert_eq!(
            got.get(id).copied().unwrap_or_default(),
            want.get(id).copied().unwrap_or_default(),
            "checkout {id} after {step}"
        );
    }
}

async fn load(db: &KcidbDb, doc: Value) {
    let mut doc = doc;
    doc["version"] = json!({"major": 5, "minor": 3});
    let sub = kernelci_kcidb::load(doc.to_string().as_bytes()).expect("test step");
    db.load(sub).await.expect("test step");
}

fn test(id: &str, build: &str, path: &str, status: Option<&str>) -> Value {
    let mut t = json!({"id": format!("t:{id}"), "origin": "t", "build_id": format!("t:{build}"),
        "path": path});
    if let Some(s) = status {
        t["status"] = json!(s);
    }
    t
}

#[tokio::test]
async fn rollup_follows_every_load() {
    let testdb = TestDb::new().await;
    let db = KcidbDb::open(&testdb.url).await.expect("test step");
    assert_consistent(&db, "open").await;
    let checkouts: Vec<Value> = ["c1", "c2", "c3"]
        .iter()
        .map(|c| json!({"id": format!("t:{c}"), "origin": "t", "tree_name": "x"}))
        .collect();
    let builds = json!([
        {"id": "t:b1", "origin": "t", "checkout_id": "t:c1", "status": "PASS"},
        {"id": "t:b2", "origin": "t", "checkout_id": "t:c1", "status": "FAIL"},
        {"id": "t:b3", "origin": "t", "checkout_id": "t:c2"},
    ]);
    let mut tests = Vec::new();
    for i in 0..60 {
        let build = ["b1", "b2", "b3", "b4"][i % 4];
        let path = match i % 5 {
            0 => "boot".to_string(),
            1 => format!("boot.login{i}"),
            2 => format!("booting.{i}"),
            _ => format!("suite.case{i}"),
        };
        let status = [
            Some("PASS"),
            Some("FAIL"),
            None,
            Some("SKIP"),
            Some("ERROR"),
        ][i % 5];
        tests.push(test(&format!("x{i}"), build, &path, status));
    }
    // b4 does not exist: its tests count for no checkout until it comes.
    load(
        &db,
        json!({"checkouts": checkouts, "builds": builds, "tests": tests}),
    )
    .await;
    assert_consistent(&db, "first load").await;

    // Identical again: nothing is written, nothing moves.
    load(&db, json!({"tests": tests})).await;
    assert_consistent(&db, "identical re-load").await;

    // Status changes, a status appearing, path moving boot <-> test, a test moving to
    // another build, and a merge without status (keeps the stored one); duplicates within
    // the batch merge first (the later status wins).
    let changes = json!([
        test("x0", "b1", "boot", Some("FAIL")),
        test("x2", "b3", "booting.2", Some("PASS")),
        test("x3", "b4", "boot.moved", Some("SKIP")),
        test("x5", "b2", "suite.case5", Some("MISS")),
        {"id": "t:x7", "origin": "t", "build_id": "t:b4", "path": "suite.case7"},
        test("x8", "b1", "suite.case8", Some("PASS")),
        test("x8", "b1", "suite.case8", Some("DONE")),
        test("new1", "b2", "boot", None),
    ]);
    load(&db, json!({"tests": changes})).await;
    assert_consistent(&db, "changed statuses").await;

    // The missing build arrives, and a build moves to another checkout.
    load(
        &db,
        json!({"builds": [
            {"id": "t:b4", "origin": "t", "checkout_id": "t:c3", "status": "ERROR"},
            {"id": "t:b3", "origin": "t", "checkout_id": "t:c3", "status": "PASS"},
        ]}),
    )
    .await;
    assert_consistent(&db, "builds moved").await;

    // Every test of a build leaves it: its roll-up rows go.
    let moved: Vec<Value> = tests
        .iter()
        .filter(|t| t["build_id"] == "t:b1")
        .map(|t| {
            let mut t = t.clone();
            t["build_id"] = json!("t:b2");
            t
        })
        .collect();
    load(&db, json!({"tests": moved})).await;
    assert_consistent(&db, "a build emptied").await;
    let rollup = rows(&db, ROLLUP).await;
    assert!(rollup.iter().all(|r| r.0 != "t:b1"), "{rollup:?}");

    // A database from before the roll-up: the migration counts what is there.
    execute(&db, "DROP TABLE test_rollup").await;
    drop(db);
    let db = KcidbDb::open(&testdb.url).await.expect("test step");
    assert_consistent(&db, "migration").await;
    // And keeps counting after it.
    load(
        &db,
        json!({"tests": [test("x9", "b2", "boot", Some("PASS")), test("m1", "b3", "x", None)]}),
    )
    .await;
    assert_consistent(&db, "load after migration").await;
}
