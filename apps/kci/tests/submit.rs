//! Runs the real `kci submit` against the KCIDB receiver served in-process (the router of
//! `kernelci-kcidb-server` with its ingester on SQLite): receipts, `/status`, refusals,
//! retries.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use kernelci_kcidb_server::{
    DEFAULT_MAX_BODY, IngestLimits, KcidbConfig, KcidbDb, KcidbState, Verifier, kcidb_router,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "kci-submit-test-secret";

fn kci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kci"))
        .args(args)
        .env_remove("KCI_KCIDB_URL")
        .env_remove("KCI_KCIDB_TOKEN")
        .output()
        .expect("run kci")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn doc(n: u32) -> String {
    format!(
        r#"{{"version": {{"major": 5, "minor": 3}},
  "checkouts": [{{"id": "lab:c{n}", "origin": "lab", "tree_name": "mainline"}}],
  "builds": [{{"id": "lab:b{n}", "origin": "lab", "checkout_id": "lab:c{n}", "status": "PASS"}}]}}"#
    )
}

/// The KCIDB router under `/kcidb` with its ingester, on a runtime of its own (the test
/// thread stays synchronous and runs the binary).
struct Server {
    base: String,
    keys: Verifier,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let keys = Verifier::new(SECRET, None);
        let db_url = format!("sqlite:{}", dir.path().join("kcidb.sqlite3").display());
        let state = KcidbState::new(KcidbConfig {
            spool_dir: dir.path().join("spool"),
            verifier: Some(keys.clone()),
            max_body: DEFAULT_MAX_BODY,
        })
        .unwrap();
        let base = rt.block_on(async {
            let db = KcidbDb::open(&db_url).await.unwrap();
            state.spawn_ingester(db, IngestLimits::default());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = kcidb_router(state, false);
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            format!("http://{addr}/kcidb")
        });
        Server {
            base,
            keys,
            _rt: rt,
            _dir: dir,
        }
    }

    fn status(&self, token: &str, id: &str) -> Value {
        reqwest::blocking::Client::new()
            .get(format!("{}/status?id={id}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Polls `/status` until the submission is processed (committed in the database).
    fn wait_processed(&self, token: &str, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status(token, id);
            if status["status"] == "processed" {
                return;
            }
            assert!(Instant::now() < deadline, "not processed: {status}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn submits_each_file_and_the_receipts_reach_processed() {
    let server = Server::start();
    let token = server.keys.issue("lab", false, 1);
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), "one.json", &doc(1));
    let two = write(dir.path(), "two.json", &doc(2));
    let url = format!("{}/submit", server.base);
    let out = kci(&[
        "submit",
        one.to_str().unwrap(),
        two.to_str().unwrap(),
        "--url",
        &url,
        "--token",
        &token,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let receipts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let receipts = receipts.as_array().unwrap();
    assert_eq!(receipts.len(), 2);
    for (receipt, file) in receipts.iter().zip([&one, &two]) {
        assert_eq!(receipt["file"], file.to_str().unwrap());
        assert_eq!(receipt["receipt"]["status"], "ok");
        assert_eq!(receipt["receipt"]["objects"], 2);
        assert_eq!(receipt["receipt"]["origin"], "lab");
        let id = receipt["receipt"]["id"].as_str().unwrap();
        server.wait_processed(&token, id);
    }
    // Progress on stderr, one line per file.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("[1/2] "), "{stderr}");
    assert!(stderr.contains("two.json ... ok"), "{stderr}");

    // Text output: one receipt line, no progress for a single file.
    let out = kci(&[
        "submit",
        one.to_str().unwrap(),
        "--url",
        &url,
        "--token",
        &token,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let id = stdout
        .trim_end()
        .rsplit_once("submitted, receipt ")
        .map(|(_, id)| id.to_string())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(out.stderr.is_empty(), "{out:?}");
    server.wait_processed(&token, &id);
}

#[test]
fn stops_at_the_first_refusal_with_the_servers_body() {
    let server = Server::start();
    let token = server.keys.issue("lab", false, 1);
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.json", &doc(1));
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"version": {"major": 5, "minor": 3},
            "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1",
                        "start_time": "yesterday"}]}"#,
    );
    let foreign = write(dir.path(), "foreign.json", &doc(3).replace("lab", "other"));
    let never = write(dir.path(), "never.json", &doc(4));
    let url = format!("{}/submit", server.base);
    let args = |files: &[&Path]| {
        let mut v: Vec<String> = vec!["submit".into()];
        v.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
        v.extend(["--url".into(), url.clone(), "--token".into(), token.clone()]);
        v
    };

    let a = args(&[&good, &bad, &never]);
    let out = kci(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stdout.contains("good.json: submitted, receipt "),
        "{stdout}"
    );
    assert!(!stdout.contains("never.json"), "{stdout}");
    assert!(stderr.contains("bad.json ... refused"), "{stderr}");
    assert!(stderr.contains("refused with HTTP 400"), "{stderr}");
    assert!(stderr.contains("/builds/0/start_time"), "{stderr}");
    assert!(!stderr.contains("never.json"), "{stderr}");

    // Another origin's objects: 403 listing them.
    let a = args(&[&foreign]);
    let out = kci(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("HTTP 403"), "{stderr}");
    assert!(stderr.contains("/checkouts/0"), "{stderr}");

    // A bad token: 401, no retry.
    let out = kci(&[
        "submit",
        good.to_str().unwrap(),
        "--url",
        &url,
        "--token",
        "not-a-token",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 401"),
        "{out:?}"
    );
}

#[test]
fn unreadable_file_exits_2_before_sending_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = kci(&[
        "submit",
        dir.path().join("missing.json").to_str().unwrap(),
        "--url",
        "http://127.0.0.1:9/submit",
        "--token",
        "t",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read"),
        "{out:?}"
    );
    // Not a URL, or not http(s): bad input, nothing sent.
    for url in ["not a url", "ftp://x/submit"] {
        let out = kci(&["submit", "x.json", "--url", url, "--token", "t"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--url"),
            "{out:?}"
        );
    }
    // Missing --url / --token: usage error.
    let out = kci(&["submit", "x.json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A server answering 503 to the first `failures` requests, then 200 with a receipt. It
/// reads each body before answering, as a real receiver does: answering a streamed upload
/// before reading it lets the connection close under the client's feet (a transport error,
/// not the 503 the test is about).
fn flaky_server(failures: usize) -> (String, Arc<AtomicUsize>, tokio::runtime::Runtime) {
    use axum::http::StatusCode;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/submit",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < failures {
                    (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string())
                } else {
                    (
                        StatusCode::OK,
                        format!(r#"{{"id": "r{n}", "status": "ok"}}"#),
                    )
                }
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/submit", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    (url, hits, rt)
}

#[test]
fn retries_5xx_then_succeeds_or_gives_up_after_3_tries() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "one.json", &doc(1));
    let f = file.to_str().unwrap();

    let (url, hits, _rt) = flaky_server(2);
    let out = kci(&[
        "submit",
        f,
        "--url",
        &url,
        "--token",
        "t",
        "--retry-delay",
        "0.01",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("receipt r2"),
        "{out:?}"
    );

    let (url, hits, _rt) = flaky_server(3);
    let out = kci(&[
        "submit",
        f,
        "--url",
        &url,
        "--token",
        "t",
        "--retry-delay",
        "0.01",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 503") && stderr.contains("busy"),
        "{stderr}"
    );
}

#[test]
fn connection_refused_is_retried_then_exits_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "one.json", &doc(1));
    let url = format!("http://127.0.0.1:{port}/submit");
    let start = Instant::now();
    let out = kci(&[
        "submit",
        file.to_str().unwrap(),
        "--url",
        &url,
        "--token",
        "t",
        "--retry-delay",
        "0.1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Two waits: 0.1 s then 0.2 s.
    assert!(start.elapsed() >= Duration::from_millis(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no reply") && stderr.contains("after 3 tries"),
        "{stderr}"
    );
}

/// The real kci-dev: `KCI_DEV`, else `kci-dev` on PATH; `None` (skip, with a message)
/// outside CI, a failure under CI.
fn kci_dev() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KCI_DEV") {
        return Some(PathBuf::from(p));
    }
    let found = Command::new("kci-dev")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(found || !ci, "kci-dev is needed under CI (set KCI_DEV)");
    if !found {
        eprintln!("skipping: kci-dev not found (set KCI_DEV or put it on PATH)");
    }
    found.then(|| PathBuf::from("kci-dev"))
}

const BUILD_FLAGS: &[&str] = &[
    "--origin",
    "lab",
    "--giturl",
    "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
    "--branch",
    "master",
    "--commit",
    "0123456789abcdef0123456789abcdef01234567",
    "--tree-name",
    "mainline",
    "--arch",
    "x86_64",
    "--config-name",
    "defconfig",
    "--compiler",
    "gcc-14",
    "--status",
    "FAIL",
    "--start-time",
    "2026-11-28T10:00:00+00:00",
    "--duration",
    "812.5",
    "--log-url",
    "https://storage.example/build.log",
];

#[test]
fn submit_build_names_builds_as_kci_dev_does_and_sends_them() {
    let Some(kci_dev) = kci_dev() else { return };
    let dir = tempfile::tempdir().unwrap();
    let theirs = Command::new(&kci_dev)
        .current_dir(dir.path())
        .args(["submit", "build", "--dry-run"])
        .args(BUILD_FLAGS)
        .output()
        .unwrap();
    assert!(theirs.status.success(), "{theirs:?}");
    let theirs: Value = serde_json::from_slice(&theirs.stdout).unwrap();
    let mut args = vec!["submit", "build", "--dry-run"];
    args.extend_from_slice(BUILD_FLAGS);
    let ours = kci(&args);
    assert_eq!(ours.status.code(), Some(0), "{ours:?}");
    let ours: Value = serde_json::from_slice(&ours.stdout).unwrap();
    assert_eq!(ours, theirs, "the same payload, ids included");
    assert!(
        ours["builds"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("lab:b-")
    );

    // Sent for real: accepted, loaded, and the receipt names the objects.
    let server = Server::start();
    let token = server.keys.issue("lab", false, 1);
    let url = format!("{}/submit", server.base);
    let mut args = vec![
        "submit",
        "build",
        "--kcidb-rest-url",
        &url,
        "--kcidb-token",
        &token,
    ];
    args.extend_from_slice(BUILD_FLAGS);
    args.push("--json");
    let out = kci(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipt["objects"], 2);
    server.wait_processed(&token, receipt["id"].as_str().unwrap());

    // A bad status is refused here, before anything is sent; one flag of a pair is bad input.
    let mut bad: Vec<&str> = BUILD_FLAGS.to_vec();
    let at = bad.iter().position(|a| *a == "FAIL").unwrap();
    bad[at] = "BROKEN";
    let mut args = vec!["submit", "build", "--dry-run"];
    args.extend(bad);
    let out = kci(&args);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/builds/0/status"),
        "{out:?}"
    );
    let mut args = vec!["submit", "build", "--kcidb-rest-url", &url];
    args.extend_from_slice(BUILD_FLAGS);
    let out = kci(&args);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
