//! The LAVA callback endpoint, `POST /node/{id}` of the pipeline API (specs/pipeline.md §5),
//! on a real port over a real Maestro API: token checks, bad payloads refused and stored
//! nowhere, unknown nodes, the result tree written once however often LAVA calls, logs and
//! payload stored as artifacts.
//!
//! Payloads: built here in the shape a real LAVA 2023.01 sends (specs/real-peers.md §2.6:
//! numbers as quoted strings, `None` strings, results and log as YAML text), and the
//! payloads captured from a real LAVA in `kernelci-lava/tests/data/callbacks/`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use common::{Env, commit, sched_yaml};
use kernelci_pipeline::api::PipelineApi;
use serde_json::{Value, json};

const LAB_TOKEN: &str = "lab-runtime-token";
const CALLBACK_TOKEN: &str = "lab-callback-secret";

type Served = common::ServedApi;

async fn serve(tokens: Vec<String>) -> Served {
    let env = Env::new(&sched_yaml()).await;
    let router = PipelineApi::new(env.ctx.clone(), vec![b"secret".to_vec()])
        .with_callback_tokens(tokens)
        .router();
    common::serve_api(env, router).await
}

impl Served {
    async fn callback(&self, id: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
        self.post_raw(&format!("/node/{id}"), auth, body).await
    }

    /// checkout -> kbuild -> a running LAVA boot job; the job node.
    async fn lava_job(&self, seed: u8, name: &str) -> Value {
        let c = self.env.checkout(&commit(seed), "available").await;
        let kb = self
            .env
            .create(json!({
                "kind": "kbuild", "name": "kbuild-gcc-x86_64", "parent": c["id"],
                "path": ["checkout", "kbuild-gcc-x86_64"], "state": "available", "result": "pass",
                "data": {"kernel_revision": c["data"]["kernel_revision"], "arch": "x86_64",
                         "defconfig": "tinyconfig", "compiler": "gcc", "config_full": "tinyconfig"},
                "artifacts": {"kernel": "http://storage.invalid/bzImage"},
            }))
            .await;
        self.env
            .create(json!({
                "kind": "job", "name": name, "parent": kb["id"],
                "path": ["checkout", "kbuild-gcc-x86_64", name], "state": "running",
                "data": {"kernel_revision": c["data"]["kernel_revision"], "arch": "x86_64",
                         "defconfig": "tinyconfig", "compiler": "gcc", "config_full": "tinyconfig",
                         "platform": "qemu-x86_64", "runtime": "lava-local", "job_id": "12"},
            }))
            .await
    }

