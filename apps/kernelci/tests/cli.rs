//! The `kernelci` binary end to end: `up` on SQLite, the admin commands, clear start-up
//! errors, and two API processes sharing one PostgreSQL database.

mod common;

use std::time::Duration;

use common::{run, start};
use kernelci_tests::{TestDb, in_ci, pg_server_url};
use serde_json::{Value, json};

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let resp = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn up_bootstraps_an_admin_whose_token_works() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = start("up", dir.path(), &[], &[]);
    let token_path = dir.path().join("admin.token");
    let token = std::fs::read_to_string(&token_path)
        .expect("admin.token written")
        .trim()
        .to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "admin.token must be private");
    }
    let client = reqwest::Client::new();
    let (status, me) = get_json(&client, &format!("{}/latest/whoami", server.base), &token).await;
    assert_eq!(status, 200);
    assert_eq!(me["username"], "admin");
    assert_eq!(me["is_superuser"], true);
    // `up` serves Maestro under /latest and /v0 only; unprefixed paths belong to other roles.
    let (status, _) = get_json(&client, &format!("{}/v0/whoami", server.base), &token).await;
    assert_eq!(status, 200);
    drop(server);

    // A restart keeps the admin (and its token, signed by the secret kept in the database).
    let server = start("up", dir.path(), &[], &[]);
    let (status, _) = get_json(&client, &format!("{}/latest/whoami", server.base), &token).await;
    assert_eq!(status, 200, "tokens survive a restart");
}

#[tokio::test]
async fn admin_commands_create_users_and_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf8 path");
    let (code, out, err) = run(
        &[
            "admin",
            "user",
            "add",
            "lab-bot",
            "--email",
            "bot@lab.example",
            "--json",
            "--data-dir",
            d,
        ],
        &[],
    );
    assert_eq!(code, 0, "stderr: {err}");
    let user: Value = serde_json::from_str(&out).expect("json output");
    assert_eq!(user["username"], "lab-bot");
    assert_eq!(user["is_superuser"], false);
    let (code, _, err) = run(
        &[
            "admin",
            "user",
            "add",
            "lab-bot",
            "--email",
            "x@lab.example",
            "--data-dir",
            d,
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = run(&["admin", "token", "nobody", "--data-dir", d], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no user named"), "{err}");
    let (code, token, err) = run(&["admin", "token", "lab-bot", "--data-dir", d], &[]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();

    let server = start("api", dir.path(), &[], &[]);
    let client = reqwest::Client::new();
    let body = json!({"kind": "checkout", "name": "checkout", "path": ["checkout"]});
    let resp = client
        .post(format!("{}/node", server.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "the role alone serves unprefixed paths"
    );
    let node: Value = resp.json().await.expect("json");
    assert_eq!(node["owner"], "lab-bot");
}

#[test]
fn startup_errors_are_clear() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf8 path");
    let (code, _, err) = run(&["up", "--data-dir", d, "--listen", "not-an-address"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("is not an address"), "{err}");

    let (code, _, err) = run(
        &[
            "up",
            "--data-dir",
            d,
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot open database postgres://nobody@127.0.0.1:1/none"),
        "{err}"
    );

    let (code, _, err) = run(&["up", "--data-dir", d, "--database-url", "mysql://x"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("unsupported URL scheme"), "{err}");

    let blocker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = blocker.local_addr().expect("addr").to_string();
    let (code, _, err) = run(&["up", "--data-dir", d, "--listen", &addr], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("already in use"), "{err}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    let (code, _, err) = run(&["up", "--data-dir", file.to_str().expect("utf8")], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot create data directory"), "{err}");
}

/// Two API processes on one PostgreSQL database: an event created through one is delivered
/// to a listener on the other (LISTEN/NOTIFY wake-up, events table as the source of truth).
#[tokio::test(flavor = "multi_thread")]
async fn two_processes_on_one_postgres_share_events() {
    let Some(base) = pg_server_url() else {
        assert!(
            !in_ci(),
            "under CI this test must run: set KERNELCI_TEST_PG"
        );
        eprintln!("skipped: KERNELCI_TEST_PG is not set");
        return;
    };
    let db = TestDb::postgres(&base).await;
    let dir_a = tempfile::tempdir().expect("tmp");
    let dir_b = tempfile::tempdir().expect("tmp");
    let env = [
        ("KERNELCI_SECRET_KEY", "shared-secret"),
        ("KERNELCI_KEEP_ALIVE", "10"),
    ];
    let args = ["--database-url", db.url.as_str()];
    let a = start("api", dir_a.path(), &args, &env);
    let b = start("api", dir_b.path(), &args, &env);
    // Exactly one of them bootstrapped the admin; take its token.
    let token = [dir_a.path(), dir_b.path()]
        .iter()
        .find_map(|d| std::fs::read_to_string(d.join("admin.token")).ok())
        .expect("one process wrote admin.token")
        .trim()
        .to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let sub: Value = client
        .post(format!("{}/subscribe/node", b.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("subscribe")
        .json()
        .await
        .expect("json");
    let sub_id = sub["id"].as_i64().expect("sub id");
    let listen_url = format!("{}/listen/{sub_id}", b.base);
    let listener = {
        let client = client.clone();
        let token = token.clone();
        tokio::spawn(async move {
            client
                .get(listen_url)
                .bearer_auth(token)
                .send()
                .await
                .expect("listen")
                .json::<Value>()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node: Value = client
        .post(format!("{}/node", a.base))
        .bearer_auth(&token)
        .json(&json!({"kind": "checkout", "name": "checkout", "path": ["checkout"]}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let msg = listener.await.expect("join").expect("listen json");
    let event: Value =
        serde_json::from_str(msg["data"].as_str().expect("data string")).expect("cloud event");
    assert_eq!(event["data"]["op"], "created");
    assert_eq!(
        event["data"]["id"], node["id"],
        "process B delivered the event created through A"
    );
}
