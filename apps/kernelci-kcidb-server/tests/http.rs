//! The KCIDB role over real HTTP on a real port, on SQLite or (with
//! `KERNELCI_TEST_DATABASE_URL`) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use kernelci_kcidb::stream::StreamOptions;
use kernelci_kcidb_server::{
    IngestLimits, KcidbConfig, KcidbDb, KcidbState, Verifier, auth, kcidb_router,
};
use kernelci_tests::{TestDb, in_ci};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "kcidb-test-secret";

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    state: KcidbState,
    db: KcidbDb,
    keys: Verifier,
    spool: PathBuf,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
    _testdb: TestDb,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(auth: bool, max_body: u64) -> Server {
        Server::start_on(TestDb::new().await, None, auth, max_body).await
    }

    /// A server on `testdb`, or on the database at `url` (then `testdb` is a placeholder).
    async fn start_on(testdb: TestDb, url: Option<&str>, auth: bool, max_body: u64) -> Server {
        Server::start_with(testdb, url, auth, max_body, StreamOptions::default()).await
    }

    /// A server that reads every submission one object at a time.
    async fn start_streaming(max_body: u64) -> Server {
        let stream = StreamOptions {
            in_memory_up_to: 0,
            ..StreamOptions::default()
        };
        Server::start_with(TestDb::new().await, None, true, max_body, stream).await
    }

    async fn start_with(
        testdb: TestDb,
        url: Option<&str>,
        auth: bool,
        max_body: u64,
        stream: StreamOptions,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let db = KcidbDb::open(url.unwrap_or(&testdb.url)).await.unwrap();
        let keys = Verifier::new(SECRET, Some("second-secret"));
        let state = KcidbState::with_stream_options(
            KcidbConfig {
                spool_dir: spool.clone(),
                verifier: auth.then(|| keys.clone()),
                max_body,
            },
            stream,
        )
        .unwrap();
        let app = kcidb_router(state.clone(), true);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::new(),
            state,
            db,
            keys,
            spool,
            task,
            _dir: dir,
            _testdb: testdb,
        }
    }

    async fn submit(&self, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let mut req = self.client.post(format!("{}/submit", self.base)).body(body);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn status(&self, token: &str, id: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}/status?id={id}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap())
    }

    /// Ingest rounds until the spool is empty.
    async fn drain(&self) -> kernelci_kcidb_server::Counts {
        let mut written = kernelci_kcidb_server::Counts::default();
        loop {
            let round = self
                .state
                .ingest_round(
                    &self.db,
                    IngestLimits {
                        files: 2,
                        ..IngestLimits::default()
                    },
                )
                .await
                .unwrap();
            if round.archived + round.failed == 0 {
                return written;
            }
            written.checkouts += round.rows.checkouts;
            written.builds += round.rows.builds;
            written.tests += round.rows.tests;
            written.issues += round.rows.issues;
            written.incidents += round.rows.incidents;
        }
    }

    /// Every file in the spool (recursively), relative names.
    fn spool_files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.spool, &self.spool, &mut out);
        out.sort();
        out
    }
}

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("KERNELCI_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    let dir = dir.join("kcidb");
    if dir.is_dir() {
        Some(dir)
    } else if in_ci() {
        panic!("KCIDB fixtures missing at {} under CI", dir.display());
    } else {
        eprintln!("skipping: no fixtures at {}", dir.display());
        None
    }
}

