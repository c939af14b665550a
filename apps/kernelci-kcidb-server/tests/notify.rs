//! Notifications over a real KCIDB router and database (SQLite, or PostgreSQL with
//! `KERNELCI_TEST_DATABASE_URL`): subscriptions made over HTTP (and refused when bad or
//! unauthorized), two checkouts of a branch loaded (pass, then fail with an issue and a
//! missing result), the tracker run, then notifier rounds: one e-mail file and the webhooks
//! (JSON, Discord) delivered to a real local HTTP server, once; a failing webhook retried.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use kernelci_kcidb::regress::track::{TrackerConfig, track_once};
use kernelci_kcidb_server::notify::{MailSink, Notifier, NotifyConfig, parse_from};
use kernelci_kcidb_server::{KcidbConfig, KcidbDb, KcidbState, Verifier, kcidb_router};
use kernelci_tests::TestDb;
use serde_json::{Value, json};

const SECRET: &str = "notify-test-secret";

type Hooks = Arc<Mutex<Vec<(String, Value)>>>;

async fn hook(State(hooks): State<Hooks>, Path(name): Path<String>, body: String) -> StatusCode {
    if name == "fail" {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    hooks.lock().unwrap().push((name, value));
    StatusCode::NO_CONTENT
}

async fn serve(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

/// A checkout of mainline/master (`n`: its commit and ids) with one build and a boot.
fn checkout(n: u32, boot: &str) -> Value {
    let c = format!("lab:c{n}");
    let b = format!("lab:b{n}");
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": c, "origin": "lab", "tree_name": "mainline",
            "git_repository_url": "https://git.example/linux.git",
            "git_repository_branch": "master", "git_commit_hash": format!("{n:040x}"),
            "git_commit_name": format!("v6.8-rc1-{n}-gabc"), "start_time": now, "valid": true}],
        "builds": [{"id": b, "origin": "lab", "checkout_id": c, "config_name": "defconfig",
            "architecture": "x86_64", "compiler": "gcc-12", "status": "PASS"}],
        "tests": [
            {"id": format!("lab:t{n}-0"), "origin": "lab", "build_id": b, "path": "boot",
             "status": boot, "environment": {"misc": {"platform": "qemu-x86"}}},
        ],
    })
}

async fn load(db: &KcidbDb, doc: &Value) {
    let submission = kernelci_kcidb::load(doc.to_string().as_bytes()).expect("valid submission");
    db.load(submission).await.expect("load");
}

