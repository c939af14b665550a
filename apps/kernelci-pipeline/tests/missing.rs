//! Missing results: when a checkout settles, the jobs the scheduler would have planned and
//! that have no node are reported as nodes of their own (`data.missing`), once;
//! jobs the configuration deliberately leaves out (jobfilter, rules) are not.

mod common;

use common::Env;
use serde_json::{Value, json};

fn yaml() -> String {
    common::sched_yaml_with(
        "  kselftest-x86:\n    template: baseline.jinja2\n    kind: job\n  ltp-x86:\n    template: baseline.jinja2\n    kind: job\n",
        "  - job: kselftest-x86\n    event: {channel: node, kind: kbuild, state: available, result: pass}\n    runtime: {name: lab-gone}\n    platforms: [qemu-x86]\n  - job: ltp-x86\n    event: {channel: node, kind: kbuild, state: available, result: pass}\n    runtime: {name: shell}\n    platforms: [qemu-x86]\n",
    )
    .replace(
        "runtimes:\n  shell:\n    lab_type: shell\n",
        "runtimes:\n  shell:\n    lab_type: shell\n  lab-gone:\n    lab_type: shell\n",
    )
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// A checkout (in `state`) with a passed kbuild and its baseline job: what a run where
/// the `lab-gone` lab never took its job leaves.
async fn tree(env: &Env, seed: u8, state: &str) -> (Value, String) {
    let mut c = common::checkout_node(&common::commit(seed), state);
    c["jobfilter"] = json!(["kbuild-x86", "baseline-x86", "kselftest-x86"]);
    let checkout = env.create(c).await;
    let kbuild = env
        .create(
            json!({"kind": "kbuild", "name": "kbuild-x86", "parent": id(&checkout),
            "path": ["checkout", "kbuild-x86"], "state": "done", "result": "pass",
            "jobfilter": ["kbuild-x86", "baseline-x86", "kselftest-x86"],
            "treeid": checkout["treeid"], "data": {"platform": "shell", "arch": "x86_64",
            "kernel_revision": checkout["data"]["kernel_revision"]}}),
        )
        .await;
    env.create(
        json!({"kind": "job", "name": "baseline-x86", "parent": id(&kbuild),
        "path": ["checkout", "kbuild-x86", "baseline-x86"], "state": "done",
        "result": "pass", "treeid": checkout["treeid"],
        "data": {"platform": "qemu-x86", "kernel_revision": checkout["data"]["kernel_revision"]}}),
    )
    .await;
    (checkout, id(&kbuild))
}

#[tokio::test]
async fn a_settled_checkout_reports_each_expected_job_without_a_node_once() {
    let env = Env::new(&yaml()).await;
    let (checkout, kbuild) = tree(&env, 1, "done").await;
    let reported = kernelci_pipeline::missing::report(&env.ctx, &checkout)
        .await
        .expect("report");
    // kselftest-x86 (its lab never took it) is missing; ltp-x86 is not in the jobfilter.
    let jobs: Vec<(&str, &str, &str)> = reported
        .iter()
        .map(|m| (m.job.as_str(), m.platform.as_str(), m.runtime.as_str()))
        .collect();
    assert_eq!(jobs, [("kselftest-x86", "qemu-x86", "lab-gone")]);
    assert_eq!(reported[0].parent, kbuild);
    let nodes = env.find(&[("name", "kselftest-x86")]).await;
    assert_eq!(nodes.len(), 1);
    let n = &nodes[0];
    assert_eq!(
        (n["state"].as_str(), n["result"].as_str()),
        (Some("done"), Some("incomplete"))
    );
    assert_eq!(n["data"]["error_code"], "submit_error");
    assert_eq!(n["data"]["missing"], true);
    assert_eq!(n["parent"].as_str(), Some(kbuild.as_str()));
    assert_eq!(n["data"]["platform"], "qemu-x86");
    assert!(
        n["data"]["error_msg"]
            .as_str()
            .unwrap_or("")
            .contains("lab-gone"),
        "{n}"
    );
    // Once: a second report finds the node and adds nothing.
    let again = kernelci_pipeline::missing::report(&env.ctx, &checkout)
        .await
        .expect("report");
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(env.count(&[("name", "kselftest-x86")]).await, 1);
    assert_eq!(env.count(&[("name", "ltp-x86")]).await, 0);
}

#[tokio::test]
async fn the_timeout_role_reports_when_a_checkout_closes() {
    let env = Env::new(&yaml()).await;
    let (checkout, _) = tree(&env, 2, "closing").await;
    // A failed checkout (no tarball) expected no build: nothing is reported for it.
    let mut failed = common::checkout_node(&common::commit(3), "running");
    failed["timeout"] =
        kernelci_pipeline::iso(chrono::Utc::now() - chrono::Duration::seconds(5)).into();
    let failed = env.create(failed).await;
    kernelci_pipeline::timeout::pass(&env.ctx)
        .await
        .expect("pass");
    assert_eq!(env.node(&id(&checkout)).await["state"], "done");
    assert_eq!(env.node(&id(&failed)).await["result"], "incomplete");
    let missing = env.find(&[("data.error_code", "submit_error")]).await;
    let names: Vec<&str> = missing.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["kselftest-x86"], "{missing:?}");
}
