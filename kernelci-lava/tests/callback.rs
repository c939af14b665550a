//! Callbacks built from the measured LAVA 2023.01 payload shapes (specs/real-peers.md §2.6)
//! through `Callback::parse` and `hierarchy`, and the real captured bodies in
//! `tests/data/callbacks/` checked against the facts in their `.meta.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kernelci_lava::{Callback, CallbackError, LabConfig, LabSecrets};
use serde_json::{Map, Value, json};

/// One test case in lava-server's `export_testcase` shape (quoted numbers, `None`).
fn case(name: &str, result: &str, meta: &[(&str, &str)]) -> String {
    let mut text = format!(
        "- id: '101'\n  job: '7'\n  level: 1.1.1\n  log_end_line: ''\n  log_start_line: ''\n  \
         logged: '2026-11-28 08:06:56.213493+00:00'\n  measurement: None\n  metadata:\n    \
         case: {name}\n    definition: lava\n    result: {result}\n"
    );
    for (k, v) in meta {
        text.push_str(&format!("    {k}: {}\n", json!(v)));
    }
    text.push_str(&format!(
        "  name: {name}\n  result: {result}\n  suite: lava\n  unit: ''\n  url: /results/testcase/101\n"
    ));
    text
}

fn suite(cases: &[String]) -> Value {
    Value::String(cases.concat())
}

/// A log in LAVA's one-line-per-entry form.
fn log(entries: &[(&str, Value)]) -> Value {
    let mut text = String::new();
    for (i, (lvl, msg)) in entries.iter().enumerate() {
        text.push_str(&format!(
            "- {{\"dt\": \"2026-11-28T08:06:{:02}.213493\", \"lvl\": \"{lvl}\", \"msg\": {msg}}}\n",
            i % 60
        ));
    }
    Value::String(text)
}

fn boot_log() -> Value {
    log(&[
        (
            "info",
            json!("lava-dispatcher, installed at version: 2023.01"),
        ),
        (
            "results",
            json!({"case": "validate", "definition": "lava", "result": "pass"}),
        ),
        (
            "target",
            json!("Booting from ROM..c[?7l[2J[    0.000000] Linux version 6.1.192"),
        ),
        ("target", json!("BOOT-MARKER: init reached\u{1b}[0m\u{0}")),
        ("target", json!("   ")),
        ("input", json!("uname -a\n")),
        ("target", json!("/ # [6nuname -a\tx")),
    ])
}

fn body(mut v: Value) -> Vec<u8> {
    // Fields every measured payload has.
    let defaults = json!({
        "description": "baseline-x86", "end_time": "None", "failure_comment": null,
        "metadata": [], "priority": 50, "submit_time": "2026-11-28 08:06:40.1+00:00",
        "start_time": "2026-11-28 08:06:49.880759+00:00", "submitter_username": "admin",
        "token": "ci-callback-secret-123", "actual_device_id": "qemu-01",
        "definition": "job_name: baseline-x86\nmetadata:\n  node_id: 65a1b2c3d4e5f60718293a4b\n",
    });
    if let (Some(obj), Value::Object(d)) = (v.as_object_mut(), defaults) {
        for (k, val) in d {
            obj.entry(k).or_insert(val);
        }
    }
    serde_json::to_vec(&v).unwrap()
}

fn job_node(name: &str) -> Value {
    json!({
        "id": "65a1b2c3d4e5f60718293a4b",
        "name": name,
        "kind": "job",
        "path": ["checkout", "kbuild-gcc-12-x86", name],
        "group": "kbuild-gcc-12-x86",
        "state": "running",
        "result": null,
        "artifacts": {"kernel": "http://storage/bzImage"},
        "data": {
            "kernel_revision": {"tree": "mainline", "branch": "master", "commit": "abc"},
            "arch": "x86_64", "defconfig": "defconfig", "config_full": "defconfig",
            "compiler": "gcc-12", "platform": "qemu-x86", "runtime": "lava-local",
            "kernel_type": "bzimage", "job_id": "7", "unrelated": 1,
        },
    })
}

/// `(name, kind, result)` of the children of a hierarchy item.
fn children(item: &Value) -> Vec<(String, String, Value)> {
    item["child_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n = &c["node"];
            (
                n["name"].as_str().unwrap().to_string(),
                n["kind"].as_str().unwrap().to_string(),
                n["result"].clone(),
            )
        })
        .collect()
}