fn doc(origin: &str, build_origin: &str) -> Vec<u8> {
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": format!("{origin}:c1"), "origin": origin}],
        "builds": [{"id": format!("{build_origin}:b1"), "origin": origin,
                    "checkout_id": format!("{origin}:c1"), "status": "PASS"}],
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn small_fixtures_are_ingested_exactly_once() {
    let Some(fx) = fixtures() else { return };
    let server = Server::start(true, kernelci_kcidb_server::DEFAULT_MAX_BODY).await;
    let admin = server.keys.issue("maestro", true, 1);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fx.join("small.manifest.json")).unwrap()).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fx.join("small"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), manifest["files"].as_array().unwrap().len());

    let mut ids = Vec::new();
    for f in &files {
        let (code, body) = server.submit(Some(&admin), std::fs::read(f).unwrap()).await;
        assert_eq!(code, 200, "{}: {body}", f.display());
        assert_eq!(body["status"], "ok");
        let id = body["id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 32);
        assert_eq!(
            server.status(&admin, &id).await,
            (200, status_body(&id, "ready"))
        );
        ids.push(id);
    }
    server.drain().await;
    for id in &ids {
        let body = server.status(&admin, id).await.1;
        assert_eq!(body["status"], "processed", "{body}");
    }
    let counts = server.db.counts().await.unwrap();
    let unique = &manifest["unique_objects"];
    let expected = kernelci_kcidb_server::Counts {
        checkouts: unique["checkouts"].as_u64().unwrap(),
        builds: unique["builds"].as_u64().unwrap(),
        tests: unique["tests"].as_u64().unwrap(),
        issues: unique["issues"].as_u64().unwrap(),
        incidents: unique["incidents"].as_u64().unwrap(),
    };
    assert_eq!(counts, expected);
    for table in ["builds", "tests"] {
        let got: serde_json::Map<String, Value> = server
            .db
            .status_counts(table)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        assert_eq!(
            Value::Object(got),
            manifest["status_counts"][table],
            "{table}"
        );
    }
    // A test submitted partially then completely holds the complete values.
    for r in manifest["resubmitted_tests"].as_array().unwrap() {
        let test = server
            .db
            .object("tests", r["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        for field in r["partial_omits"].as_array().unwrap() {
            assert!(
                test.get(field.as_str().unwrap()).is_some(),
                "{test} lacks {field}"
            );
        }
    }

    // The same files again: accepted, archived, nothing written, same rows.
    for f in &files {
        let (code, _) = server.submit(Some(&admin), std::fs::read(f).unwrap()).await;
        assert_eq!(code, 200);
    }
    let written = server.drain().await;
    assert_eq!(written.total(), 0, "{written:?}");
    assert_eq!(server.db.counts().await.unwrap(), expected);
    assert_eq!(
        server
            .spool_files()
            .iter()
            .filter(|f| f.starts_with("archive/"))
            .count(),
        10
    );

    // Metrics reflect it.
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("kcidb_submissions_total 10\n"), "{text}");
    assert!(
        text.contains("kcidb_submissions_by_origin{origin=\"maestro\"} 10"),
        "{text}"
    );
    assert!(text.contains("kcidb_json_files 0\n"), "{text}");
}

fn status_body(id: &str, status: &str) -> Value {
    let message = match status {
        "ready" => "File waiting for processing",
        "processed" => "File archived",
        "inprogress" => "File still in progress",
        _ => "",
    };
    json!({"id": id, "status": status, "message": message})
}

#[tokio::test]
async fn tokens_are_checked() {
    let server = Server::start(true, 1 << 20).await;
    let good = server.keys.issue("lab", false, 1);
    let (code, body) = server.submit(None, doc("lab", "lab")).await;
    assert_eq!((code, body["status"].as_str()), (401, Some("error")));
    assert_eq!(body["message"], "JWT is required");
    let forged = Verifier::new("wrong", None).issue("lab", true, 1);
    let (code, body) = server.submit(Some(&forged), doc("lab", "lab")).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (401, Some("InvalidSignature"))
    );
    let expired = auth::sign(
        SECRET.as_bytes(),
        &json!({"origin": "lab", "exp": chrono::Utc::now().timestamp() - 3600}),
    );
    assert_eq!(
        server.submit(Some(&expired), doc("lab", "lab")).await.0,
        401
    );
    // The second secret is accepted.
    let second = Verifier::new("second-secret", None).issue("lab", false, 1);
    assert_eq!(server.submit(Some(&second), doc("lab", "lab")).await.0, 200);
    let resp = server
        .client
        .get(format!("{}/authtest", server.base))
        .header("Authorization", format!("Bearer {good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "Authentication successful");
    assert_eq!(body["origin"], "lab");
    let resp = server
        .client
        .get(format!("{}/authtest", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = server
        .client
        .get(format!("{}/status?id=abc", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let health = server
        .client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "OK");
}

#[tokio::test]
async fn origins_are_enforced() {
    let server = Server::start(true, 1 << 20).await;
    let lab = server.keys.issue("lab", false, 1);
    let (code, body) = server.submit(Some(&lab), doc("lab", "other")).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["objects"], json!(["/builds/0"]));
    let (code, body) = server.submit(Some(&lab), doc("other", "other")).await;
    assert_eq!(code, 403);
    assert_eq!(body["objects"], json!(["/checkouts/0", "/builds/0"]));
    assert!(
        server.spool_files().is_empty(),
        "{:?}",
        server.spool_files()
    );
    // The right origin, and an admin token for any origin.
    assert_eq!(server.submit(Some(&lab), doc("lab", "lab")).await.0, 200);
    let admin = server.keys.issue("maestro", true, 1);
    assert_eq!(
        server.submit(Some(&admin), doc("other", "other")).await.0,
        200
    );
    assert_eq!(server.spool_files().len(), 2);
    server.drain().await;
    assert_eq!(server.db.counts().await.unwrap().builds, 2);
}

/// `count` tests of `origin` (ids of `id_origin`), with a bad start time at `bad`.
fn many_tests(origin: &str, id_origin: &str, count: usize, bad: Option<usize>) -> Vec<u8> {
    let tests: Vec<Value> = (0..count)
        .map(|i| {
            let time = if Some(i) == bad {
                "yesterday"
            } else {
                "2026-11-28T10:00:00Z"
            };
            json!({"id": format!("{id_origin}:t{i}"), "origin": origin, "build_id": "lab:b1",
                   "path": format!("suite.case{i}"), "status": "PASS", "start_time": time})
        })
        .collect();
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": "lab:c1", "origin": "lab"}],
        "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1", "status": "PASS"}],
        "tests": tests,
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn streamed_submissions_get_the_same_answers() {
    let server = Server::start_streaming(64 << 20).await;
    let lab = server.keys.issue("lab", false, 1);
    let (code, body) = server
        .submit(Some(&lab), many_tests("lab", "lab", 3000, None))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["objects"], 3002);
    // A problem deep in the document: 400 with its pointer, nothing spooled.
    let (code, body) = server
        .submit(Some(&lab), many_tests("lab", "lab", 3000, Some(2345)))
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["stage"], "schema");
    assert_eq!(body["problems"][0]["pointer"], "/tests/2345/start_time");
    // Foreign objects: all counted, the first 1,000 listed.
    let (code, body) = server
        .submit(Some(&lab), many_tests("lab", "other", 1500, None))
        .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["objects"].as_array().unwrap().len(), 1000);
    assert_eq!(body["objects"][999], "/tests/999");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("1500 object(s)"),
        "{body}"
    );
    assert_eq!(server.spool_files().len(), 1, "{:?}", server.spool_files());
    server.drain().await;
    assert_eq!(server.db.counts().await.unwrap().tests, 3000);
}

