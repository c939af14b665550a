//! The trigger (one checkout per new commit, whatever restarts or races) and the
//! timeout/holdoff/closing passes, against a real Maestro API.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Env, git_commit, git_repo};
use kernelci_pipeline::trigger::{self, Outcome};
use kernelci_pipeline::{iso, timeout};
use serde_json::{Value, json};

fn trigger_yaml(repo: &Path, missing: &Path) -> String {
    format!(
        r#"
trees:
  fake:
    url: "{repo}"
  gone:
    url: "{missing}"
  refused:
    url: "http://127.0.0.1:1/linux.git"
build_configs:
  fake-master:
    tree: fake
    branch: master
    architectures: [x86_64]
  fake-nobranch:
    tree: fake
    branch: no-such-branch
  gone-master:
    tree: gone
    branch: master
  refused-master:
    tree: refused
    branch: master
runtimes:
  shell:
    lab_type: shell
jobs:
  kbuild-x86:
    template: kbuild.jinja2
    kind: kbuild
scheduler:
  - job: kbuild-x86
    event: {{channel: node, kind: checkout, state: available}}
    runtime: {{name: shell}}
"#,
        repo = repo.display(),
        missing = missing.display()
    )
}

fn outcome<'a>(outcomes: &'a [(String, Outcome)], config: &str) -> &'a Outcome {
    &outcomes
        .iter()
        .find(|(n, _)| n == config)
        .unwrap_or_else(|| panic!("no outcome for {config}: {outcomes:?}"))
        .1
}

fn created(outcomes: &[(String, Outcome)], config: &str) -> String {
    match outcome(outcomes, config) {
        Outcome::Created(id) => id.clone(),
        other => panic!("{config}: expected a checkout, got {other:?} ({outcomes:?})"),
    }
}

fn skipped(outcomes: &[(String, Outcome)], config: &str) -> String {
    match outcome(outcomes, config) {
        Outcome::Skipped(why) => why.clone(),
        other => panic!("{config}: expected a skip, got {other:?} ({outcomes:?})"),
    }
}

#[tokio::test]
async fn the_trigger_makes_one_checkout_per_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, first) = git_repo(tmp.path());
    let env = Env::new(&trigger_yaml(&repo, &tmp.path().join("no-such-repo"))).await;
    let checkouts = || async { env.count(&[("kind", "checkout")]).await };

    // First pass: one checkout for the head; the broken trees are reported, not fatal.
    let outcomes = trigger::pass(&env.ctx).await;
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    let id = created(&outcomes, "fake-master");
    for broken in ["gone-master", "refused-master"] {
        let why = skipped(&outcomes, broken);
        assert!(why.starts_with("error:"), "{broken}: {why}");
    }
    let why = skipped(&outcomes, "fake-nobranch");
    assert!(why.contains("no-such-branch"), "{why}");
    let node = env.node(&id).await;
    assert_eq!(node["kind"], "checkout");
    assert_eq!(node["state"], "running");
    assert_eq!(node["submitter"], "service:pipeline");
    assert_eq!(
        node["data"]["kernel_revision"],
        json!({"tree": "fake", "branch": "master", "commit": first,
               "url": repo.display().to_string()})
    );
    assert_eq!(node["data"]["architecture_filter"], json!(["x86_64"]));
    assert_eq!(
        node["data"]["schedule_key"],
        format!("checkout/fake/master/{first}/0")
    );
    assert!(node["treeid"].as_str().is_some_and(|t| t.len() == 64));
    assert_eq!(checkouts().await, 1);

    // Polling again, or from a restarted trigger (new client), finds the commit known.
    let why = skipped(&trigger::pass(&env.ctx).await, "fake-master");
    assert!(why.contains("already has a checkout"), "{why}");
    let restarted = env.new_ctx();
    let why = skipped(&trigger::pass(&restarted).await, "fake-master");
    assert!(why.contains("already has a checkout"), "{why}");
    assert_eq!(checkouts().await, 1);

    // A new commit: a second checkout.
    let second = git_commit(&repo, "second");
    let id2 = created(&trigger::pass(&restarted).await, "fake-master");
    assert_ne!(id2, id);
    assert_eq!(
        env.node(&id2).await["data"]["kernel_revision"]["commit"],
        second
    );
    assert_eq!(checkouts().await, 2);

    // Two triggers racing on a third commit: exactly one checkout between them.
    let third = git_commit(&repo, "third");
    let (a, b) = (env.new_ctx(), env.new_ctx());
    let (ra, rb) = tokio::join!(trigger::pass(&a), trigger::pass(&b));
    let made: Vec<&Outcome> = [outcome(&ra, "fake-master"), outcome(&rb, "fake-master")]
        .into_iter()
        .filter(|o| matches!(o, Outcome::Created(_)))
        .collect();
    assert_eq!(made.len(), 1, "{ra:?} {rb:?}");
    assert_eq!(
        env.count(&[
            ("kind", "checkout"),
            ("data.kernel_revision.commit", &third)
        ])
        .await,
        1
    );
    assert_eq!(checkouts().await, 3);
}