fn child<'a>(item: &'a Value, name: &str) -> &'a Value {
    item["child_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["node"]["name"] == name)
        .unwrap_or_else(|| panic!("no child {name} in {item}"))
}

fn complete_results() -> Value {
    json!({
        "lava": suite(&[
            case("validate", "pass", &[]),
            case("file-download", "pass", &[]),
            case("file-download", "pass", &[]),
            case("execute-qemu", "pass", &[]),
            case("kernel-messages", "pass", &[]),
            case("login-action", "pass", &[]),
            case("0_smoke-interactive", "pass", &[]),
            case("job", "pass", &[]),
        ]),
        "0_smoke-interactive": suite(&[case("uname", "pass", &[]), case("shell-arithmetic", "pass", &[])]),
    })
}

#[test]
fn complete_job_with_login_and_an_interactive_suite() {
    let cb = Callback::parse(&body(json!({
        "id": 7, "status": 2, "health_string": "Complete", "state": 5,
        "results": complete_results(), "log": boot_log(),
    })))
    .unwrap();
    assert_eq!(cb.job_id(), 7);
    assert_eq!(cb.job_result(), Some("pass"));
    assert_eq!(cb.device(), Some("qemu-01"));
    assert_eq!(cb.node_id().as_deref(), Some("65a1b2c3d4e5f60718293a4b"));
    assert_eq!(cb.health_string(), Some("Complete"));
    assert_eq!(
        cb.target_log(),
        "Booting from ROM..c[?7l[2J[    0.000000] Linux version 6.1.192\n\
         BOOT-MARKER: init reached^[[0m\n/ # [6nuname -a?x\n"
    );
    let yaml = cb.log_yaml();
    let entries: Vec<Value> = serde_yaml_ng::from_str(&yaml).unwrap();
    // info + 3 non-blank target lines + input; results (mapping) and the blank line dropped.
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[4]["msg"], "/ # [6nuname -a\tx");
    assert_eq!(entries[3]["msg"], "uname -a");

    let mut node = job_node("baseline-x86");
    node["data"]["error_code"] = "node_timeout".into();
    node["data"]["error_msg"] = "Node timed-out".into();
    let tree = cb.hierarchy(&node);
    let root = &tree["node"];
    assert_eq!(root["result"], "pass");
    assert_eq!(root["state"], "done");
    assert_eq!(root["data"]["device"], "qemu-01");
    assert!(
        root["data"].get("error_code").is_none(),
        "node_timeout cleared: {root}"
    );
    assert!(root["data"].get("error_msg").is_none());
    assert_eq!(root["data"]["unrelated"], 1);
    assert_eq!(root["artifacts"]["kernel"], "http://storage/bzImage");
    assert_eq!(root["processed_by_kcidb_bridge"], false);
    assert_eq!(root["id"], "65a1b2c3d4e5f60718293a4b");
    assert_eq!(
        children(&tree),
        vec![
            ("setup".into(), "job".into(), json!("pass")),
            ("smoke-interactive".into(), "job".into(), json!("pass")),
        ]
    );
    let setup = child(&tree, "setup");
    assert_eq!(
        children(setup),
        vec![
            ("login".into(), "test".into(), json!("pass")),
            ("kernelmsg".into(), "test".into(), json!("pass")),
        ]
    );
    let uname = child(child(&tree, "smoke-interactive"), "uname");
    assert_eq!(
        uname["node"],
        json!({
            "name": "uname", "kind": "test", "state": "done", "result": "pass",
            "path": ["checkout", "kbuild-gcc-12-x86", "baseline-x86", "smoke-interactive", "uname"],
            "group": "baseline-x86",
            "data": {
                "kernel_revision": {"tree": "mainline", "branch": "master", "commit": "abc"},
                "kernel_type": "bzimage", "arch": "x86_64", "defconfig": "defconfig",
                "config_full": "defconfig", "compiler": "gcc-12", "platform": "qemu-x86",
                "runtime": "lava-local",
            },
        })
    );
    assert_eq!(uname["child_nodes"], json!([]));
    // The input node is not changed.
    assert_eq!(node["state"], "running");
    // The stored payload has everything but the token.
    let stored = cb.stored_payload();
    assert!(stored.get("token").is_none());
    assert_eq!(stored["end_time"], "None");
    assert!(stored["log"].as_str().unwrap().contains("BOOT-MARKER"));
}

