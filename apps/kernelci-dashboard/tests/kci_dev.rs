//! The real `kci-dev` (PyPI) `results` commands against the dashboard API with `small/`
//! loaded. `.ci/run` installs kci-dev into a venv and sets `KCI_DEV`; elsewhere the test
//! looks for `kci-dev` on PATH or in /tmp/kernelci-ci/venv and skips with a message when
//! there is none (it fails under CI).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::{Fixture, Server, days_covering, is_boot, small_fixtures};
use kernelci_tests::{TestDb, in_ci};
use serde_json::Value;

fn kci_dev() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KCI_DEV") {
        return Some(PathBuf::from(p));
    }
    let works = |exe: &str| {
        Command::new(exe)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ["kci-dev", "/tmp/kernelci-ci/venv/bin/kci-dev"]
        .into_iter()
        .find(|e| works(e))
        .map(PathBuf::from)
}

struct Kci {
    exe: PathBuf,
    dir: tempfile::TempDir,
}

impl Kci {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(&self.exe)
            .arg("results")
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

    fn json(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "kci-dev results {args:?} failed: {err}\n{out}");
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("kci-dev results {args:?} printed no JSON ({e}): {out}"))
    }
}

fn count_status(objects: &[&serde_json::Map<String, Value>]) -> (u64, u64, u64) {
    let mut c = (0, 0, 0);
    for o in objects {
        match o.get("status").and_then(Value::as_str) {
            Some("PASS") => c.0 += 1,
            Some("FAIL") => c.1 += 1,
            _ => c.2 += 1,
        }
    }
    c
}

