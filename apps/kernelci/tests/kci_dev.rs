//! The real `kci-dev` (PyPI) against `kernelci up`: `maestro results` finds the nodes we
//! created, by id and with filters, dates, tree, count, paging and field selection.
//! `.ci/run` installs kci-dev into a venv and sets `KCI_DEV`; elsewhere the test looks for
//! `kci-dev` on PATH and skips with a message when there is none (it fails under CI).

mod common;

use std::path::PathBuf;
use std::process::Command;

use kernelci_tests::in_ci;
use serde_json::{Value, json};

fn kci_dev() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KCI_DEV") {
        return Some(PathBuf::from(p));
    }
    let found = Command::new("kci-dev")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    found.then(|| PathBuf::from("kci-dev"))
}

struct Kci {
    exe: PathBuf,
    dir: tempfile::TempDir,
}

impl Kci {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(&self.exe)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run kci-dev");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn results(&self, args: &[&str]) -> Value {
        let mut all = vec!["maestro", "results"];
        all.extend_from_slice(args);
        let (code, out, err) = self.run(&all);
        assert_eq!(code, 0, "kci-dev {all:?} failed: {err}");
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("kci-dev {all:?} printed no JSON ({e}): {out}"))
    }
}

async fn post(client: &reqwest::Client, base: &str, token: &str, body: Value) -> Value {
    let resp = client
        .post(format!("{base}/latest/node"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("json")
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|n| n["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn kci_dev_maestro_results_against_our_server() {
    let Some(exe) = kci_dev() else {
        assert!(!in_ci(), "under CI kci-dev must be installed (KCI_DEV)");
        eprintln!("skipped: kci-dev not found (pip install kci-dev, or set KCI_DEV)");
        return;
    };
    let data = tempfile::tempdir().expect("tmp");
    let server = common::start("up", data.path(), &[], &[]);
    let token = std::fs::read_to_string(data.path().join("admin.token"))
        .expect("token")
        .trim()
        .to_string();
    let client = reqwest::Client::new();
    let rev = json!({"tree": "mainline", "url": "https://git.example/linux.git", "branch": "master", "commit": "abc123"});
    let checkout = post(
        &client,
        &server.base,
        &token,
        json!({"kind": "checkout", "name": "checkout", "path": ["checkout"],
        "treeid": "t1", "created": "2025-03-01T10:00:00", "data": {"kernel_revision": rev}}),
    )
    .await;
    let cid = checkout["id"].as_str().expect("id").to_string();
    let kbuild = post(&client, &server.base, &token, json!({"kind": "kbuild", "name": "kbuild-gcc-12-x86", "parent": cid,
        "path": ["checkout", "kbuild-gcc-12-x86"], "state": "done", "result": "pass", "treeid": "t1",
        "created": "2025-03-01T11:00:00", "data": {"arch": "x86_64", "kernel_revision": rev}})).await;
    let kid = kbuild["id"].as_str().expect("id").to_string();
    post(&client, &server.base, &token, json!({"kind": "job", "name": "baseline-x86", "parent": kid,
        "path": ["checkout", "kbuild-gcc-12-x86", "baseline-x86"], "treeid": "t1", "created": "2025-03-02T09:00:00",
        "data": {"kernel_revision": rev}})).await;
    post(&client, &server.base, &token, json!({"kind": "checkout", "name": "checkout", "path": ["checkout"],
        "created": "2020-01-01T00:00:00", "data": {"kernel_revision": {"tree": "next", "url": "https://git.example/next.git",
        "branch": "master", "commit": "def456"}}})).await;

    let dir = tempfile::tempdir().expect("tmp");
    let config = format!(
        "default_instance=\"local\"\n[local]\napi=\"{0}/\"\npipeline=\"{0}/\"\ntoken=\"{token}\"\n",
        server.base
    );
    std::fs::write(dir.path().join(".kci-dev.toml"), config).expect("config");
    let kci = Kci { exe, dir };

    let one = kci.results(&["--nodeid", &cid]);
    assert_eq!(one[0]["id"], cid.as_str());
    assert_eq!(one[0]["treeid"], "t1");

    let (code, _, err) = kci.run(&["maestro", "results", "--nodeid", "6b0a964b72864fee38000099"]);
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");

    let builds = kci.results(&[
        "--nodes",
        "--filter",
        "kind=kbuild",
        "--filter",
        "state__ne=running",
        "--field",
        "id",
        "--field",
        "name",
    ]);
    assert_eq!(builds, json!([{"id": kid, "name": "kbuild-gcc-12-x86"}]));

    let baseline = kci.results(&["--nodes", "--filter", "name__re=^baseline"]);
    assert_eq!(names(&baseline), ["baseline-x86"]);

    let (code, out, err) = kci.run(&[
        "maestro", "results", "--nodes", "--tree", "mainline", "--count",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "3");

    let dated = kci.results(&[
        "--nodes",
        "--start-date",
        "2025-01-01",
        "--end-date",
        "2025-03-01T12:00:00",
    ]);
    assert_eq!(names(&dated), ["checkout", "kbuild-gcc-12-x86"]);

    let page = kci.results(&[
        "--nodes", "--limit", "2", "--offset", "1", "--field", "name",
    ]);
    assert_eq!(names(&page), ["kbuild-gcc-12-x86", "baseline-x86"]);

    let all = kci.results(&["--nodes", "--no-paginate", "--field", "name"]);
    assert_eq!(all.as_array().map(Vec::len), Some(4));
}

/// `kci-dev watch` follows a checkout's tree by `treeid` and exits with the test's verdict:
/// 0 when it passed, 1 when it failed.
#[tokio::test]
async fn kci_dev_watch_reports_the_test_verdict() {
    let Some(exe) = kci_dev() else {
        assert!(!in_ci(), "under CI kci-dev must be installed (KCI_DEV)");
        eprintln!("skipped: kci-dev not found (pip install kci-dev, or set KCI_DEV)");
        return;
    };
    let data = tempfile::tempdir().expect("tmp");
    let server = common::start("up", data.path(), &[], &[]);
    let token = std::fs::read_to_string(data.path().join("admin.token"))
        .expect("token")
        .trim()
        .to_string();
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tmp");
    let config = format!(
        "default_instance=\"local\"\n[local]\napi=\"{0}/\"\npipeline=\"{0}/\"\ntoken=\"{token}\"\n",
        server.base
    );
    std::fs::write(dir.path().join(".kci-dev.toml"), config).expect("config");
    let kci = Kci { exe, dir };
    for (tree, verdict, expected_code) in [("t-pass", "pass", 0), ("t-fail", "fail", 1)] {
        let checkout = post(
            &client,
            &server.base,
            &token,
            json!({"kind": "checkout", "name": "checkout",
            "path": ["checkout"], "treeid": tree, "state": "available", "result": "pass"}),
        )
        .await;
        let cid = checkout["id"].as_str().expect("id").to_string();
        let kbuild = post(&client, &server.base, &token, json!({"kind": "kbuild", "name": "kbuild-gcc-12-x86",
            "parent": cid, "path": ["checkout", "kbuild-gcc-12-x86"], "treeid": tree, "state": "done", "result": "pass"})).await;
        let job = post(&client, &server.base, &token, json!({"kind": "job", "name": "baseline-x86", "parent": kbuild["id"],
            "path": ["checkout", "kbuild-gcc-12-x86", "baseline-x86"], "treeid": tree, "state": "done", "result": verdict})).await;
        post(&client, &server.base, &token, json!({"kind": "test", "name": "login", "group": "baseline-x86",
            "parent": job["id"], "path": ["checkout", "kbuild-gcc-12-x86", "baseline-x86", "login"], "treeid": tree,
            "state": "done", "result": verdict})).await;
        let (code, out, err) = kci.run(&[
            "watch",
            "--nodeid",
            &cid,
            "--job-filter",
            "baseline-x86",
            "--test",
            "login",
        ]);
        assert_eq!(
            code, expected_code,
            "watch on a {verdict}ed test: {out}{err}"
        );
    }
}