    /// Wait until node `id` is done; the node.
    async fn done(&self, id: &str) -> Value {
        for _ in 0..200 {
            let n = self.env.node(id).await;
            if n["state"] == "done" {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {id} never got done: {}", self.env.node(id).await);
    }

    /// The children of `id`, by name.
    async fn children(&self, id: &str) -> Vec<Value> {
        self.env.find(&[("parent", id)]).await
    }

    /// An artifact of the node, read from local storage (gunzipped when `.gz`).
    fn artifact(&self, url: &Value) -> String {
        let url = url.as_str().expect("artifact URL");
        let rel = url.split("/storage/").nth(1).expect("a storage URL");
        let bytes = std::fs::read(self.env.dir.path().join("artifacts").join(rel)).unwrap();
        if rel.ends_with(".gz") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8(bytes).unwrap()
        }
    }
}

/// YAML text of a list of LAVA test cases `(name, result, extra metadata)`.
fn cases(suite: &str, list: &[(&str, &str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, result, extra)) in list.iter().enumerate() {
        out.push_str(&format!(
            "- id: '{}'\n  job: '12'\n  level: 1.{i}\n  logged: '2026-11-28 08:06:56.213493+00:00'\n  measurement: None\n  metadata:\n    case: {name}\n    definition: {suite}\n    result: {result}\n{extra}  name: {name}\n  result: {result}\n  suite: {suite}\n  unit: ''\n  url: /results/12/{suite}/{name}\n",
            100 + i
        ));
    }
    out
}

fn log_yaml(lines: &[&str]) -> String {
    let mut out = String::from(
        "- {\"dt\": \"2026-11-28T08:06:50.1\", \"lvl\": \"info\", \"msg\": \"lava-dispatcher, installed at version: 2023.01\"}\n",
    );
    for l in lines {
        out.push_str(&format!(
            "- {{\"dt\": \"2026-11-28T08:06:56.2\", \"lvl\": \"target\", \"msg\": {}}}\n",
            serde_json::to_string(l).unwrap()
        ));
    }
    out
}

/// A payload as LAVA 2023.01 sends it (`dataset: all`).
fn payload(node_id: &str, health: &str, results: Value, log: Option<String>) -> String {
    let (status, health_code) = match health {
        "Complete" => (2, 1),
        "Incomplete" => (3, 2),
        _ => (4, 3),
    };
    let mut p = json!({
        "actual_device_id": "qemu-01",
        "definition": format!("device_type: qemu\njob_name: test\nmetadata:\n  node_id: {node_id}\n"),
        "description": "test", "end_time": "None", "failure_comment": null,
        "health": health_code, "health_string": health, "id": 12, "metadata": [],
        "priority": 50, "results": results,
        "start_time": "2026-11-28 08:06:49.880759+00:00", "state": 5, "state_string": "Finished",
        "status": status, "status_string": health.to_lowercase(),
        "submit_time": "2026-11-28 08:06:49.880759+00:00", "submitter_username": "admin",
        "token": CALLBACK_TOKEN,
    });
    if let Some(l) = log {
        p["log"] = l.into();
    }
    p.to_string()
}

fn complete_payload(node_id: &str) -> String {
    payload(
        node_id,
        "Complete",
        json!({
            "lava": cases("lava", &[("validate", "pass", ""), ("login-action", "pass", ""),
                                    ("kernel-messages", "pass", ""), ("job", "pass", "")]),
            "0_baseline": cases("0_baseline", &[("uname", "pass", ""), ("proc-version", "fail", "")]),
        }),
        Some(log_yaml(&[
            "[    0.000000] Linux version 6.1.99 (gcc) #1",
            "BOOT-MARKER: init reached\u{1b}[0m",
            "/ # uname -a",
        ])),
    )
}

#[tokio::test]
async fn tokens_payloads_and_node_ids_are_checked_before_anything_is_stored() {
    let s = serve(vec![LAB_TOKEN.into(), CALLBACK_TOKEN.into()]).await;
    let job = s.lava_job(1, "baseline-qemu").await;
    let id = job["id"].as_str().unwrap();
    let body = complete_payload(id);
    // Token: missing, wrong, or with a scheme LAVA never sends.
    for auth in [None, Some("nope"), Some("Token lab-callback-secret")] {
        let (st, v) = s.callback(id, auth, &body).await;
        assert_eq!(st, 401, "{auth:?}: {v}");
    }
    // Malformed payloads: 400 naming the problem.
    for (bad, says) in [
        ("{not json", "JSON"),
        ("[1, 2]", "object"),
        (r#"{"status": 2}"#, "id"),
    ] {
        let (st, v) = s.callback(id, Some(CALLBACK_TOKEN), bad).await;
        assert_eq!(st, 400, "{bad}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(says), "{bad}: {msg}");
    }
    let bad_results = payload(id, "Complete", json!({"lava": "- [unclosed"}), None);
    let (st, v) = s.callback(id, Some(CALLBACK_TOKEN), &bad_results).await;
    assert_eq!(st, 400, "{v}");
    // Unknown node (well-formed id, and not an id at all).
    let other = "65a1b2c3d4e5f60718293a4b";
    let (st, v) = s
        .callback(other, Some(LAB_TOKEN), &complete_payload(other))
        .await;
    assert_eq!(st, 404, "{v}");
    let (st, _) = s.callback("../etc", Some(LAB_TOKEN), &body).await;
    assert_eq!(st, 404);
    // A payload whose job definition names another node.
    let (st, v) = s
        .callback(id, Some(LAB_TOKEN), &complete_payload(other))
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains(other), "{v}");
    // Nothing was written.
    let n = s.env.node(id).await;
    assert_eq!(n["state"], "running");
    assert_eq!(n["artifacts"], json!({}));
    assert!(s.children(id).await.is_empty());
    // Both lab tokens are accepted.
    let (st, v) = s.callback(id, Some(LAB_TOKEN), &body).await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["message"], "OK");
    s.done(id).await;
}

#[tokio::test]
async fn no_configured_lab_means_every_callback_is_refused() {
    let s = serve(vec![]).await;
    let job = s.lava_job(2, "baseline-qemu").await;
    let id = job["id"].as_str().unwrap();
    let (st, v) = s
        .callback(id, Some(CALLBACK_TOKEN), &complete_payload(id))
        .await;
    assert_eq!(st, 401, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("no LAVA lab token"),
        "{v}"
    );
}

#[tokio::test]
async fn a_complete_job_becomes_a_result_tree_once() {
    let s = serve(vec![CALLBACK_TOKEN.into()]).await;
    let job = s.lava_job(3, "baseline-qemu").await;
    let id = job["id"].as_str().unwrap();
    let body = complete_payload(id);
    let (st, v) = s.callback(id, Some(CALLBACK_TOKEN), &body).await;
    assert_eq!(st, 202, "{v}");
    let n = s.done(id).await;
    // A failed test case in a suite of a complete job fails the job (§5.3.5).
    assert_eq!(n["result"], "fail", "{n}");
    assert_eq!(n["data"]["device"], "qemu-01");
    assert_eq!(n["processed_by_kcidb_bridge"], false);
    let children = s.children(id).await;
    let names: Vec<&str> = children
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"setup") && names.contains(&"baseline"),
        "{names:?}"
    );
    let setup = children.iter().find(|c| c["name"] == "setup").unwrap();
    let tests = s.children(setup["id"].as_str().unwrap()).await;
    let login = tests.iter().find(|t| t["name"] == "login").expect("login");
    assert_eq!(login["result"], "pass");
    assert_eq!(login["kind"], "test");
    assert_eq!(
        login["path"],
        json!([
            "checkout",
            "kbuild-gcc-x86_64",
            "baseline-qemu",
            "setup",
            "login"
        ])
    );
    assert_eq!(login["data"]["arch"], "x86_64");
    assert_eq!(login["data"]["platform"], "qemu-x86_64");
    let baseline = children.iter().find(|c| c["name"] == "baseline").unwrap();
    assert_eq!(baseline["result"], "fail");
    let cases = s.children(baseline["id"].as_str().unwrap()).await;
    let pv = cases.iter().find(|t| t["name"] == "proc-version").unwrap();
    assert_eq!(pv["result"], "fail");
    // Logs and payload are stored; the console is the target lines only, ESC made visible.
    let console = s.artifact(&n["artifacts"]["lava_log"]);
    assert!(console.contains("Linux version 6.1.99"), "{console}");
    assert!(
        console.contains("BOOT-MARKER: init reached^[[0m"),
        "{console}"
    );
    assert!(!console.contains("lava-dispatcher"), "{console}");
    let stored: Value =
        serde_json::from_str(&s.artifact(&n["artifacts"]["callback_data"])).unwrap();
    assert_eq!(stored["id"], 12);
    assert!(stored.get("token").is_none(), "the token is not stored");
    assert!(
        s.artifact(&n["artifacts"]["lava_logs"])
            .contains("lava-dispatcher")
    );
    // LAVA calling again (or a proxy retrying) changes nothing.
    let total = s.env.count(&[("data.runtime", "lava-local")]).await;
    assert_eq!(
        total,
        1 + 2 + 2 + 2,
        "the job, setup + 2 tests, baseline + 2 tests"
    );
    for _ in 0..3 {
        let (st, v) = s.callback(id, Some(CALLBACK_TOKEN), &body).await;
        assert_eq!(st, 200, "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("Already processed"),
            "{v}"
        );
    }
    assert_eq!(s.env.count(&[("data.runtime", "lava-local")]).await, total);
}

