//! `kernelci admin import-maestro` and `admin import-kcidb` on exports generated here in the
//! upstream formats (mongoexport Extended JSON; KCIDB PostgreSQL schema 5.3; KCIDB JSON),
//! run through the real binary and checked through the real API. The Maestro test runs on
//! SQLite or, with KERNELCI_TEST_DATABASE_URL, PostgreSQL; the upstream KCIDB database test
//! needs PostgreSQL; the KCIDB JSON test always runs on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use kernelci_tests::{TestDb, pg_base_url};
use serde_json::{Value, json};
use sqlx::Connection;

const CHECKOUT: &str = "65bb6bf4e9d9d2b0a1c2d3e1";
const KBUILD: &str = "65bb6bf4e9d9d2b0a1c2d3e2";
const TEST: &str = "65bb6bf4e9d9d2b0a1c2d3e3";
const GROUP_A: &str = "65aa00000000000000000001";
const GROUP_B: &str = "65aa00000000000000000002";
const ALICE: &str = "65cc00000000000000000001";
const BOB: &str = "65cc00000000000000000002";
const PASSWORD: &str = "correct horse battery staple";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn lines(docs: &[Value]) -> String {
    docs.iter().map(|d| format!("{d}\n")).collect()
}

/// A checkout -> kbuild -> test tree as mongoexport writes it (relaxed and canonical forms).
fn node_docs() -> Vec<Value> {
    vec![
        json!({"_id": {"$oid": CHECKOUT}, "kind": "checkout", "name": "checkout",
               "path": ["checkout"], "group": null, "parent": null, "state": "done",
               "result": "pass", "artifacts": {"tarball": "https://storage.example.org/linux.tar.gz"},
               "data": {"kernel_revision": {"tree": "mainline", "branch": "master",
                   "url": "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
                   "commit": "2a987e65025e2b79c6d453b78cb5985ac6e5eb26",
                   "version": {"version": {"$numberInt": "6"}, "patchlevel": {"$numberLong": "7"}}}},
               "debug": {}, "jobfilter": null, "platform_filter": [],
               "created": {"$date": "2024-02-01T09:58:28.479Z"},
               "updated": {"$date": {"$numberLong": "1706781600000"}},
               "timeout": {"$date": "2024-02-01T15:58:28.479Z"}, "holdoff": null,
               "owner": "alice", "submitter": "service:pipeline", "treeid": "tree-1",
               "user_groups": [], "processed_by_kcidb_bridge": true, "retry_counter": 0}),
        // An older document: redundant `id`, no processed_by_kcidb_bridge/retry_counter.
        json!({"_id": {"$oid": KBUILD}, "id": {"$oid": KBUILD}, "kind": "kbuild",
               "name": "kbuild-gcc-12-x86", "path": ["checkout", "kbuild-gcc-12-x86"],
               "parent": {"$oid": CHECKOUT}, "state": "done", "result": "pass",
               "artifacts": null, "data": {"arch": "x86_64", "defconfig": "x86_64_defconfig",
               "compiler": "gcc-12", "regression": {"$oid": TEST}},
               "created": {"$date": "2024-02-01T10:00:00Z"},
               "updated": {"$date": "2024-02-01T10:30:00.5Z"},
               "timeout": {"$date": "2024-02-01T16:00:00Z"},
               "owner": "alice", "treeid": "tree-1", "user_groups": ["kernelci"]}),
        json!({"_id": {"$oid": TEST}, "kind": "test", "name": "baseline", "group": "baseline",
               "path": ["checkout", "kbuild-gcc-12-x86", "baseline"],
               "parent": {"$oid": KBUILD}, "state": "done", "result": "fail",
               "data": {"platform": "qemu-x86", "runtime": "lava-x",
                        "misc": {"measurement": {"$numberDouble": "1.5"}}},
               "created": {"$date": "2024-02-01T11:00:00Z"},
               "updated": {"$date": "2024-02-01T11:05:00Z"},
               "timeout": {"$date": "2024-02-01T17:00:00Z"},
               "holdoff": {"$date": "2024-02-01T11:10:00Z"},
               "owner": "bob", "treeid": "tree-1", "retry_counter": {"$numberInt": "2"}}),
    ]
}