/// Files above the in-memory size are loaded alone, in chunks; one invalid part-way is not
/// loaded at all.
#[tokio::test]
async fn large_files_are_loaded_in_chunks_or_not_at_all() {
    let server = Server::start_streaming(64 << 20).await;
    let limits = IngestLimits {
        objects: 500,
        ..IngestLimits::default()
    };
    // Written straight into the spool (the receiver would refuse the second one).
    let good = server.state.spool().ready_path("good");
    std::fs::write(&good, many_tests("lab", "lab", 3000, None)).unwrap();
    let round = server.state.ingest_round(&server.db, limits).await.unwrap();
    assert_eq!((round.archived, round.failed), (1, 0));
    assert_eq!(round.rows.tests, 3000);
    assert_eq!(server.db.counts().await.unwrap().tests, 3000);
    let bad = server.state.spool().ready_path("bad");
    let mut doc: Value =
        serde_json::from_slice(&many_tests("lab", "lab2", 3000, Some(2999))).unwrap();
    doc["checkouts"][0]["id"] = json!("lab:c2");
    std::fs::write(&bad, doc.to_string()).unwrap();
    let round = server.state.ingest_round(&server.db, limits).await.unwrap();
    assert_eq!((round.archived, round.failed), (0, 1));
    let counts = server.db.counts().await.unwrap();
    assert_eq!((counts.checkouts, counts.tests), (1, 3000));
    let failed = std::fs::read_dir(server.spool.join("failed"))
        .unwrap()
        .count();
    assert_eq!(failed, 2, "the file and its .reason");
}

#[tokio::test]
async fn no_auth_only_when_configured() {
    let server = Server::start(false, 1 << 20).await;
    let (code, body) = server.submit(None, doc("anyone", "anyone")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["origin"], "none");
}

