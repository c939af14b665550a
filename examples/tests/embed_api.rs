//! Runs the `embed_api` example's application on a port: the Maestro API routes and our own
//! route answer side by side over the same SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "../embed_api.rs"]
mod example;

use serde_json::{Value, json};

#[tokio::test]
async fn both_the_api_and_our_route_answer() {
    let dir = tempfile::tempdir().unwrap();
    let app = example::build(dir.path(), "embed-test-secret")
        .await
        .unwrap();
    let token = app.admin_token.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app.router).await;
    });
    let http = reqwest::Client::new();

    // Our route, on an empty store.
    let status: Value = http
        .get(format!("{base}/lab/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["lab"], "mylab");
    assert_eq!(status["nodes"]["checkout"], 0, "{status}");

    // The API: whoami with the printed token, then a node created through it.
    let who = http
        .get(format!("{base}/latest/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 200);
    let who: Value = who.json().await.unwrap();
    assert_eq!(who["username"], "admin");
    let created = http
        .post(format!("{base}/latest/node"))
        .bearer_auth(&token)
        .json(&json!({"kind": "checkout", "name": "checkout", "path": ["checkout"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200, "{:?}", created.text().await);
    let nodes: Value = http
        .get(format!("{base}/latest/nodes?kind=checkout"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(nodes["total"], 1, "{nodes}");

    // Our route sees what the API wrote.
    let status: Value = http
        .get(format!("{base}/lab/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["nodes"]["checkout"], 1, "{status}");
    assert_eq!(status["nodes"]["kbuild"], 0, "{status}");

    // Unknown paths get the API's fallback, and no token is no write.
    let missing = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let refused = http
        .post(format!("{base}/latest/node"))
        .json(&json!({"kind": "checkout", "name": "checkout", "path": ["checkout"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    server.abort();
}

#[tokio::test]
async fn a_restart_on_the_same_directory_keeps_the_admin() {
    let dir = tempfile::tempdir().unwrap();
    let first = example::build(dir.path(), "same-secret").await.unwrap();
    let token = first.admin_token.clone();
    drop(first);
    // The same directory and secret again: the administrator is found, not created twice,
    // so the token printed by the first start still works.
    let second = example::build(dir.path(), "same-secret").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, second.router).await;
    });
    let who = reqwest::Client::new()
        .get(format!("{base}/latest/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), 200);
    let users: Value = reqwest::Client::new()
        .get(format!("{base}/latest/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["total"], 1, "{users}");
    server.abort();
}