#[test]
fn a_failed_case_fails_its_suite_and_the_job() {
    let mut results = complete_results();
    results["0_smoke-interactive"] = suite(&[
        case("uname", "pass", &[]),
        case("missing-file", "fail", &[]),
    ]);
    let cb = Callback::parse(&body(
        json!({"id": 8, "status": 2, "results": results, "log": boot_log()}),
    ))
    .unwrap();
    let tree = cb.hierarchy(&job_node("baseline-x86"));
    assert_eq!(tree["node"]["result"], "fail");
    assert_eq!(child(&tree, "smoke-interactive")["node"]["result"], "fail");
    assert!(tree["node"]["data"].get("error_code").is_none());
}

#[test]
fn incomplete_at_validation_keeps_lavas_error() {
    let msg = "Invalid job data: [\"Image file '/nonexistent/bzImage' does not exist or is not readable\"]\n";
    let results = json!({"lava": suite(&[
        case("validate", "fail", &[]),
        case("job", "fail", &[("error_type", "Job"), ("error_msg", msg)]),
    ])});
    let cb = Callback::parse(&body(json!({
        "id": 12, "status": 3, "health_string": "Incomplete", "results": results,
        "log": log(&[("info", json!("start: 0 validate")), ("error", json!(msg))]),
    })))
    .unwrap();
    assert_eq!(cb.job_result(), Some("incomplete"));
    assert_eq!(cb.failure().code, "Job");
    assert_eq!(cb.target_log(), "");
    let tree = cb.hierarchy(&job_node("baseline-x86"));
    let root = &tree["node"];
    assert_eq!(root["result"], "incomplete");
    assert_eq!(root["data"]["error_code"], "Job");
    assert_eq!(root["data"]["error_msg"], msg);
    // No login/kernel-messages case: no setup node, no child at all.
    assert_eq!(tree["child_nodes"], json!([]));
}

fn boot_timeout(error_type: &str) -> Vec<u8> {
    let results = json!({"lava": suite(&[
        case("validate", "pass", &[]),
        case("file-download", "pass", &[]),
        case("execute-qemu", "pass", &[]),
        case("auto-login-action", "fail", &[]),
        case("job", "fail", &[("error_type", error_type),
                              ("error_msg", "auto-login-action timed out after 60 seconds")]),
    ])});
    body(json!({
        "id": 13, "status": 3, "results": results,
        "log": log(&[("target", json!("iPXE (https://ipxe.org) 00:03.0 CA00 PCI2.10 PnP PMM+"))]),
    }))
}

#[test]
fn a_baseline_that_does_not_boot_fails() {
    let cb = Callback::parse(&boot_timeout("Job")).unwrap();
    let tree = cb.hierarchy(&job_node("baseline-x86"));
    assert_eq!(tree["node"]["result"], "fail");
    assert_eq!(tree["node"]["data"]["error_code"], "Job");
    assert_eq!(
        tree["node"]["data"]["error_msg"],
        "auto-login-action timed out after 60 seconds"
    );
    assert_eq!(
        children(child(&tree, "setup")),
        vec![("login".into(), "test".into(), json!("fail"))]
    );
    // Not a baseline job: stays incomplete.
    let other = cb.hierarchy(&job_node("kselftest-net"));
    assert_eq!(other["node"]["result"], "incomplete");
    // An infrastructure error stays incomplete even for baseline.
    let infra = Callback::parse(&boot_timeout("Infrastructure")).unwrap();
    assert_eq!(
        infra.hierarchy(&job_node("baseline-x86"))["node"]["result"],
        "incomplete"
    );
}

#[test]
fn a_passed_job_with_a_failed_setup_is_incomplete() {
    let mut results = complete_results();
    results["lava"] = suite(&[
        case("login-action", "fail", &[]),
        case("login-action", "pass", &[]),
        case("kernel-messages", "fail", &[]),
        case("job", "pass", &[]),
    ]);
    let cb = Callback::parse(&body(
        json!({"id": 9, "status": 2, "results": results, "log": boot_log()}),
    ))
    .unwrap();
    let tree = cb.hierarchy(&job_node("baseline-x86"));
    assert_eq!(tree["node"]["result"], "incomplete");
    assert_eq!(
        children(child(&tree, "setup")),
        vec![
            ("login".into(), "test".into(), json!("pass")),
            ("kernelmsg".into(), "test".into(), json!("fail")),
        ]
    );
}