#[tokio::test]
async fn a_commit_whose_checkouts_all_failed_is_tried_again_up_to_three_times() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, head) = git_repo(tmp.path());
    let env = Env::new(&trigger_yaml(&repo, &tmp.path().join("no-such-repo"))).await;
    let mut ids = Vec::new();
    for attempt in 0..3 {
        let id = created(&trigger::pass(&env.ctx).await, "fake-master");
        let node = env.node(&id).await;
        assert_eq!(
            node["data"]["schedule_key"],
            format!("checkout/fake/master/{head}/{attempt}")
        );
        // The checkout times out: the commit may be tried again.
        env.update(&id, |n| {
            n["state"] = "done".into();
            n["result"] = "incomplete".into();
        })
        .await;
        ids.push(id);
    }
    let why = skipped(&trigger::pass(&env.ctx).await, "fake-master");
    assert!(why.contains("incomplete"), "{why}");
    assert_eq!(env.count(&[("kind", "checkout")]).await, 3);
}

/// A node body with the fields the timeout role looks at.
fn node(kind: &str, name: &str, state: &str, result: Option<&str>, treeid: &str) -> Value {
    json!({
        "kind": kind, "name": name, "path": [name], "state": state, "result": result,
        "treeid": treeid,
        "data": {"kernel_revision": {"tree": "fake", "branch": "master",
                                     "commit": "0123456789abcdef0123456789abcdef01234567",
                                     "url": "https://git.example.org/fake/linux.git"}},
    })
}

fn ago(secs: i64) -> String {
    iso(chrono::Utc::now() - chrono::Duration::seconds(secs))
}

fn later(secs: i64) -> String {
    iso(chrono::Utc::now() + chrono::Duration::seconds(secs))
}