#[tokio::test]
async fn invalid_submissions_get_every_problem_and_are_not_spooled() {
    let server = Server::start(true, 1 << 20).await;
    let lab = server.keys.issue("lab", false, 1);
    let bad = json!({
        "version": {"major": 5, "minor": 3},
        "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1",
                    "status": "pass", "start_time": "yesterday"}],
        "tests": [{"id": "lab:t1", "origin": "lab"}],
    });
    let (code, body) = server
        .submit(Some(&lab), bad.to_string().into_bytes())
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["stage"], "schema");
    let pointers: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/builds/0/status", "/builds/0/start_time", "/tests/0"]
    );
    assert!(
        body["problems"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["stage"] == "schema" && p["reason"].as_str().is_some_and(|r| !r.is_empty()))
    );
    let (code, body) = server.submit(Some(&lab), b"{not json".to_vec()).await;
    assert_eq!((code, body["stage"].as_str()), (400, Some("json")));
    assert_eq!(server.submit(Some(&lab), Vec::new()).await.0, 400);
    assert!(
        server.spool_files().is_empty(),
        "{:?}",
        server.spool_files()
    );
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let server = Server::start(true, 200).await;
    let lab = server.keys.issue("lab", false, 1);
    let mut big = doc("lab", "lab");
    big.resize(big.len() + 300, b' ');
    let (code, body) = server.submit(Some(&lab), big).await;
    assert_eq!(code, 413, "{body}");
    assert!(server.spool_files().is_empty());
}

#[tokio::test]
async fn status_follows_the_file() {
    let server = Server::start(true, 1 << 20).await;
    let lab = server.keys.issue("lab", false, 1);
    let resp = server
        .client
        .get(format!("{}/status", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(server.status(&lab, "no-such").await.0, 400);
    let (code, body) = server.status(&lab, "abc123").await;
    assert_eq!((code, body["status"].as_str()), (404, Some("notfound")));

    // inprogress: send half a body, find the temp file, ask, then finish.
    let body = doc("lab", "lab");
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /submit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {lab}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..10]).await.unwrap();
    let mut id = None;
    for _ in 0..100 {
        if let Some(name) = server
            .spool_files()
            .into_iter()
            .find(|f| f.ends_with(".json.temp"))
        {
            id = Some(name["submission-".len()..name.len() - ".json.temp".len()].to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let id = id.expect("a temp file while receiving");
    assert_eq!(
        server.status(&lab, &id).await,
        (200, status_body(&id, "inprogress"))
    );
    conn.write_all(&body[10..]).await.unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(server.status(&lab, &id).await.1["status"], "ready");
    server.drain().await;
    assert_eq!(server.status(&lab, &id).await.1["status"], "processed");

    // A spooled file that cannot be loaded (e.g. dropped there by another tool) fails,
    // with its reason.
    std::fs::write(
        server.spool.join("submission-planted1.json"),
        b"{\"version\": 1}",
    )
    .unwrap();
    let round = server
        .state
        .ingest_round(&server.db, IngestLimits::default())
        .await
        .unwrap();
    assert_eq!((round.archived, round.failed), (0, 1));
    let (code, body) = server.status(&lab, "planted1").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("failed")));
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("schema")),
        "{body}"
    );
    assert!(
        server
            .spool
            .join("failed/submission-planted1.json.reason")
            .is_file()
    );
}

#[tokio::test]
async fn background_ingester_processes_submissions() {
    let server = Server::start(true, 1 << 20).await;
    let lab = server.keys.issue("lab", false, 1);
    let task = server
        .state
        .spawn_ingester(server.db.clone(), IngestLimits::default());
    let (code, body) = server.submit(Some(&lab), doc("lab", "lab")).await;
    assert_eq!(code, 200);
    let id = body["id"].as_str().unwrap();
    let mut status = String::new();
    for _ in 0..100 {
        status = server.status(&lab, id).await.1["status"]
            .as_str()
            .unwrap()
            .to_string();
        if status == "processed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    task.abort();
    assert_eq!(status, "processed");
    assert_eq!(server.db.counts().await.unwrap().total(), 2);
}

#[tokio::test]
async fn two_ingesters_on_one_database_agree() {
    let Some(fx) = fixtures() else { return };
    let a = Server::start(true, kernelci_kcidb_server::DEFAULT_MAX_BODY).await;
    let b = Server::start_on(TestDb::sqlite(), Some(&a._testdb.url), true, 1 << 30).await;
    let admin = a.keys.issue("maestro", true, 1);
    let mut files: Vec<PathBuf> = std::fs::read_dir(fx.join("small"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // Every file to both receivers, then both ingesters at once.
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(a.submit(Some(&admin), bytes.clone()).await.0, 200);
        assert_eq!(b.submit(Some(&admin), bytes).await.0, 200);
    }
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    assert!(ra.total() + rb.total() >= 947);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fx.join("small.manifest.json")).unwrap()).unwrap();
    let counts = a.db.counts().await.unwrap();
    assert_eq!(
        counts.total(),
        manifest["unique_objects_total"].as_u64().unwrap()
    );
    assert_eq!(counts, b.db.counts().await.unwrap());
}