#[tokio::test]
async fn concurrent_repeats_write_one_tree() {
    let s = serve(vec![CALLBACK_TOKEN.into()]).await;
    let job = s.lava_job(4, "baseline-qemu").await;
    let id = job["id"].as_str().unwrap().to_string();
    let body = complete_payload(&id);
    let calls = (0..4).map(|_| s.callback(&id, Some(CALLBACK_TOKEN), &body));
    let answers = futures_util::future::join_all(calls).await;
    let accepted = answers.iter().filter(|(st, _)| *st == 202).count();
    assert_eq!(accepted, 1, "{answers:?}");
    assert!(
        answers.iter().all(|(st, _)| *st == 202 || *st == 200),
        "{answers:?}"
    );
    s.done(&id).await;
    assert_eq!(s.children(&id).await.len(), 2);
}

#[tokio::test]
async fn an_incomplete_job_is_an_infrastructure_error_not_a_kernel_failure() {
    let s = serve(vec![CALLBACK_TOKEN.into()]).await;
    let job = s.lava_job(5, "baseline-qemu").await;
    let id = job["id"].as_str().unwrap();
    let body = payload(
        id,
        "Incomplete",
        json!({"lava": cases("lava", &[
            ("validate", "fail", ""),
            ("job", "fail", "    error_msg: 'Invalid job data: [\"Image file does not exist\"]'\n    error_type: Infrastructure\n"),
        ])}),
        Some(log_yaml(&[])),
    );
    let (st, v) = s.callback(id, Some(CALLBACK_TOKEN), &body).await;
    assert_eq!(st, 202, "{v}");
    let n = s.done(id).await;
    assert_eq!(n["result"], "incomplete", "{n}");
    assert_eq!(n["data"]["error_code"], "Infrastructure");
    assert!(
        n["data"]["error_msg"]
            .as_str()
            .unwrap()
            .contains("Image file does not exist"),
        "{n}"
    );
}