async fn state(env: &Env, id: &str) -> (String, Value) {
    let n = env.node(id).await;
    (
        n["state"].as_str().unwrap().to_string(),
        n["result"].clone(),
    )
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn timeout_holdoff_and_closing() {
    let env = Env::new(&common::sched_yaml()).await;

    // Running past its timeout, no result: done/incomplete, node_timeout.
    let mut b = node("checkout", "checkout", "running", None, "t-late");
    b["timeout"] = ago(60).into();
    let late = id(&env.create(b).await);
    // Available with a result, past its timeout: done, result and data kept.
    let mut b = node(
        "checkout",
        "checkout",
        "available",
        Some("pass"),
        "t-late-pass",
    );
    b["timeout"] = ago(60).into();
    let late_pass = id(&env.create(b).await);
    // Past its holdoff with a running build below: closing, then done once the build is.
    let mut b = node("checkout", "checkout", "available", Some("pass"), "t-held");
    b["holdoff"] = ago(5).into();
    let held = id(&env.create(b).await);
    let mut b = node("kbuild", "kbuild-x86", "running", None, "t-held");
    b["parent"] = held.clone().into();
    b["path"] = json!(["checkout", "kbuild-x86"]);
    let build = id(&env.create(b).await);
    // A kbuild (not a root) past its holdoff with a running job below.
    let root = id(&env
        .create(node("checkout", "checkout", "running", None, "t-kb"))
        .await);
    let mut b = node("kbuild", "kbuild-x86", "available", Some("pass"), "t-kb");
    b["parent"] = root.clone().into();
    b["holdoff"] = ago(5).into();
    let kb = id(&env.create(b).await);
    let mut b = node("job", "baseline-x86", "running", None, "t-kb");
    b["parent"] = kb.clone().into();
    let job = id(&env.create(b).await);
    // Past its holdoff, nothing below: straight to done.
    let mut b = node("checkout", "checkout", "available", Some("pass"), "t-alone");
    b["holdoff"] = ago(5).into();
    let alone = id(&env.create(b).await);
    // Holdoff not reached yet, timeout not reached yet: untouched.
    let mut b = node("checkout", "checkout", "available", Some("pass"), "t-wait");
    b["holdoff"] = later(3600).into();
    let waiting = id(&env.create(b).await);

    let changed = timeout::pass(&env.ctx).await.unwrap();
    assert_eq!(changed, 5, "late, late_pass, held, kb, alone");

    let n = env.node(&late).await;
    assert_eq!(
        (n["state"].as_str(), n["result"].as_str()),
        (Some("done"), Some("incomplete"))
    );
    assert_eq!(n["data"]["error_code"], "node_timeout");
    assert_eq!(n["data"]["error_msg"], "Node timed-out");

    let n = env.node(&late_pass).await;
    assert_eq!(
        (n["state"].as_str(), n["result"].as_str()),
        (Some("done"), Some("pass"))
    );
    assert!(n["data"].get("error_code").is_none(), "{n:#}");

    assert_eq!(state(&env, &held).await, ("closing".into(), json!("pass")));
    assert_eq!(state(&env, &build).await, ("running".into(), Value::Null));
    assert_eq!(state(&env, &kb).await, ("closing".into(), json!("pass")));
    assert_eq!(state(&env, &job).await, ("running".into(), Value::Null));
    assert_eq!(state(&env, &root).await, ("running".into(), Value::Null));
    assert_eq!(state(&env, &alone).await, ("done".into(), json!("pass")));
    assert_eq!(
        state(&env, &waiting).await,
        ("available".into(), json!("pass"))
    );

    // Nothing moved below: a second pass changes nothing.
    assert_eq!(timeout::pass(&env.ctx).await.unwrap(), 0);

    // The build and the job finish: their closing parents are done at the next pass.
    env.update(&build, |n| {
        n["state"] = "done".into();
        n["result"] = "pass".into();
    })
    .await;
    env.update(&job, |n| {
        n["state"] = "done".into();
        n["result"] = "fail".into();
    })
    .await;
    assert_eq!(timeout::pass(&env.ctx).await.unwrap(), 2);
    assert_eq!(state(&env, &held).await, ("done".into(), json!("pass")));
    assert_eq!(state(&env, &kb).await, ("done".into(), json!("pass")));
    // The job's result is its own: closing its parent did not touch it.
    assert_eq!(state(&env, &job).await, ("done".into(), json!("fail")));
    assert_eq!(
        state(&env, &waiting).await,
        ("available".into(), json!("pass"))
    );
    assert_eq!(timeout::pass(&env.ctx).await.unwrap(), 0);
}

#[tokio::test]
async fn a_timed_out_node_keeps_a_result_it_already_had() {
    let env = Env::new(&common::sched_yaml()).await;
    let mut b = node("kbuild", "kbuild-x86", "running", Some("fail"), "t-x");
    b["timeout"] = ago(1).into();
    b["data"]["error_code"] = "Bug".into();
    let kb = id(&env.create(b).await);
    // A closing node past its timeout is done as well.
    let mut b = node("checkout", "checkout", "closing", Some("pass"), "t-y");
    b["timeout"] = ago(1).into();
    let closing = id(&env.create(b).await);
    // A done node past its timeout is not pending: untouched.
    let mut b = node("checkout", "checkout", "done", Some("fail"), "t-z");
    b["timeout"] = ago(1).into();
    let done = env.create(b).await;

    assert_eq!(timeout::pass(&env.ctx).await.unwrap(), 2);
    let n = env.node(&kb).await;
    assert_eq!(
        (n["state"].as_str(), n["result"].as_str()),
        (Some("done"), Some("fail"))
    );
    assert_eq!(n["data"]["error_code"], "Bug");
    assert_eq!(state(&env, &closing).await, ("done".into(), json!("pass")));
    assert_eq!(env.node(&id(&done)).await["updated"], done["updated"]);
    // Done nodes are left alone by later passes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(timeout::pass(&env.ctx).await.unwrap(), 0);
    assert_eq!(env.node(&kb).await["updated"], n["updated"]);
}
