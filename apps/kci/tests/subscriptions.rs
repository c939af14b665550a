//! Runs the real `kci subscriptions` against the KCIDB router served in-process (under
//! `/kcidb`, as `kernelci up` mounts it, on SQLite): add, list, rm, refusals, the base
//! taken from the settings' `kcidb_rest_url`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Output};

use kernelci_kcidb_server::{
    DEFAULT_MAX_BODY, KcidbConfig, KcidbDb, KcidbState, Verifier, kcidb_router,
};
use serde_json::Value;

fn kci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kci"))
        .args(args)
        .output()
        .expect("run kci")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn subscriptions_are_added_listed_and_removed() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = Verifier::new("kci-subscriptions-secret", None);
    let db_url = format!("sqlite:{}", dir.path().join("kcidb.sqlite3").display());
    let state = KcidbState::new(KcidbConfig {
        spool_dir: dir.path().join("spool"),
        verifier: Some(keys.clone()),
        max_body: DEFAULT_MAX_BODY,
    })
    .unwrap();
    let base = rt.block_on(async {
        let db = KcidbDb::open(&db_url).await.unwrap();
        state.enable_subscriptions(db).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = kcidb_router(state, false);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/kcidb")
    });
    let admin = keys.issue("ops", true, 1);
    let lab = keys.issue("lab", false, 1);
    // The base and token from the settings file (`kcidb_rest_url` minus `/submit`).
    let settings = dir.path().join("kci.toml");
    std::fs::write(
        &settings,
        format!(
            "default_instance = \"local\"\n[local]\nkcidb_rest_url = \"{base}/submit\"\n\
             kcidb_token = \"{admin}\"\n"
        ),
    )
    .unwrap();
    let s = settings.to_str().unwrap();

    let out = kci(&[
        "--settings",
        s,
        "subscriptions",
        "add",
        "--tree",
        "mainline",
        "--branch",
        "master",
        "--email",
        "dev@example.org",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let email_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(email_id.len(), 16, "{email_id}");
    let out = kci(&[
        "--settings",
        s,
        "subscriptions",
        "add",
        "--webhook",
        "https://discord.example/api/x",
        "--format",
        "discord",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["format"], "discord");
    assert_eq!(made["tree_name"], "*");

    let out = kci(&["--settings", s, "subscriptions", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("dev@example.org"), "{listing}");
    assert!(
        listing.contains("https://discord.example/api/x (discord)"),
        "{listing}"
    );

    // Refusals: a bad address (1, the field named), a lab token (1), an unknown id (2),
    // an unreachable server (3), flags clap refuses (2).
    let out = kci(&["--settings", s, "subscriptions", "add", "--email", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("HTTP 400: email: "), "{}", text(&out));
    let out = kci(&["--settings", s, "subscriptions", "list", "--token", &lab]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("HTTP 403"), "{}", text(&out));
    let out = kci(&["--settings", s, "subscriptions", "rm", "0000000000000000"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = kci(&[
        "--settings",
        s,
        "subscriptions",
        "list",
        "--url",
        "http://127.0.0.1:9/kcidb",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = kci(&["--settings", s, "subscriptions", "add", "--tree", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let out = kci(&["--settings", s, "subscriptions", "rm", &email_id]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kci(&["--settings", s, "subscriptions", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}