fn triple(v: &Value) -> (u64, u64, u64) {
    (
        v["pass"].as_u64().unwrap(),
        v["fail"].as_u64().unwrap(),
        v["inconclusive"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kci_dev_results_against_the_dashboard_api() {
    let Some(exe) = kci_dev() else {
        assert!(!in_ci(), "under CI kci-dev must be installed (KCI_DEV)");
        eprintln!("skipped: kci-dev not found (pip install kci-dev, or set KCI_DEV)");
        return;
    };
    let Some(fixtures) = small_fixtures() else {
        return;
    };
    let f = Fixture::read(&fixtures);
    let server = Server::start(TestDb::new().await, &fixtures).await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join(".kci-dev.toml"),
        format!("dashboard_api = \"{}/api/\"\n", server.base),
    )
    .expect("config");
    let kci = Kci { exe, dir };
    let days = days_covering(&f).to_string();

    // trees: the heads of maestro's tree/branches.
    let trees = kci.json(&["trees", "--origin", "maestro", "--days", &days, "--json"]);
    let maestro: Vec<_> = f
        .checkouts
        .values()
        .filter(|c| c["origin"] == "maestro")
        .collect();
    let branches: BTreeSet<(String, String)> = maestro
        .iter()
        .map(|c| {
            (
                c["tree_name"].to_string(),
                c["git_repository_branch"].to_string(),
            )
        })
        .collect();
    assert_eq!(trees.as_array().unwrap().len(), branches.len(), "{trees}");
    for t in trees.as_array().unwrap() {
        let hash = t["latest_commit_hash"].as_str().unwrap();
        let c = maestro
            .iter()
            .find(|c| c["git_commit_hash"] == hash)
            .expect("a maestro checkout");
        assert_eq!(t["giturl"], c["git_repository_url"]);
        let newest = maestro
            .iter()
            .filter(|o| {
                o["git_repository_url"] == c["git_repository_url"]
                    && o["git_repository_branch"] == c["git_repository_branch"]
            })
            .map(|o| o["start_time"].as_str().unwrap())
            .max()
            .unwrap();
        assert_eq!(t["latest_commit_start_time"].as_str(), Some(newest));
    }

    // summary / builds / boots / tests of every checkout, as kci-dev counts them.
    for (id, c) in &f.checkouts {
        let origin = c["origin"].as_str().unwrap();
        let url = c["git_repository_url"].as_str().unwrap();
        let branch = c["git_repository_branch"].as_str().unwrap();
        let hash = c["git_commit_hash"].as_str().unwrap();
        let common = [
            "--origin", origin, "--giturl", url, "--branch", branch, "--commit", hash,
        ];
        let builds: Vec<_> = f
            .builds
            .values()
            .filter(|b| b["checkout_id"] == id.as_str())
            .collect();
        let tests_of = |boots: bool| -> Vec<&serde_json::Map<String, Value>> {
            f.tests
                .values()
                .filter(|t| {
                    f.checkout_of_test(t).as_deref() == Some(id.as_str()) && is_boot(t) == boots
                })
                .collect()
        };
        let (boots, tests) = (tests_of(true), tests_of(false));

        let mut args = vec!["summary"];
        args.extend(common);
        args.push("--json");
        let summary = kci.json(&args);
        assert_eq!(
            triple(&summary["builds"]),
            count_status(&builds),
            "{id} builds"
        );
        assert_eq!(
            triple(&summary["boots"]),
            count_status(&boots),
            "{id} boots"
        );
        assert_eq!(
            triple(&summary["tests"]),
            count_status(&tests),
            "{id} tests"
        );

        let mut args = vec!["builds"];
        args.extend(common);
        args.push("--json");
        let got = kci.json(&args);
        let got_ids: BTreeSet<&str> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        let want_ids: BTreeSet<&str> = builds.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(got_ids, want_ids, "{id} builds");

        for (cmd, want) in [("boots", &boots), ("tests", &tests)] {
            let mut args = vec![cmd];
            args.extend(common);
            args.push("--json");
            let got = kci.json(&args);
            let got_ids: BTreeSet<&str> = got
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap())
                .collect();
            let want_ids: BTreeSet<&str> = want.iter().map(|t| t["id"].as_str().unwrap()).collect();
            assert_eq!(got_ids, want_ids, "{id} {cmd}");
            // Client-side status filter over our data.
            let mut args = vec![cmd];
            args.extend(common);
            args.extend(["--status", "fail", "--count", "--json"]);
            let n = kci.json(&args);
            let fails = want
                .iter()
                .filter(|t| t.get("status").and_then(Value::as_str) == Some("FAIL"))
                .count();
            assert_eq!(
                n["count"].as_u64(),
                Some(fails as u64),
                "{id} {cmd} --status fail"
            );
        }
    }

    // build --id prints a Python dict (kci-dev's own format): check the fields it shows.
    let (bid, b) = f.builds.iter().next().unwrap();
    let (code, out, err) = kci.run(&["build", "--id", bid, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("'id': '{bid}'")), "{out}");
    assert!(
        out.contains(&format!(
            "'config': '{}'",
            b["config_name"].as_str().unwrap()
        )),
        "{out}"
    );
    let (code, _, err) = kci.run(&["build", "--id", "nobody:nothing", "--json"]);
    assert_ne!(code, 0);
    assert!(err.contains("404"), "{err}");

    // issues (ingested now, so within the default 5 days) and one issue.
    let issues = kci.json(&["issues", "--origin", "maestro", "--json"]);
    let want: BTreeSet<&str> = f
        .issues
        .iter()
        .filter(|(_, i)| i["origin"] == "maestro")
        .map(|(k, _)| k.0.as_str())
        .collect();
    let got: BTreeSet<&str> = issues
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    let two_versions = f
        .issues
        .keys()
        .find(|k| k.1 == 2)
        .map(|k| k.0.clone())
        .expect("an issue with version 2");
    let issue = kci.json(&["issue", "--id", &two_versions, "--json"]);
    assert_eq!(issue["issue"]["version"], 2);
    assert!(
        issue["builds"].is_array() && issue["tests"].is_array(),
        "{issue}"
    );

    // hardware list: the fixtures are older than kci-dev's fixed 7-day window.
    let hw = kci.json(&["hardware", "list", "--origin", "maestro", "--json"]);
    assert_eq!(hw, Value::Array(vec![]));
}

/// `kci-dev results compare` on two fresh commits of a branch (the fixtures are older than
/// its tree-report window): a boot that passed on BASE and fails on HEAD is a regression,
/// a test passing on both is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kci_dev_compare_finds_the_regression() {
    let Some(exe) = kci_dev() else {
        assert!(!in_ci(), "under CI kci-dev must be installed (KCI_DEV)");
        eprintln!("skipped: kci-dev not found (pip install kci-dev, or set KCI_DEV)");
        return;
    };
    let empty = tempfile::tempdir().expect("tmp");
    let server = Server::start(TestDb::new().await, empty.path()).await;
    let url = "https://git.example/linux.git";
    let now = chrono::Utc::now();
    let commit = |i: usize| format!("{i:040x}");
    let mut checkouts = Vec::new();
    let mut builds = Vec::new();
    let mut tests = Vec::new();
    for i in 0..2usize {
        let start = (now - chrono::Duration::hours(2 - i as i64)).to_rfc3339();
        checkouts.push(
            serde_json::json!({"id": format!("lab:c{i}"), "origin": "lab",
            "tree_name": "mainline", "git_repository_branch": "master",
            "git_repository_url": url, "git_commit_hash": commit(i), "start_time": start}),
        );
        builds.push(
            serde_json::json!({"id": format!("lab:b{i}"), "origin": "lab",
            "checkout_id": format!("lab:c{i}"), "status": "PASS", "config_name": "defconfig",
            "architecture": "x86_64", "compiler": "gcc-12", "start_time": start}),
        );
        for (path, status) in [("boot", ["PASS", "FAIL"][i]), ("kselftest.net", "PASS")] {
            tests.push(
                serde_json::json!({"id": format!("lab:t{i}-{path}"), "origin": "lab",
                "build_id": format!("lab:b{i}"), "path": path, "status": status,
                "start_time": start, "environment": {"misc": {"platform": "qemu-x86"}}}),
            );
        }
    }
    let doc = serde_json::json!({"version": {"major": 5, "minor": 3}, "checkouts": checkouts,
        "builds": builds, "tests": tests});
    server
        .db
        .load(kernelci_kcidb::load(doc.to_string().as_bytes()).expect("valid"))
        .await
        .expect("load");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join(".kci-dev.toml"),
        format!("dashboard_api = \"{}/api/\"\n", server.base),
    )
    .expect("config");
    // kci-dev 0.1.12's `results compare` builds its client without the settings, so it
    // always asks dashboard.kernelci.org; its library takes the API base: call that, with
    // the Python of kci-dev's own environment.
    let python = exe.with_file_name("python");
    if !python.exists() {
        assert!(!in_ci(), "no python beside {}", exe.display());
        eprintln!("skipped: no python beside {}", exe.display());
        return;
    }
    let script = "import json, sys\n\
        from kcidev.api import KernelCIClient\n\
        c = KernelCIClient(dashboard_api=sys.argv[1])\n\
        print(json.dumps(c.compare_results(sys.argv[2], sys.argv[3], sys.argv[4], 'master', 'lab')))\n";
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(format!("{}/api/", server.base))
        .args([commit(0).as_str(), commit(1).as_str(), url])
        .current_dir(dir.path())
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("compare printed no JSON ({e}): {text}"));
    assert_eq!(report["incomplete"], false, "{report}");
    let regressions: Vec<&Value> = report["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["category"] == "regression")
        .collect();
    assert_eq!(regressions.len(), 1, "{report}");
    assert_eq!(regressions[0]["head_id"], "lab:t1-boot", "{report}");
}