fn group_docs() -> Vec<Value> {
    vec![
        json!({"_id": {"$oid": GROUP_A}, "name": "kernelci"}),
        json!({"_id": {"$oid": GROUP_B}, "name": "runtime:lava-x:node-editor"}),
    ]
}

fn user_docs(hash: &str) -> Vec<Value> {
    vec![
        json!({"_id": {"$oid": ALICE}, "email": "alice@example.org", "hashed_password": hash,
               "is_active": true, "is_superuser": true, "is_verified": true, "username": "alice",
               "groups": [{"_id": {"$oid": GROUP_A}, "name": "kernelci"}]}),
        json!({"_id": {"$oid": BOB}, "email": "bob@example.org", "hashed_password": hash,
               "is_active": true, "is_superuser": false, "is_verified": true, "username": "bob",
               "groups": [{"$ref": "usergroup", "$id": {"$oid": GROUP_B}}]}),
    ]
}

fn import(args: &[&str]) -> (i32, Value, String) {
    let (code, out, err) = common::run(args, &[]);
    let v = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    (code, v, err)
}

#[tokio::test]
async fn maestro_export_imports_idempotently_and_logs_in() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = TestDb::new().await;
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    assert!(hash.starts_with("$2b$"));
    let groups = tmp.path().join("usergroup.json");
    let users = tmp.path().join("user.json");
    let nodes = tmp.path().join("node.json");
    std::fs::write(&groups, lines(&group_docs())).unwrap();
    // The user collection in the --jsonArray form.
    std::fs::write(&users, Value::Array(user_docs(&hash)).to_string()).unwrap();
    std::fs::write(&nodes, lines(&node_docs())).unwrap();
    let base = [
        "admin",
        "--data-dir",
        s(&data),
        "--database-url",
        &db.url,
        "import-maestro",
        "--json",
    ];
    // Collections told from content, given in any order.
    let mut args = base.to_vec();
    args.extend([s(&nodes), s(&users), s(&groups)]);
    let (code, first, err) = import(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first["groups"]["inserted"], 2, "{first}");
    assert_eq!(first["users"]["inserted"], 2, "{first}");
    assert_eq!(first["nodes"]["inserted"], 3, "{first}");

    // Idempotent: everything is already there.
    let mut args = base.to_vec();
    args.extend([
        "--groups",
        s(&groups),
        "--users",
        s(&users),
        "--nodes",
        s(&nodes),
    ]);
    let (code, again, err) = import(&args);
    assert_eq!(code, 0, "{err}");
    for c in ["groups", "users", "nodes"] {
        assert_eq!(again[c]["inserted"], 0, "{again}");
        assert_eq!(again[c]["updated"], 0, "{again}");
        assert_eq!(again[c]["unchanged"], first[c]["read"], "{again}");
    }

    // A node changed upstream since: replaced on the next run (delta sync).
    let mut changed = node_docs();
    changed[2]["result"] = json!("pass");
    let changed_file = tmp.path().join("node2.json");
    std::fs::write(&changed_file, lines(&changed)).unwrap();
    let mut args = base.to_vec();
    args.extend(["--nodes", s(&changed_file)]);
    let (code, delta, err) = import(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(delta["nodes"]["updated"], 1, "{delta}");
    assert_eq!(delta["nodes"]["unchanged"], 2, "{delta}");

    // A malformed line: a clear error naming the file and line; what came before is kept.
    let bad = tmp.path().join("bad.json");
    let new_id = "65bb6bf4e9d9d2b0a1c2d3f0";
    let mut extra = node_docs()[0].clone();
    extra["_id"] = json!({"$oid": new_id});
    std::fs::write(
        &bad,
        format!("{extra}\n{{\"_id\": {{\"$oid\": \"65bb6bf4e9d9d2b0a1c2d3f1\"}}, \"kind\": \n"),
    )
    .unwrap();
    let mut args = base.to_vec();
    args.extend(["--nodes", s(&bad)]);
    let (code, _, err) = import(&args);
    assert_ne!(code, 0);
    assert!(err.contains("bad.json: line 2: not JSON"), "{err}");
    // A bad field: named too.
    let mut wrong = node_docs()[1].clone();
    wrong["_id"] = json!({"$oid": "65bb6bf4e9d9d2b0a1c2d3f2"});
    wrong["state"] = json!("finished");
    std::fs::write(&bad, format!("\n{wrong}\n")).unwrap();
    let (code, _, err) = import(&args);
    assert_ne!(code, 0);
    assert!(
        err.contains("bad.json: line 2: state: unknown \"finished\""),
        "{err}"
    );
    // --skip-invalid counts and lists it instead.
    args.push("--skip-invalid");
    let (code, skipped, err) = import(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(skipped["nodes"]["invalid"], 1, "{skipped}");
    assert!(err.contains("skipped: "), "{err}");

    // The real API serves the imported data.
    // Imported history is older than the default node retention (180 days): keep it.
    let extra_args = [
        "--database-url",
        db.url.as_str(),
        "--retain-nodes-days",
        "0",
    ];
    let server = common::start("api", &data, &extra_args, &[]);
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{}{path}", server.base);
        async move {
            let resp = client.get(url).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let checkout = get(format!("/latest/node/{CHECKOUT}")).await;
    assert_eq!(checkout["id"], CHECKOUT);
    assert_eq!(checkout["created"], "2024-02-01T09:58:28.479000");
    assert_eq!(checkout["updated"], "2024-02-01T10:00:00");
    assert_eq!(checkout["processed_by_kcidb_bridge"], true);
    assert_eq!(
        checkout["data"]["kernel_revision"]["version"],
        json!({"version": 6, "patchlevel": 7})
    );
    assert_eq!(
        checkout["artifacts"]["tarball"],
        "https://storage.example.org/linux.tar.gz"
    );
    let kbuild = get(format!("/latest/node/{KBUILD}")).await;
    assert_eq!(kbuild["parent"], CHECKOUT);
    assert_eq!(kbuild["artifacts"], Value::Null);
    assert_eq!(kbuild["data"]["regression"], TEST);
    assert_eq!(kbuild["retry_counter"], 0);
    assert_eq!(kbuild["updated"], "2024-02-01T10:30:00.500000");
    let test = get(format!("/latest/node/{TEST}")).await;
    assert_eq!(test["parent"], KBUILD);
    assert_eq!(test["result"], "pass");
    assert_eq!(test["retry_counter"], 2);
    assert_eq!(test["holdoff"], "2024-02-01T11:10:00");
    assert_eq!(test["data"]["misc"]["measurement"], 1.5);
    let count = get("/latest/count?treeid=tree-1".into()).await;
    assert_eq!(count, 4, "three nodes plus the one before the bad line");
    // No events were generated for the history.
    let events = get("/latest/events?kind=checkout".into()).await;
    assert_eq!(events, json!([]), "{events}");

    // Users log in with their upstream passwords.
    let login = |user: &'static str, password: &'static str| {
        let client = client.clone();
        let url = format!("{}/latest/user/login", server.base);
        async move {
            client
                .post(url)
                .form(&[("username", user), ("password", password)])
                .send()
                .await
                .unwrap()
        }
    };
    let resp = login("alice", PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 200);
    let token = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let me: Value = client
        .get(format!("{}/latest/whoami", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], ALICE);
    assert_eq!(me["is_superuser"], true);
    assert_eq!(me["groups"], json!([{"id": GROUP_A, "name": "kernelci"}]));
    let resp = login("bob@example.org", PASSWORD).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_ne!(login("bob", "wrong").await.status().as_u16(), 200);
    let bob: Value = client
        .get(format!("{}/latest/user/{BOB}", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        bob["groups"],
        json!([{"id": GROUP_B, "name": "runtime:lava-x:node-editor"}])
    );
    drop(server);

    // After logins (bcrypt rehashed to argon2id here), a re-run keeps the users as stored.
    let mut args = base.to_vec();
    args.extend(["--users", s(&users)]);
    let (code, after, err) = import(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(after["users"]["unchanged"], 2, "{after}");

    // A username taken by another id is a conflict: listed, exit 1.
    let mut clash = user_docs(&hash)[0].clone();
    clash["_id"] = json!({"$oid": "65cc00000000000000000009"});
    clash["email"] = json!("other@example.org");
    let clash_file = tmp.path().join("clash.json");
    std::fs::write(&clash_file, lines(&[clash])).unwrap();
    let mut args = base.to_vec();
    args.extend(["--users", s(&clash_file)]);
    let (code, out, err) = import(&args);
    assert_eq!(code, 1);
    assert_eq!(out["users"]["conflicts"], 1, "{out}");
    assert!(
        err.contains("conflict: ") && err.contains("username"),
        "{err}"
    );
}

/// A KCIDB v5.3 submission with one object of each type.
fn kcidb_doc(origin: &str) -> Value {
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": format!("{origin}:c1"), "origin": origin, "tree_name": "mainline",
                       "git_commit_hash": "2a987e65025e2b79c6d453b78cb5985ac6e5eb26",
                       "start_time": "2024-02-01T09:58:28+00:00", "valid": true}],
        "builds": [{"id": format!("{origin}:b1"), "checkout_id": format!("{origin}:c1"),
                    "origin": origin, "architecture": "x86_64", "status": "PASS",
                    "duration": 120.5, "misc": {"lab": "x"}}],
        "tests": [{"id": format!("{origin}:t1"), "build_id": format!("{origin}:b1"),
                   "origin": origin, "path": "baseline.login", "status": "FAIL",
                   "environment": {"comment": "qemu", "compatible": ["qemu,x86"],
                                   "misc": {"platform": "qemu-x86"}},
                   "number": {"value": 1.5, "unit": "s", "prefix": "metric"}},
                  {"id": format!("{origin}:t2"), "build_id": format!("{origin}:b1"),
                   "origin": origin, "path": "baseline", "status": "PASS"}],
        "issues": [{"id": format!("{origin}:i1"), "version": 1, "origin": origin,
                    "comment": "oops", "culprit": {"code": true, "tool": false}},
                   {"id": format!("{origin}:i1"), "version": 2, "origin": origin,
                    "comment": "oops, again"}],
        "incidents": [{"id": format!("{origin}:n1"), "origin": origin,
                       "issue_id": format!("{origin}:i1"), "issue_version": 2,
                       "test_id": format!("{origin}:t1"), "present": true}],
    })
}