#[test]
fn canceled_jobs() {
    let results = json!({
        "lava": suite(&[case("0_kernelci-long", "fail", &[]),
                        case("job", "fail", &[("error_type", "Canceled"), ("error_msg", "The job was canceled")])]),
        "0_kernelci-long": suite(&[case("sleep", "fail", &[])]),
    });
    let cb = Callback::parse(&body(
        json!({"id": 14, "status": 4, "results": results, "log": boot_log()}),
    ))
    .unwrap();
    let tree = cb.hierarchy(&job_node("kselftest-long"));
    assert_eq!(tree["node"]["result"], "incomplete");
    assert_eq!(tree["node"]["data"]["error_code"], "Canceled");
    assert_eq!(child(&tree, "kernelci-long")["node"]["result"], "fail");

    // Cancelled while queued: no log key, empty results, no device.
    let queued = Callback::parse(&body(json!({
        "id": 15, "status": 4, "results": {}, "actual_device_id": null, "start_time": "None",
    })))
    .unwrap();
    assert!(!queued.has_log());
    assert_eq!(queued.device(), None);
    assert_eq!(queued.job_result(), Some("incomplete"));
    let tree = queued.hierarchy(&job_node("baseline-x86"));
    assert_eq!(tree["node"]["result"], "incomplete");
    assert_eq!(tree["node"]["data"]["error_code"], "Canceled");
    assert_eq!(
        tree["node"]["data"]["error_msg"],
        "The job was canceled before it started"
    );
    assert!(tree["node"]["data"].get("device").is_none());
    assert_eq!(queued.log_yaml(), "[]\n");
}

#[test]
fn no_log_is_incomplete_with_the_default_error() {
    let cb = Callback::parse(&body(
        json!({"id": 16, "status": 2, "results": complete_results()}),
    ))
    .unwrap();
    assert_eq!(cb.job_result(), Some("incomplete"));
    let tree = cb.hierarchy(&job_node("baseline-x86"));
    assert_eq!(tree["node"]["result"], "incomplete");
    // The `job` case passed and has no error type.
    assert_eq!(tree["node"]["data"]["error_code"], "Infrastructure");
    assert_eq!(
        tree["node"]["data"]["error_msg"],
        "Unknown infrastructure error"
    );
    let bare = Callback::parse(&body(json!({"id": 17, "status": 3, "log": ""}))).unwrap();
    assert_eq!(bare.failure().code, "Infrastructure");
    assert_eq!(
        bare.failure().message.as_deref(),
        Some("Unknown infrastructure error")
    );
}

#[test]
fn upload_suite_becomes_artifacts() {
    let mut results = complete_results();
    results["1_upload"] = suite(&[
        case(
            "artifact-upload:kselftest_log:https://storage.example.org/x/kselftest.log",
            "pass",
            &[],
        ),
        case(
            "artifact-upload:broken:https://storage.example.org/x/broken",
            "fail",
            &[],
        ),
        case("not-an-upload", "pass", &[]),
    ]);
    let cb = Callback::parse(&body(
        json!({"id": 18, "status": 2, "results": results, "log": boot_log()}),
    ))
    .unwrap();
    let artifacts = cb.upload_artifacts();
    assert_eq!(
        Value::Object(artifacts),
        json!({"kselftest_log": "https://storage.example.org/x/kselftest.log"})
    );
    let tree = cb.hierarchy(&job_node("baseline-x86"));
    assert_eq!(
        tree["node"]["artifacts"],
        json!({"kernel": "http://storage/bzImage",
               "kselftest_log": "https://storage.example.org/x/kselftest.log"})
    );
    assert!(children(&tree).iter().all(|(n, ..)| n != "upload"));
}