fn eml_files(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| {
            // Headers unfolded, lines ended by \n.
            let text = std::fs::read_to_string(p).unwrap().replace("\r\n", "\n");
            let (head, body) = text.split_once("\n\n").unwrap();
            format!("{}\n\n{body}", head.replace("\n ", " "))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_regression_is_reported_once_by_mail_and_webhooks() {
    let testdb = TestDb::new().await;
    let db = KcidbDb::open(&testdb.url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = Verifier::new(SECRET, None);
    let state = KcidbState::new(KcidbConfig {
        spool_dir: dir.path().join("spool"),
        verifier: Some(keys.clone()),
        max_body: 1 << 20,
    })
    .unwrap();
    state.enable_subscriptions(db.clone()).await.unwrap();
    let (kcidb, kcidb_task) = serve(kcidb_router(state, true)).await;
    let hooks: Hooks = Arc::default();
    let (hook_base, hook_task) = serve(
        axum::Router::new()
            .route("/hook/{name}", axum::routing::post(hook))
            .with_state(hooks.clone()),
    )
    .await;
    let client = reqwest::Client::new();
    let admin = keys.issue("ops", true, 1);
    let lab = keys.issue("lab", false, 1);
    let post = |token: Option<&str>, body: Value| {
        let mut r = client.post(format!("{kcidb}/subscriptions")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let reply = r.send().await.unwrap();
            let code = reply.status().as_u16();
            (code, reply.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // History before any subscription is never reported.
    load(&db, &checkout(1, "PASS")).await;
    track_once(&db, &TrackerConfig::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Refusals.
    let email = json!({"tree_name": "mainline", "branch": "master", "email": "dev@example.org"});
    let (code, _) = post(None, email.clone()).await;
    assert_eq!(code, 401);
    let (code, body) = post(Some(&lab), email.clone()).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("kcidb:admin"),
        "{body}"
    );
    let (code, body) = post(Some(&admin), json!({"email": "dev at example"})).await;
    assert_eq!(code, 400);
    assert!(
        body["message"].as_str().unwrap().starts_with("email: "),
        "{body}"
    );
    let (code, body) = post(Some(&admin), json!({"webhook": "ftp://x/y"})).await;
    assert_eq!(code, 400);
    assert!(
        body["message"].as_str().unwrap().starts_with("webhook: "),
        "{body}"
    );
    let (code, body) = post(
        Some(&admin),
        json!({"webhook": "http://x/y", "format": "irc"}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body["message"].as_str().unwrap().starts_with("format: "),
        "{body}"
    );
    let reply = client
        .get(format!("{kcidb}/subscriptions"))
        .bearer_auth(&lab)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 403);

    // Subscriptions: e-mail, two webhooks, a failing webhook, another tree's.
    let (code, made) = post(Some(&admin), email).await;
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["kind"], "email");
    assert_eq!(made["address"], "dev@example.org");
    for (name, format) in [("json", "json"), ("discord", "discord"), ("fail", "json")] {
        let body = json!({"tree_name": "mainline", "webhook": format!("{hook_base}/hook/{name}"),
            "format": format, "origin": "lab"});
        let (code, made) = post(Some(&admin), body).await;
        assert_eq!(code, 201, "{made}");
    }
    let (code, other) = post(
        Some(&admin),
        json!({"tree_name": "next", "email": "next@example.org"}),
    )
    .await;
    assert_eq!(code, 201);
    let list: Value = client
        .get(format!("{kcidb}/subscriptions"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 5, "{list}");
    let reply = client
        .delete(format!(
            "{kcidb}/subscriptions/{}",
            other["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let reply = client
        .delete(format!("{kcidb}/subscriptions/nope"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 404);

    // The failing checkout: the boot regresses, triage files an issue on it, and a test
    // the scheduler expected is missing.
    let mut doc = checkout(2, "FAIL");
    doc["tests"].as_array_mut().unwrap().push(json!({
        "id": "lab:t2-1", "origin": "lab", "build_id": "lab:b2", "path": "kselftest.timers",
        "status": "MISS", "environment": {"misc": {"platform": "rk3399"}}}));
    doc["issues"] = json!([{"id": "logspec:oops", "version": 1, "origin": "logspec",
        "comment": "Oops in mm/slub.c", "culprit": {"code": true}}]);
    doc["incidents"] = json!([{"id": "logspec:i1", "origin": "logspec",
        "issue_id": "logspec:oops", "issue_version": 1, "test_id": "lab:t2-0",
        "present": true}]);
    load(&db, &doc).await;
    let mail_dir = dir.path().join("mail");
    let mut config = NotifyConfig::new(
        MailSink::Dir(mail_dir.clone()),
        parse_from("KernelCI <ci@example.org>").unwrap(),
    );
    config.settle = Duration::ZERO;
    config.base_url = Some("https://kci.example/".into());
    let notifier = Notifier::new(db.clone(), config.clone()).await.unwrap();

    // Not tracked yet: nothing is sent (the report would miss the regression).
    let r = notifier.round().await.unwrap();
    assert_eq!((r.checkouts, r.sent, r.failed), (0, 0, 0), "{r:?}");
    let tracked = track_once(&db, &TrackerConfig::default()).await.unwrap();
    assert_eq!(tracked.opened, 1, "{tracked:?}");

    // Not settled yet: nothing is sent.
    let mut patient = config.clone();
    patient.settle = Duration::from_secs(600);
    let waiting = Notifier::new(db.clone(), patient).await.unwrap();
    let r = waiting.round().await.unwrap();
    assert_eq!((r.sent, r.failed), (0, 0), "{r:?}");

    let r = notifier.round().await.unwrap();
    assert_eq!((r.checkouts, r.sent, r.failed), (1, 3, 1), "{r:?}");
    let mails = eml_files(&mail_dir);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(
        mail.contains(
            "Subject: [kernelci] mainline/master v6.8-rc1-2-gabc: 1 new regression, 1 new issue"
        ),
        "{mail}"
    );
    assert!(mail.contains("To: dev@example.org"), "{mail}");
    assert!(mail.contains("From: KernelCI <ci@example.org>"), "{mail}");
    for line in [
        "Boots:  1 fail",
        "Tests:  1 miss",
        "New regressions (1):",
        "  - boot on qemu-x86 (defconfig/x86_64)",
        "https://kci.example/test/lab:t2-0",
        "  - logspec:oops (version 1): Oops in mm/slub.c",
        "  - test kselftest.timers on rk3399",
        "dashboard:  https://kci.example/tree/",
    ] {
        assert!(mail.contains(line), "{line:?} not in {mail}");
    }
    {
        let got = hooks.lock().unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        let json_body = &got.iter().find(|(n, _)| n == "json").unwrap().1;
        assert_eq!(json_body["event"], "checkout_report");
        assert_eq!(json_body["checkout"]["id"], "lab:c2");
        assert_eq!(
            json_body["new_regressions"][0]["what"],
            "boot on qemu-x86 (defconfig/x86_64)"
        );
        assert_eq!(json_body["new_issues"][0]["id"], "logspec:oops");
        assert_eq!(json_body["missing_total"], 1);
        let discord = &got.iter().find(|(n, _)| n == "discord").unwrap().1;
        assert!(
            discord["content"]
                .as_str()
                .unwrap()
                .contains("1 new regression, 1 new issue"),
            "{discord}"
        );
        assert_eq!(
            discord["embeds"][0]["title"],
            "New regression: boot on qemu-x86 (defconfig/x86_64)"
        );
    }

    // Sent once: a second round sends nothing more; the failing webhook is tried again.
    let r = notifier.round().await.unwrap();
    assert_eq!((r.sent, r.failed), (0, 1), "{r:?}");
    assert_eq!(eml_files(&mail_dir).len(), 1);
    assert_eq!(hooks.lock().unwrap().len(), 2);
    // Also after a restart (a new notifier over the same database).
    let again = Notifier::new(db.clone(), config).await.unwrap();
    let r = again.round().await.unwrap();
    assert_eq!(r.sent, 0, "{r:?}");

    kcidb_task.abort();
    hook_task.abort();
}