fn counts(v: &Value) -> Vec<(String, u64, u64, u64)> {
    v["tables"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t["source"].as_u64().unwrap(),
                t["present"].as_u64().unwrap(),
                t["written"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn kcidb_json_files_import_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("submission.json");
    std::fs::write(&file, kcidb_doc("lab").to_string()).unwrap();
    // A v4 document too (upgraded on the way: `valid` becomes a status).
    let v4 = json!({"version": {"major": 4, "minor": 0},
                    "builds": [{"id": "old:b1", "checkout_id": "old:c1", "origin": "old",
                                "valid": false}]});
    let old = tmp.path().join("old.json");
    std::fs::write(&old, v4.to_string()).unwrap();
    let args = [
        "admin",
        "--data-dir",
        s(&data),
        "import-kcidb",
        "--json",
        "--batch",
        "2",
        s(&file),
        s(&old),
    ];
    let (code, first, err) = import(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first["ok"], true);
    let c = counts(&first);
    let get = |name: &str| c.iter().find(|x| x.0 == name).unwrap().clone();
    assert_eq!(get("checkouts"), ("checkouts".into(), 1, 1, 1));
    assert_eq!(get("builds"), ("builds".into(), 2, 2, 2));
    assert_eq!(get("tests"), ("tests".into(), 2, 2, 2));
    assert_eq!(get("issues"), ("issues".into(), 2, 2, 2));
    assert_eq!(get("incidents"), ("incidents".into(), 1, 1, 1));
    // Again: same counts, nothing written.
    let (code, again, err) = import(&args);
    assert_eq!(code, 0, "{err}");
    for (_, source, present, written) in counts(&again) {
        assert_eq!(source, present);
        assert_eq!(written, 0, "{again}");
    }
    // The stored objects.
    let db =
        kernelci_kcidb::db::KcidbDb::open(&format!("sqlite://{}", data.join("kcidb.db").display()))
            .await
            .unwrap();
    let test = db.object("tests", "lab:t1").await.unwrap().unwrap();
    assert_eq!(test["environment"]["compatible"], json!(["qemu,x86"]));
    assert_eq!(test["number"]["value"], 1.5);
    let build = db.object("builds", "old:b1").await.unwrap().unwrap();
    assert_eq!(build["status"], "FAIL", "{build}");
    // A rejected file: nothing of it loaded, its problems named.
    let bad = tmp.path().join("bad.json");
    let mut doc = kcidb_doc("lab2");
    doc["tests"][1]["status"] = json!("GREAT");
    std::fs::write(&bad, doc.to_string()).unwrap();
    let (code, _, err) = import(&["admin", "--data-dir", s(&data), "import-kcidb", s(&bad)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.json: rejected") && err.contains("/tests/1/status"),
        "{err}"
    );
    assert!(db.object("checkouts", "lab2:c1").await.unwrap().is_none());
}

/// Upstream's KCIDB PostgreSQL schema 5.3 (specs/kcidb.md §4).
const UPSTREAM_SCHEMA: &[&str] = &[
    "CREATE FUNCTION get_version() RETURNS integer LANGUAGE SQL IMMUTABLE AS $$ SELECT 5003 $$",
    "CREATE TYPE STATUS AS ENUM ('FAIL', 'ERROR', 'MISS', 'PASS', 'DONE', 'SKIP')",
    "CREATE TYPE UNIT_PREFIX AS ENUM ('metric', 'binary')",
    "CREATE TABLE checkouts (_timestamp TIMESTAMP WITH TIME ZONE, id TEXT NOT NULL PRIMARY KEY,
        origin TEXT NOT NULL, tree_name TEXT, git_repository_url TEXT, git_commit_hash TEXT,
        git_commit_name TEXT, git_repository_branch TEXT, patchset_files JSONB,
        patchset_hash TEXT, message_id TEXT, comment TEXT,
        start_time TIMESTAMP WITH TIME ZONE, log_url TEXT, log_excerpt VARCHAR(16384),
        valid BOOLEAN, misc JSONB, git_commit_tags TEXT[], git_commit_message TEXT,
        git_repository_branch_tip BOOLEAN,
        origin_builds_finish_time TIMESTAMP WITH TIME ZONE,
        origin_tests_finish_time TIMESTAMP WITH TIME ZONE)",
    "CREATE TABLE builds (_timestamp TIMESTAMP WITH TIME ZONE, checkout_id TEXT NOT NULL,
        id TEXT NOT NULL PRIMARY KEY, origin TEXT NOT NULL, comment TEXT,
        start_time TIMESTAMP WITH TIME ZONE, duration DOUBLE PRECISION, architecture TEXT,
        command TEXT, compiler TEXT, input_files JSONB, output_files JSONB, config_name TEXT,
        config_url TEXT, log_url TEXT, log_excerpt VARCHAR(16384), misc JSONB, status STATUS)",
    "CREATE TABLE tests (_timestamp TIMESTAMP WITH TIME ZONE, build_id TEXT NOT NULL,
        id TEXT NOT NULL PRIMARY KEY, origin TEXT NOT NULL, environment_comment TEXT,
        environment_misc JSONB, path TEXT, comment TEXT, log_url TEXT,
        log_excerpt VARCHAR(16384), status STATUS, start_time TIMESTAMP WITH TIME ZONE,
        duration DOUBLE PRECISION, output_files JSONB, misc JSONB,
        environment_compatible TEXT[], number_value DOUBLE PRECISION, number_unit TEXT,
        number_prefix UNIT_PREFIX, input_files JSONB)",
    "CREATE TABLE issues (_timestamp TIMESTAMP WITH TIME ZONE, id TEXT NOT NULL,
        version INTEGER NOT NULL, origin TEXT NOT NULL, report_url TEXT, report_subject TEXT,
        culprit_code BOOLEAN, culprit_tool BOOLEAN, culprit_harness BOOLEAN, comment TEXT,
        misc JSONB, categories TEXT[], PRIMARY KEY (id, version))",
    "CREATE TABLE incidents (_timestamp TIMESTAMP WITH TIME ZONE, id TEXT NOT NULL PRIMARY KEY,
        origin TEXT NOT NULL, issue_id TEXT NOT NULL, issue_version INTEGER NOT NULL,
        build_id TEXT, test_id TEXT, present BOOLEAN, comment TEXT, misc JSONB)",
];