#[tokio::test]
async fn a_late_callback_overrides_a_timeout() {
    let s = serve(vec![CALLBACK_TOKEN.into()]).await;
    let job = s.lava_job(6, "baseline-qemu").await;
    let id = job["id"].as_str().unwrap();
    s.env
        .update(id, |n| {
            n["state"] = "done".into();
            n["result"] = "incomplete".into();
            n["data"]["error_code"] = "node_timeout".into();
            n["data"]["error_msg"] = "Node timed-out".into();
        })
        .await;
    let body = payload(
        id,
        "Complete",
        json!({"lava": cases("lava", &[("login-action", "pass", ""), ("job", "pass", "")])}),
        Some(log_yaml(&["[    0.000000] Linux version 6.1.99"])),
    );
    let (st, v) = s.callback(id, Some(CALLBACK_TOKEN), &body).await;
    assert_eq!(st, 202, "{v}");
    for _ in 0..200 {
        if s.env.node(id).await["result"] == "pass" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = s.env.node(id).await;
    assert_eq!(n["result"], "pass", "{n}");
    assert!(
        n["data"].get("error_code").is_none_or(Value::is_null),
        "{n}"
    );
}

/// The payloads captured from a real LAVA (kernelci-lava/tests/data/callbacks): each is
/// accepted and gives the health its meta file records.
#[tokio::test]
async fn payloads_captured_from_a_real_lava_are_processed() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../kernelci-lava/tests/data/callbacks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().ends_with(".meta.json")
    });
    files.sort();
    assert!(
        !files.is_empty(),
        "no captured payloads in {}",
        dir.display()
    );
    let s = serve(vec![CALLBACK_TOKEN.into()]).await;
    for (i, file) in files.iter().enumerate() {
        let raw = std::fs::read_to_string(file).unwrap();
        let captured: Value = serde_json::from_str(&raw).unwrap();
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(file.with_extension("meta.json")).unwrap(),
        )
        .unwrap();
        let job = s.lava_job(100 + i as u8, "baseline-qemu").await;
        let id = job["id"].as_str().unwrap();
        // Point the captured job at our node.
        let old = captured_node_id(&captured).unwrap_or_default();
        let body = if old.is_empty() {
            raw.clone()
        } else {
            raw.replace(&old, id)
        };
        let (st, v) = s.callback(id, Some(CALLBACK_TOKEN), &body).await;
        assert_eq!(st, 202, "{}: {v}", file.display());
        let n = s.done(id).await;
        let expected = match meta["health"].as_str().unwrap_or_default() {
            "Complete" => ["pass", "fail"].as_slice(),
            _ => ["incomplete", "fail"].as_slice(),
        };
        assert!(
            expected.contains(&n["result"].as_str().unwrap_or("null")),
            "{}: {n}",
            file.display()
        );
        if meta["health"] != "Complete" {
            assert!(
                n["data"]["error_code"].is_string(),
                "{}: {n}",
                file.display()
            );
        }
        assert_eq!(n["data"]["device"], captured["actual_device_id"]);
    }
}

fn captured_node_id(payload: &Value) -> Option<String> {
    let def = payload["definition"].as_str()?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(def).ok()?;
    doc.get("metadata")?
        .get("node_id")?
        .as_str()
        .map(String::from)
}
