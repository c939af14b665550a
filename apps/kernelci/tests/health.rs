//! Infrastructure failures end to end, through `kernelci up` on the fake-kernel pipeline:
//! a lab whose QEMU cannot run fails every boot with an infrastructure error. Each is
//! retried once (bounded), opens no regression, and counts in the lab's health; once the
//! platform is above its runtime's `hold_back` threshold the scheduler holds its jobs
//! back, and the job of the next checkout is reported missing (a `MISS` in KCIDB) when
//! that checkout settles.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::fake_tree::git;
use kernelci_tests::TestDb;
use serde_json::{Value, json};

/// A QEMU that cannot start: the boot template calls that an infrastructure failure.
const BROKEN_QEMU: &str = "#!/bin/sh\necho 'qemu: could not load the firmware' >&2\nexit 127\n";

async fn get(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Waits until `pred` holds for the JSON at `url`.
async fn wait_json(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let t0 = Instant::now();
    loop {
        let v = get(http, url).await;
        if pred(&v) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "{what}: {url} says {v}"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unhealthy_platform_is_held_back_and_its_jobs_reported_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, cfg) = common::fake_tree::setup(dir.path());
    std::fs::write(dir.path().join("fake-qemu"), BROKEN_QEMU).unwrap();
    let yaml = std::fs::read_to_string(&cfg).unwrap();
    let runtime = "runtimes:\n  shell:\n    lab_type: shell\n";
    assert!(yaml.contains(runtime), "{yaml}");
    std::fs::write(
        &cfg,
        yaml.replace(
            runtime,
            &format!("{runtime}    hold_back: {{threshold: 0.5, min_results: 2, days: 1}}\n"),
        ),
    )
    .unwrap();
    let mut commits = Vec::new();
    for i in 1..=3 {
        std::fs::write(tree.join(format!("file{i}")), "x\n").unwrap();
        git(&tree, &["add", "-A"]);
        git(&tree, &["commit", "-q", "-m", &format!("change {i}")]);
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&tree)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        commits.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
    }

    let db = TestDb::new().await;
    let data = dir.path().join("data");
    let pg = db.url.starts_with("postgres");
    let (server, token) = common::start_fake_pipeline(
        &cfg,
        &data,
        &db.url,
        &[
            "--job-retries",
            "1",
            "--kcidb-sweep",
            "1",
            "--regress-interval",
            "1",
            "--health-refresh",
            "1",
        ],
    );
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let checkout = |commit: String| {
        let (http, base, token, tree) = (http.clone(), base.clone(), token.clone(), tree.clone());
        async move {
            let r = http
                .post(format!("{base}/pipeline/api/checkout"))
                .bearer_auth(&token)
                .json(
                    &json!({"url": tree.to_str().unwrap(), "branch": "master", "commit": commit,
                    "jobfilter": ["kbuild-gcc-x86_64", "baseline-x86_64"]}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let v: Value = r.json().await.unwrap();
            v["node"]["id"].as_str().unwrap().to_string()
        }
    };
    let boots = |commit: &str| {
        format!(
            "{base}/latest/nodes/fast?name=baseline-x86_64&data.kernel_revision.commit={commit}"
        )
    };

    // Two checkouts: each boot fails on the lab, is retried once, and fails again.
    for c in &commits[..2] {
        checkout(c.clone()).await;
        let nodes = wait_json(&http, &boots(c), "a boot and its retry", |v| {
            let done: Vec<&Value> = v
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["state"] == "done")
                .collect();
            done.len() == 2
        })
        .await;
        for n in nodes.as_array().unwrap() {
            assert_eq!(n["result"], "incomplete", "{n}");
            assert_eq!(n["data"]["error_code"], "Infrastructure", "{n}");
        }
        let mut counters: Vec<i64> = nodes
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["retry_counter"].as_i64().unwrap())
            .collect();
        counters.sort_unstable();
        assert_eq!(counters, [0, 1], "retried once, no more");
    }
    // The lab's health shows it (the retried attempts reach KCIDB: one ERROR each).
    let health = wait_json(
        &http,
        &format!("{base}/api/health/?threshold=0.5"),
        "the platform above the threshold",
        |v| {
            v.as_array().unwrap().iter().any(|r| {
                r["platform"] == "qemu-x86_64"
                    && r["lab"] == "shell"
                    && r["above_threshold"] == true
                    && r["total"].as_u64() >= Some(2)
            })
        },
    )
    .await;
    let row = health
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["platform"] == "qemu-x86_64")
        .unwrap();
    assert_eq!(row["infrastructure"], row["total"], "{row}");
    // Infrastructure failures opened no regression.
    let regressions = get(&http, &format!("{base}/api/regressions/?state=all")).await;
    assert_eq!(regressions, json!([]), "{regressions}");

    // The third checkout: built, but its boot is held back, then reported missing.
    let third = checkout(commits[2].clone()).await;
    let missing = wait_json(&http, &boots(&commits[2]), "the missing boot", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|n| n["data"]["missing"] == true)
    })
    .await;
    let missing = missing.as_array().unwrap();
    assert_eq!(missing.len(), 1, "no boot ran: {missing:?}");
    let m = &missing[0];
    assert_eq!(
        (m["state"].as_str(), m["result"].as_str()),
        (Some("done"), Some("incomplete"))
    );
    assert!(
        m["data"]["error_msg"]
            .as_str()
            .unwrap()
            .starts_with("missing: expected baseline-x86_64"),
        "{m}"
    );
    let builds = get(
        &http,
        &format!(
            "{base}/latest/nodes/fast?name=kbuild-gcc-x86_64&data.kernel_revision.commit={}",
            commits[2]
        ),
    )
    .await;
    assert_eq!(builds[0]["result"], "pass", "{builds}");
    let settled = get(&http, &format!("{base}/latest/node/{third}")).await;
    assert_eq!(settled["state"], "done");
    // KCIDB has it as MISS, never retried (a missing job belongs to a finished checkout).
    let kcidb_url = if pg {
        db.url.clone()
    } else {
        format!("sqlite://{}", data.join("kcidb.db").display())
    };
    let kcidb = kernelci_kcidb_server::db::KcidbDb::open(&kcidb_url)
        .await
        .unwrap();
    let id = format!("maestro:{}", m["id"].as_str().unwrap());
    let t0 = Instant::now();
    let test = loop {
        if let Some(t) = kcidb.object("tests", &id).await.unwrap() {
            break t;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{id} never reached KCIDB"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    };
    assert_eq!(test["status"], "MISS", "{test}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = get(&http, &boots(&commits[2])).await;
    assert_eq!(again.as_array().unwrap().len(), 1, "{again}");
}
