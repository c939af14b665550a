//! The pipeline end to end in the real binary, fast: a git tree made here whose Makefile
//! imitates kbuild, and a QEMU stand-in that prints a kernel boot log. `kernelci up
//! --config` must take a commit through checkout -> tarball -> kbuild -> boot job -> done,
//! and into KCIDB; a commit that breaks the build must end as a failed build with a logspec
//! issue. Runs on SQLite, or on PostgreSQL when KERNELCI_TEST_DATABASE_URL is set.
//! (The real-kernel version of this is scripts/e2e-real-kernel.sh.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_tree::{MAKEFILE, git};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kernelci_tests::TestDb;
use serde_json::Value;

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every node of the tree of the checkout of `commit`, once they are all `done`.
async fn wait_tree_done(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    commit: &str,
    server: &common::Server,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let checkouts = get(
            client,
            &format!("{base}/latest/nodes/fast?kind=checkout&data.kernel_revision.commit={commit}"),
            token,
        )
        .await;
        if let Some(c) = checkouts.as_array().and_then(|a| a.first()) {
            let treeid = c["treeid"].as_str().unwrap();
            let nodes = get(
                client,
                &format!("{base}/latest/nodes/fast?treeid={treeid}"),
                token,
            )
            .await;
            let nodes = nodes.as_array().unwrap().clone();
            if nodes.iter().all(|n| n["state"] == "done") && nodes.len() > 1 {
                return nodes;
            }
        }
        if Instant::now() > deadline {
            let log: Vec<String> = server.stderr.try_iter().collect();
            panic!(
                "the tree of {commit} did not finish; server log:\n{}",
                log.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn by_name<'a>(nodes: &'a [Value], name: &str) -> &'a Value {
    nodes
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {nodes:#?}"))
}

async fn kcidb_count(db_url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    if db_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(db_url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut c)
            .await
            .unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(db_url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut c)
            .await
            .unwrap()
    }
}

async fn wait_count(db_url: &str, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = kcidb_count(db_url, sql).await;
        if n >= want {
            assert_eq!(n, want, "{sql}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {n} rows, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_commit_goes_from_checkout_to_boot_test_and_into_kcidb() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, cfg) = common::fake_tree::setup(dir.path());

    let db = TestDb::new().await;
    let data = dir.path().join("data");
    let mut extra = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--trigger-poll",
        "1",
        "--holdoff",
        "1",
        "--timeout-poll",
        "1",
        "--kcidb-sweep",
        "2",
        "--kcidb-triage-interval",
        "1",
        "--patchset-poll",
        "1",
    ];
    let pg = db.url.starts_with("postgres");
    if pg {
        extra.extend(["--database-url", db.url.as_str()]);
    }
    let server = common::start("up", &data, &extra, &[]);
    let base = server.base.clone();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let token = token.trim();
    let client = reqwest::Client::new();

    // 1. A good commit: everything passes.
    let head = String::from_utf8(
        Command::new("git")
            .arg("-C")
            .arg(&tree)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let nodes = wait_tree_done(&client, &base, token, &head, &server).await;
    let checkout = by_name(&nodes, "checkout");
    assert_eq!(checkout["result"], "pass", "{checkout:#}");
    assert_eq!(checkout["data"]["kernel_revision"]["describe"], "v6.1");
    assert_eq!(checkout["data"]["kernel_revision"]["version"]["version"], 6);
    let tarball = checkout["artifacts"]["tarball"].as_str().unwrap();
    assert!(
        tarball.ends_with("/linux-fake-master-v6.1.tar.gz"),
        "{tarball}"
    );
    let kbuild = by_name(&nodes, "kbuild-gcc-x86_64");
    assert_eq!(kbuild["result"], "pass", "{kbuild:#}");
    assert_eq!(kbuild["data"]["kernel_type"], "bzimage");
    assert_eq!(kbuild["data"]["config_full"], "tinyconfig+qemu-console");
    let kernel = kbuild["artifacts"]["kernel"].as_str().unwrap();
    let image = client
        .get(kernel)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(image, "fake kernel image\n");
    let build_log = kbuild["artifacts"]["build_log"].as_str().unwrap();
    let log = client
        .get(build_log)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("CC      init/main.o"), "{log}");
    let boot = by_name(&nodes, "baseline-x86_64");
    assert_eq!(boot["result"], "pass", "{boot:#}");
    assert_eq!(boot["parent"], kbuild["id"]);
    assert_eq!(boot["data"]["platform"], "qemu-x86_64");
    let login = by_name(&nodes, "login");
    assert_eq!(login["result"], "pass");
    assert_eq!(
        login["path"],
        serde_json::json!([
            "checkout",
            "kbuild-gcc-x86_64",
            "baseline-x86_64",
            "baseline",
            "login"
        ])
    );
    // Exactly one job of each: no duplicates.
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n["name"] == "kbuild-gcc-x86_64")
            .count(),
        1
    );
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n["name"] == "baseline-x86_64")
            .count(),
        1
    );

    // Telemetry: the submissions and the results.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = get(
            &client,
            &format!("{base}/latest/telemetry?kind=job_result&job_name=baseline-x86_64"),
            token,
        )
        .await;
        let items = t["items"].as_array().cloned().unwrap_or_default();
        if let Some(e) = items.first() {
            assert_eq!(e["result"], "pass", "{e:#}");
            assert_eq!(e["runtime"], "shell");
            assert_eq!(e["device_type"], "qemu-x86_64");
            break;
        }
        assert!(Instant::now() < deadline, "no job_result telemetry: {t:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let subs = get(
        &client,
        &format!("{base}/latest/telemetry?kind=job_submission"),
        token,
    )
    .await;
    assert!(subs["items"].as_array().unwrap().len() >= 2, "{subs:#}");

    // ... and into KCIDB.
    let kcidb_url = if pg {
        db.url.clone()
    } else {
        format!("sqlite://{}", data.join("kcidb.db").display())
    };
    let kid = kbuild["id"].as_str().unwrap();
    wait_count(
        &kcidb_url,
        &format!("SELECT count(*) FROM builds WHERE id = 'maestro:{kid}' AND status = 'PASS'"),
        1,
    )
    .await;
    wait_count(
        &kcidb_url,
        "SELECT count(*) FROM tests WHERE path = 'boot.baseline.login' AND status = 'PASS'",
        1,
    )
    .await;
    wait_count(
        &kcidb_url,
        "SELECT count(*) FROM tests WHERE path = 'boot' AND status = 'PASS'",
        1,
    )
    .await;
    wait_count(
        &kcidb_url,
        &format!("SELECT count(*) FROM checkouts WHERE git_commit_hash = '{head}'"),
        1,
    )
    .await;

    // 2. A patchset on that checkout: the patched source is built and booted.
    let patched = MAKEFILE.replace("fake kernel image", "patched kernel image");
    std::fs::write(tree.join("Makefile"), &patched).unwrap();
    let diff = Command::new("git")
        .arg("-C")
        .arg(&tree)
        .args(["diff"])
        .output()
        .unwrap()
        .stdout;
    git(&tree, &["checkout", "Makefile"]);
    let ptoken = common::pipeline_token(&data, pg.then_some(db.url.as_str()));
    let resp = client
        .post(format!("{base}/pipeline/api/patchset"))
        .header("Authorization", ptoken.trim())
        .json(&serde_json::json!({"nodeid": checkout["id"], "patch": [String::from_utf8(diff).unwrap()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    let ps = &body["node"];
    assert_eq!(ps["name"], "patchset");
    assert_eq!(ps["submitter"], "user:dev@example.org");
    let ps_tree = ps["treeid"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let ps_nodes = loop {
        let nodes = get(
            &client,
            &format!("{base}/latest/nodes/fast?treeid={ps_tree}"),
            token,
        )
        .await;
        let nodes = nodes.as_array().unwrap().clone();
        if nodes.iter().any(|n| n["name"] == "login") && nodes.iter().all(|n| n["state"] == "done")
        {
            break nodes;
        }
        assert!(
            Instant::now() < deadline,
            "patchset did not finish: {nodes:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let ps_done = by_name(&ps_nodes, "patchset");
    assert_eq!(ps_done["result"], "pass", "{ps_done:#}");
    assert_eq!(
        ps_done["data"]["kernel_revision"]["patchset"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let ps_build = by_name(&ps_nodes, "kbuild-gcc-x86_64");
    assert_eq!(ps_build["parent"], ps_done["id"]);
    let image = client
        .get(ps_build["artifacts"]["kernel"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(image, "patched kernel image\n");
    assert_eq!(by_name(&ps_nodes, "login")["result"], "pass");

    // 3. A commit that breaks the build: a failed build, no boot job, a logspec issue.
    std::fs::write(tree.join("BREAK"), "").unwrap();
    git(&tree, &["add", "-A"]);
    git(&tree, &["commit", "-q", "-m", "break the build"]);
    let bad = String::from_utf8(
        Command::new("git")
            .arg("-C")
            .arg(&tree)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let nodes = wait_tree_done(&client, &base, token, &bad, &server).await;
    let kbuild = by_name(&nodes, "kbuild-gcc-x86_64");
    assert_eq!(kbuild["result"], "fail", "{kbuild:#}");
    assert!(nodes.iter().all(|n| n["name"] != "baseline-x86_64"));
    let kid = kbuild["id"].as_str().unwrap();
    wait_count(
        &kcidb_url,
        &format!("SELECT count(*) FROM builds WHERE id = 'maestro:{kid}' AND status = 'FAIL'"),
        1,
    )
    .await;
    wait_count(
        &kcidb_url,
        &format!("SELECT count(*) FROM incidents WHERE build_id = 'maestro:{kid}'"),
        1,
    )
    .await;

    // The trigger made one checkout per commit, however many polls it did.
    let all = get(
        &client,
        &format!("{base}/latest/nodes/fast?kind=checkout&name=checkout"),
        token,
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 2);
}

#[test]
fn bad_pipeline_configurations_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "jobs:\n  k:\n    templat: kbuild.jinja2\n").unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "jobs: [\n").unwrap();
    let cases: [(&Path, &[&str]); 3] = [
        (
            &typo,
            &[
                "typo.yaml: jobs.k.templat: unknown key",
                "jobs.k.template: required key missing",
            ],
        ),
        (&broken, &["broken.yaml:2:1:"]),
        (
            Path::new("/nonexistent/pipeline.yaml"),
            &["/nonexistent/pipeline.yaml", "No such file"],
        ),
    ];
    for (file, expected) in cases {
        let f = file.to_str().unwrap();
        let (code, _, err) = common::run(&["pipeline", "check", f], &[]);
        assert_eq!(code, 1, "{err}");
        for e in expected {
            assert!(err.contains(e), "{e:?} not in {err}");
        }
        // `up` refuses to start with it.
        let port = format!("127.0.0.1:{}", common::free_port());
        let (code, _, err) = common::run(
            &["up", "--data-dir", d, "--listen", &port, "--config", f],
            &[],
        );
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("cannot load the pipeline configuration"),
            "{err}"
        );
    }
    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "runtimes:\n  shell: {lab_type: shell}\n").unwrap();
    let (code, _, err) = common::run(
        &[
            "up",
            "--data-dir",
            d,
            "--config",
            ok.to_str().unwrap(),
            "--pipeline-roles",
            "trigger,bogus",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown pipeline role \"bogus\""), "{err}");
    let (code, _, err) = common::run(
        &["pipeline", "token", "--email", "nope", "--data-dir", d],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("\"nope\" is not an e-mail address"), "{err}");
    let (code, out, err) = common::run(&["pipeline", "check", ok.to_str().unwrap(), "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["runtimes"], 1);
}

/// LAVA callbacks reach `/pipeline/node/{id}` of `kernelci up` and of `kernelci pipeline
/// run --listen` (the scale-out shape); both take the lab tokens from the settings file,
/// and a broken settings file stops the start with its name. Lab runtimes are checked by
/// `pipeline check`.
#[test]
fn lava_callbacks_are_served_by_up_and_by_pipeline_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("lava.yaml");
    std::fs::write(
        &cfg,
        "runtimes:\n  lab:\n    lab_type: lava\n    url: http://127.0.0.1:9/\n    notify: {callback: {token: kernelci-callback}}\n",
    )
    .unwrap();
    let settings = d.join("kernelci.toml");
    std::fs::write(
        &settings,
        "[runtime.lab]\nruntime_token = \"api-token\"\ncallback_token = \"cb-secret\"\n",
    )
    .unwrap();
    let (c, s) = (cfg.to_str().unwrap(), settings.to_str().unwrap());
    let http = reqwest::blocking::Client::new();
    let post = |base: &str, auth: &str| {
        let resp = http
            .post(format!("{base}/pipeline/node/65a1b2c3d4e5f60718293a4b"))
            .header("authorization", auth)
            .body(r#"{"id": 1, "status": 2}"#)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };

    let data = d.join("data");
    let up = common::start(
        "up",
        &data,
        &[
            "--config",
            c,
            "--settings",
            s,
            "--pipeline-roles",
            "timeout",
        ],
        &[],
    );
    let (st, body) = post(&up.base, "wrong");
    assert_eq!(st, 401, "{body}");
    let (st, body) = post(&up.base, "cb-secret");
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("65a1b2c3d4e5f60718293a4b"), "{body}");

    // The same endpoint from a pipeline process of its own.
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let port = common::free_port();
    let mut run = Command::new(common::bin())
        .args(["pipeline", "run", "--config", c, "--settings", s])
        .args(["--pipeline-roles", "timeout", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--api-url", &format!("{}/latest", up.base)])
        .args(["--data-dir", d.join("run").to_str().unwrap()])
        .env("KCI_API_TOKEN", token.trim())
        .env_remove("KERNELCI_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        match http
            .post(format!("{base}/pipeline/node/65a1b2c3d4e5f60718293a4b"))
            .header("authorization", "api-token")
            .body(r#"{"id": 1, "status": 2}"#)
            .send()
        {
            Ok(resp) => break (resp.status().as_u16(), resp.text().unwrap()),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("pipeline run --listen never answered: {e}"),
        }
    };
    let _ = run.kill();
    let _ = run.wait();
    assert_eq!(
        answer.0, 404,
        "the runtime token is a callback token too: {}",
        answer.1
    );

    // A settings file that is not TOML stops the start, naming the file.
    std::fs::write(&settings, "[runtime.lab\n").unwrap();
    let port = format!("127.0.0.1:{}", common::free_port());
    let (code, _, err) = common::run(
        &[
            "up",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &port,
            "--config",
            c,
            "--settings",
            s,
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot read the settings file"), "{err}");
    assert!(err.contains("kernelci.toml"), "{err}");

    // `pipeline check` reports what the lab runtime refuses.
    std::fs::write(
        &cfg,
        "runtimes:\n  lab:\n    lab_type: lava\n    url: http://127.0.0.1:9/\n    priority_min: 200\n",
    )
    .unwrap();
    let (code, out, err) = common::run(&["pipeline", "check", c, "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    let warnings = summary["warnings"].to_string();
    assert!(warnings.contains("runtimes.lab.priority_min"), "{warnings}");
}