const UPSTREAM_ROWS: &[&str] = &[
    "INSERT INTO checkouts (_timestamp, id, origin, tree_name, git_commit_hash, start_time,
        valid, git_commit_tags, patchset_files, misc) VALUES
        (NOW(), 'up:c1', 'up', 'mainline', '2a987e65025e2b79c6d453b78cb5985ac6e5eb26',
         '2024-02-01 09:58:28.5+00', true, ARRAY['v6.7'], '[]', '{\"a\": 1}'),
        (NOW(), 'up:c2', 'up', 'next', NULL, NULL, NULL, NULL, NULL, NULL)",
    "INSERT INTO builds (id, checkout_id, origin, architecture, duration, status, misc) VALUES
        ('up:b1', 'up:c1', 'up', 'x86_64', 120.5, 'PASS', '{\"lab\": \"x\"}'),
        ('up:b2', 'up:c1', 'up', 'arm64', NULL, 'FAIL', NULL),
        ('up:b3', 'up:c2', 'up', NULL, NULL, NULL, NULL)",
    "INSERT INTO tests (id, build_id, origin, path, status, environment_comment,
        environment_compatible, environment_misc, number_value, number_unit, number_prefix,
        start_time) VALUES
        ('up:t1', 'up:b1', 'up', 'baseline.login', 'FAIL', 'qemu', ARRAY['qemu,x86'],
         '{\"platform\": \"qemu-x86\"}', 1.5, 's', 'metric', '2024-02-01 11:00:00+00'),
        ('up:t2', 'up:b1', 'up', 'baseline', 'PASS', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        ('up:t3', 'up:b2', 'up', 'boot', 'MISS', NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "INSERT INTO issues (id, version, origin, comment, culprit_code, culprit_tool, categories)
        VALUES ('up:i1', 1, 'up', 'oops', true, false, ARRAY['kernel']),
               ('up:i1', 2, 'up', 'oops again', true, NULL, NULL),
               ('up:i2', 1, 'up', NULL, NULL, NULL, NULL)",
    "INSERT INTO incidents (id, origin, issue_id, issue_version, test_id, present) VALUES
        ('up:n1', 'up', 'up:i1', 2, 'up:t1', true)",
];

#[tokio::test]
async fn kcidb_upstream_postgres_imports_in_pages() {
    let Some(base) = pg_base_url() else {
        eprintln!("skipping: KERNELCI_TEST_DATABASE_URL is not set");
        return;
    };
    let source = TestDb::postgres(&base).await;
    let mut conn = sqlx::PgConnection::connect(&source.url).await.unwrap();
    for sql in UPSTREAM_SCHEMA.iter().chain(UPSTREAM_ROWS) {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let target = TestDb::postgres(&base).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args = [
        "admin",
        "--data-dir",
        s(&data),
        "--database-url",
        &target.url,
        "import-kcidb",
        "--json",
        "--batch",
        "2",
        "--from-postgres",
        &source.url,
    ];
    let (code, first, err) = import(&args);
    assert_eq!(code, 0, "{err}");
    let expected = [
        ("builds", 3),
        ("checkouts", 2),
        ("incidents", 1),
        ("issues", 3),
        ("tests", 3),
    ];
    let c = counts(&first);
    for ((name, n), got) in expected.iter().zip(&c) {
        assert_eq!(got, &(name.to_string(), *n, *n, *n), "{first}");
    }
    let (code, again, err) = import(&args);
    assert_eq!(code, 0, "{err}");
    for (name, source, present, written) in counts(&again) {
        assert_eq!(source, present, "{name}");
        assert_eq!(written, 0, "{name}: {again}");
    }
    let db = kernelci_kcidb::db::KcidbDb::open(&target.url)
        .await
        .unwrap();
    let t1 = db.object("tests", "up:t1").await.unwrap().unwrap();
    // (Maps compare regardless of key order.)
    assert_eq!(
        t1,
        json!({"build_id": "up:b1", "id": "up:t1", "origin": "up", "path": "baseline.login",
               "status": "FAIL", "environment": {"comment": "qemu", "compatible": ["qemu,x86"],
               "misc": {"platform": "qemu-x86"}}, "start_time": "2024-02-01T11:00:00+00:00",
               "number": {"value": 1.5, "unit": "s", "prefix": "metric"}})
    );
    let c1 = db.object("checkouts", "up:c1").await.unwrap().unwrap();
    assert_eq!(c1["git_commit_tags"], json!(["v6.7"]));
    assert_eq!(c1["misc"], json!({"a": 1}));
    assert_eq!(c1["start_time"], "2024-02-01T09:58:28.5+00:00");
    let i1 = db.object("issues", "up:i1").await.unwrap().unwrap();
    assert_eq!(i1["version"], 2);
    assert_eq!(i1["culprit"], json!({"code": true}));

    // Resumed: an interrupted run left a checkpoint after up:t1; a new run starts there
    // (into a fresh database the check then misses up:t1), a complete run clears it.
    let resumed = TestDb::postgres(&base).await;
    let store = kernelci_store::open(&resumed.url).await.unwrap();
    let key = format!("{}#tests", kernelci_store::redact(&source.url));
    store
        .kv_set("import-kcidb", &key, r#"["up:t1",null]"#)
        .await
        .unwrap();
    let mut resume_args = args.to_vec();
    resume_args[4] = &resumed.url;
    let (code, out, err) = import(&resume_args);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("tests: continuing after \"up:t1\""), "{err}");
    assert_eq!(out["tables"]["tests"]["written"], 2, "{out}");
    assert_eq!(out["tables"]["tests"]["present"], 2, "{out}");
    assert_eq!(store.kv_get("import-kcidb", &key).await.unwrap(), None);
    let (code, out, err) = import(&resume_args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["tables"]["tests"]["written"], 1, "{out}");

    // A row that is not valid v5.3: counted, listed, and the counts differ (exit 1).
    sqlx::query(
        "INSERT INTO tests (id, build_id, origin, status) VALUES ('bad id', 'up:b1', 'up', 'PASS')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let (code, out, err) = import(&args);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["ok"], false);
    assert_eq!(out["tables"]["tests"]["invalid"], 1, "{out}");
    assert_eq!(out["tables"]["tests"]["source"], 4);
    assert_eq!(out["tables"]["tests"]["present"], 3);
    assert!(err.contains("invalid: tests \"bad id\""), "{err}");
}