#[test]
fn sets_stage_results_and_measurements() {
    let set = |s: &'static str| [("set", s)];
    let results = json!({
        "lava": suite(&[case("1_ltp", "fail", &[]), case("2_perf", "skip", &[]), case("job", "pass", &[])]),
        "1_ltp": suite(&[
            case("open01", "pass", &set("syscalls")),
            case("open02", "pass", &set("syscalls")),
            case("mm01", "skip", &set("mm")),
            case("open01", "fail", &set("syscalls")),
            case("summary", "unknown", &[]),
        ]),
        "2_perf": Value::String(
            "- {name: bandwidth, result: pass, measurement: '1234.5000000000', unit: MB/s, metadata: {}}\n\
             - {name: latency, result: pass, measurement: None, unit: '', metadata: {}}\n".into()),
    });
    let cb = Callback::parse(&body(
        json!({"id": 19, "status": 2, "results": results, "log": boot_log()}),
    ))
    .unwrap();
    let tree = cb.hierarchy(&job_node("ltp-x86"));
    // The lava stage `1_ltp` failed: the suite fails although its cases pass.
    let ltp = child(&tree, "ltp");
    assert_eq!(ltp["node"]["result"], "fail");
    assert_eq!(
        children(ltp),
        vec![
            ("syscalls".into(), "job".into(), json!("pass")),
            ("mm".into(), "job".into(), json!("skip")),
            ("summary".into(), "test".into(), Value::Null),
        ]
    );
    let syscalls = child(ltp, "syscalls");
    assert_eq!(
        children(syscalls),
        vec![
            ("open01".into(), "test".into(), json!("pass")),
            ("open02".into(), "test".into(), json!("pass")),
        ]
    );
    assert_eq!(
        child(syscalls, "open02")["node"]["path"],
        json!([
            "checkout",
            "kbuild-gcc-12-x86",
            "ltp-x86",
            "ltp",
            "syscalls",
            "open02"
        ])
    );
    // Stage `2_perf` is skip: kept.
    let perf = child(&tree, "perf");
    assert_eq!(perf["node"]["result"], "skip");
    assert_eq!(
        child(perf, "bandwidth")["node"]["data"]["misc"],
        json!({"measurement": 1234.5, "unit": "MB/s"})
    );
    assert!(child(perf, "latency")["node"]["data"].get("misc").is_none());
    assert_eq!(tree["node"]["result"], "fail");
}

#[test]
fn a_repeated_suite_name_replaces_the_earlier_in_place() {
    let results = json!({
        "0_smoke": suite(&[case("a", "fail", &[])]),
        "1_other": suite(&[case("b", "pass", &[])]),
        "2_smoke": suite(&[case("c", "pass", &[])]),
    });
    let cb = Callback::parse(&body(
        json!({"id": 20, "status": 2, "results": results, "log": boot_log()}),
    ))
    .unwrap();
    let tree = cb.hierarchy(&job_node("x"));
    assert_eq!(
        children(&tree),
        vec![
            ("smoke".into(), "job".into(), json!("pass")),
            ("other".into(), "job".into(), json!("pass")),
        ]
    );
    assert_eq!(children(child(&tree, "smoke"))[0].0, "c");
    assert_eq!(tree["node"]["result"], "pass");
}

#[test]
fn bad_inputs_give_each_error() {
    let parse = |b: &[u8]| Callback::parse(b).unwrap_err();
    assert!(matches!(parse(b"not json"), CallbackError::NotJson(_)));
    assert_eq!(parse(b"\"x\""), CallbackError::NotObject);
    assert_eq!(parse(br#"{"status": 2}"#), CallbackError::Missing("id"));
    assert_eq!(
        parse(br#"{"id": null, "status": 2}"#),
        CallbackError::Missing("id")
    );
    assert!(matches!(
        parse(br#"{"id": true, "status": 2}"#),
        CallbackError::NotInteger { key: "id", .. }
    ));
    assert_eq!(parse(br#"{"id": 1}"#), CallbackError::Missing("status"));
    assert!(matches!(
        parse(br#"{"id": 1, "status": "two"}"#),
        CallbackError::NotInteger { key: "status", .. }
    ));
    assert_eq!(
        parse(br#"{"id": 1, "status": 2, "results": "x"}"#),
        CallbackError::ResultsNotObject
    );
    assert!(matches!(
        parse(br#"{"id": 1, "status": 2, "results": {"lava": "{a: 1}"}}"#),
        CallbackError::Suite { suite, .. } if suite == "lava"
    ));
    assert!(matches!(
        parse(br#"{"id": 1, "status": 2, "log": "- {"}"#),
        CallbackError::Log(_)
    ));
    assert!(matches!(
        parse(br#"{"id": 1, "status": 2, "log": 5}"#),
        CallbackError::Log(_)
    ));
    assert!(matches!(
        parse(br#"{"id": 1, "status": 2, "definition": "a: [1"}"#),
        CallbackError::Definition(_)
    ));
    assert_eq!(
        parse(br#"{"id": 1, "status": 2, "definition": {}}"#),
        CallbackError::NotString("definition")
    );
    // Messages are what the HTTP layer answers with.
    assert_eq!(
        parse(br#"{"id": 1, "status": 2, "results": {"0_x": "- [unclosed"}}"#)
            .to_string()
            .split(": ")
            .take(3)
            .collect::<Vec<_>>(),
        ["callback", "results.0_x", "not a YAML list"]
    );
}

#[test]
fn odd_but_valid_inputs_are_accepted() {
    // A non-object node, a JSON-list log and suite, unknown statuses, extra fields.
    let cb = Callback::parse(&body(json!({
        "id": "21", "status": 1, "unexpected": {"x": 1},
        "results": {"0_s": [{"name": "t", "result": "pass", "metadata": {}}], "1_n": null},
        "log": [{"dt": "x", "lvl": "target", "msg": "hello"}],
    })))
    .unwrap();
    assert_eq!(cb.job_result(), None);
    assert_eq!(cb.target_log(), "hello\n");
    let tree = cb.hierarchy(&Value::Null);
    assert_eq!(tree["node"]["result"], Value::Null);
    assert_eq!(tree["node"]["state"], "done");
    assert_eq!(
        children(&tree)[0],
        ("s".into(), "job".into(), json!("pass"))
    );
    assert_eq!(child(&tree, "s")["node"]["path"], json!(["s"]));
}

// ---- real captured payloads ------------------------------------------------------------

fn data_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/callbacks")
}

/// `(name, body, meta)` of every captured callback.
fn captured() -> Vec<(String, Vec<u8>, Value)> {
    let Ok(dir) = std::fs::read_dir(data_dir()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".json").filter(|s| !s.ends_with(".meta")) else {
            continue;
        };
        let meta_path = path.with_file_name(format!("{stem}.meta.json"));
        let Ok(meta) = std::fs::read(&meta_path) else {
            continue;
        };
        let meta: Value = serde_json::from_slice(&meta).unwrap();
        out.push((stem.to_string(), std::fs::read(&path).unwrap(), meta));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn captured_payloads_match_their_meta() {
    let all = captured();
    if all.is_empty() {
        println!("no captured callbacks in {}: skipped", data_dir().display());
        return;
    }
    for (name, raw, meta) in &all {
        let expected = &meta["expected"];
        let cb = Callback::parse(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(json!(cb.job_id()), expected["id"], "{name}");
        assert_eq!(json!(cb.status()), expected["status"], "{name}");
        assert_eq!(
            cb.health_string(),
            expected["health_string"].as_str(),
            "{name}"
        );
        assert_eq!(cb.device(), expected["actual_device_id"].as_str(), "{name}");
        assert_eq!(json!(cb.has_log()), expected["has_log"], "{name}");
        // Suites and cases, in body order, with their results.
        let ours: Map<String, Value> = cb
            .suites()
            .iter()
            .map(|s| {
                let cases: Vec<Value> = s
                    .cases
                    .iter()
                    .map(|c| json!({"name": c.name, "result": c.result}))
                    .collect();
                (s.name.clone(), Value::Array(cases))
            })
            .collect();
        assert_eq!(Value::Object(ours), expected["results"], "{name}");
        // The failure reason.
        match &expected["lava_job_case"] {
            Value::Null => {}
            job => {
                if let Some(t) = job.pointer("/metadata/error_type").and_then(Value::as_str) {
                    let failure = cb.failure();
                    assert_eq!(failure.code, t, "{name}");
                    let msg = job.pointer("/metadata/error_msg").and_then(Value::as_str);
                    assert_eq!(failure.message.as_deref(), msg, "{name}");
                }
            }
        }
        // The console.
        let text = cb.target_log();
        let lines = text.lines().count() as u64;
        assert!(
            lines <= expected["target_log_lines"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            text.contains("Linux version"),
            expected["target_has_linux_version"] == true,
            "{name}"
        );
        assert_eq!(
            text.contains("BOOT-MARKER"),
            expected["target_has_boot_marker"] == true,
            "{name}"
        );
        if let Some(line) = expected["linux_version_line"].as_str() {
            assert!(text.lines().any(|l| l == line.trim()), "{name}: {line}");
        }
        if cb.has_log() {
            let kept: Vec<Value> = serde_yaml_ng::from_str(&cb.log_yaml()).unwrap();
            let all_lines = expected["log_lines"].as_u64().unwrap();
            let results = expected["log_levels"]["results"].as_u64().unwrap_or(0);
            assert!(kept.len() as u64 <= all_lines - results, "{name}");
            assert!(!kept.is_empty(), "{name}");
        }
        // The job result and the tree.
        let health = expected["health_string"].as_str().unwrap();
        let tree = cb.hierarchy(&job_node("baseline-qemu"));
        let result = tree["node"]["result"].as_str();
        match health {
            "Complete" => {
                let any_failed = expected["results"]
                    .as_object()
                    .unwrap()
                    .values()
                    .flat_map(|cases| cases.as_array().unwrap())
                    .any(|c| c["result"] == "fail");
                assert_eq!(
                    result,
                    Some(if any_failed { "fail" } else { "pass" }),
                    "{name}"
                );
                assert!(tree["node"]["data"].get("error_code").is_none(), "{name}");
            }
            _ => {
                // Incomplete or Canceled: incomplete, except a baseline that did not log in.
                let setup_failed = tree["child_nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["node"]["name"] == "setup" && c["node"]["result"] == "fail");
                let code = tree["node"]["data"]["error_code"].as_str().unwrap();
                let want = if setup_failed && code != "Infrastructure" {
                    "fail"
                } else {
                    "incomplete"
                };
                assert_eq!(result, Some(want), "{name}");
                assert!(
                    kernelci_lava::callback::ERROR_TYPES.contains(&code),
                    "{name}: {code}"
                );
            }
        }
        // The header LAVA sent is the lab's callback token.
        if let Some(auth) = meta
            .pointer("/headers/Authorization")
            .and_then(Value::as_str)
        {
            let lab = LabConfig::from_runtime(
                "lava-local",
                &Map::new(),
                LabSecrets {
                    runtime_token: None,
                    callback_token: Some(auth.to_string()),
                },
            )
            .unwrap();
            assert!(lab.accepts_callback_token(auth), "{name}");
            assert_eq!(json!(auth), expected["token"], "{name}");
        }
        assert!(cb.stored_payload().get("token").is_none(), "{name}");
    }
}

#[test]
fn captured_payload_specifics() {
    let all = captured();
    let get = |n: &str| {
        all.iter()
            .find(|(name, ..)| name == n)
            .map(|(_, raw, _)| raw)
    };
    if let Some(raw) = get("complete-boot") {
        let tree = Callback::parse(raw)
            .unwrap()
            .hierarchy(&job_node("baseline-qemu"));
        assert_eq!(tree["node"]["result"], "pass");
        let names: Vec<String> = children(&tree).into_iter().map(|c| c.0).collect();
        assert_eq!(names, ["setup", "kernelci-smoke"]);
    }
    if let Some(raw) = get("complete-with-failure") {
        let tree = Callback::parse(raw)
            .unwrap()
            .hierarchy(&job_node("baseline-qemu"));
        assert_eq!(tree["node"]["result"], "fail");
    }
    if let Some(raw) = get("incomplete-boot-timeout") {
        let cb = Callback::parse(raw).unwrap();
        assert_eq!(cb.failure().code, "Job");
        assert_eq!(
            cb.hierarchy(&job_node("baseline-qemu"))["node"]["result"],
            "fail"
        );
        assert_eq!(
            cb.hierarchy(&job_node("kselftest-qemu"))["node"]["result"],
            "incomplete"
        );
    }
    if let Some(raw) = get("canceled-queued") {
        let cb = Callback::parse(raw).unwrap();
        let tree = cb.hierarchy(&job_node("baseline-qemu"));
        assert_eq!(tree["node"]["data"]["error_code"], "Canceled");
        assert_eq!(tree["child_nodes"], json!([]));
    }
}
