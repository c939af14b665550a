//! The scheduler and job-retry roles against a real Maestro API (SQLite, or PostgreSQL when
//! KERNELCI_TEST_DATABASE_URL is set): no duplicate jobs (two schedulers, redelivered
//! events, a scheduler killed between create and submit), edge triggering, jobfilter and
//! rules, and a retry going through the `retry` channel to a new job node.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Env, about, commit, sched_yaml, sched_yaml_with, submitted};
use kernelci_pipeline::events::EventStream;
use kernelci_pipeline::job_retry;
use kernelci_pipeline::scheduler::{ABANDONED_AFTER, Planned};
use serde_json::{Value, json};

/// A checkout made `available` by an update, and that update's event as the API sent it.
async fn available_checkout(env: &Env, seed: u8) -> (Value, Value) {
    let node_events = env.listener("node").await;
    let checkout = env.checkout(&commit(seed), "running").await;
    let id = checkout["id"].as_str().unwrap().to_string();
    env.update(&id, |n| {
        n["state"] = "available".into();
        n["result"] = "pass".into();
    })
    .await;
    let ev = node_events.node_event(&id, "updated", "available").await;
    assert_eq!(ev["previous_state"], "running", "{ev}");
    (env.node(&id).await, ev)
}

async fn kbuilds_under(env: &Env, checkout: &str) -> Vec<Value> {
    env.find(&[("kind", "kbuild"), ("parent", checkout)]).await
}

#[tokio::test]
async fn two_schedulers_on_one_event_make_one_job() {
    let env = Env::new(&sched_yaml()).await;
    let (checkout, ev) = available_checkout(&env, 1).await;
    let cid = checkout["id"].as_str().unwrap();

    // Two schedulers, each with its own API client and runtime, as two processes.
    let ctx_a = env.new_ctx();
    let ctx_b = env.new_ctx();
    let a = env.scheduler(&ctx_a);
    let b = env.scheduler(&ctx_b);
    let (ra, rb) = tokio::join!(a.handle_event(&ev), b.handle_event(&ev));
    let (ra, rb) = (about(&ra, "kbuild-x86"), about(&rb, "kbuild-x86"));
    assert_eq!((ra.len(), rb.len()), (1, 1), "{ra:?} {rb:?}");

    let kbuilds = kbuilds_under(&env, cid).await;
    assert_eq!(kbuilds.len(), 1, "{kbuilds:#?}");
    let kbuild = &kbuilds[0];
    let kid = kbuild["id"].as_str().unwrap();
    assert_eq!(
        kbuild["data"]["schedule_key"],
        format!("{cid}/kbuild-x86/shell/shell/0")
    );
    assert_eq!(kbuild["name"], "kbuild-x86");
    assert_eq!(kbuild["path"], json!(["checkout", "kbuild-x86"]));
    assert_eq!(kbuild["data"]["runtime"], "shell");
    assert_eq!(kbuild["retry_counter"], 0);
    assert!(kbuild["data"]["job_id"].is_string(), "{kbuild:#}");

    // One submitted it, the other saw it scheduled already: the job runs once.
    let outcomes = [ra[0].clone(), rb[0].clone()];
    let submitted: Vec<_> = outcomes
        .iter()
        .filter(|p| matches!(p, Planned::Submitted(id) if id == kid))
        .collect();
    let skipped: Vec<_> = outcomes
        .iter()
        .filter(|p| matches!(p, Planned::Skipped(why) if why.contains("already scheduled")))
        .collect();
    assert_eq!(
        (submitted.len(), skipped.len()),
        (1, 1),
        "one submission and one 'already scheduled' expected: {outcomes:?}"
    );

    // The same event delivered again to one of them creates and submits nothing.
    let again = a.handle_event(&ev).await;
    let again = about(&again, "kbuild-x86");
    assert!(
        matches!(again.as_slice(), [Planned::Skipped(why)] if why.contains("already scheduled")),
        "{again:?}"
    );
    assert_eq!(kbuilds_under(&env, cid).await.len(), 1);
    assert_eq!(
        env.node(kid).await["data"]["job_id"],
        kbuild["data"]["job_id"]
    );
}

#[tokio::test]
async fn a_redelivered_event_schedules_nothing_new() {
    let env = Env::new(&sched_yaml()).await;
    let (checkout, ev) = available_checkout(&env, 2).await;
    let cid = checkout["id"].as_str().unwrap();
    let s = env.scheduler(&env.ctx);
    let first = s.handle_event(&ev).await;
    let kid = submitted(&first);
    let job_id = env.node(&kid).await["data"]["job_id"].clone();
    assert!(job_id.is_string());
    for _ in 0..2 {
        let again = s.handle_event(&ev).await;
        assert!(
            matches!(about(&again, "kbuild-x86").as_slice(), [Planned::Skipped(why)] if why.contains("already scheduled")),
            "{again:?}"
        );
    }
    assert_eq!(kbuilds_under(&env, cid).await.len(), 1);
    assert_eq!(env.node(&kid).await["data"]["job_id"], job_id);
}

/// What a scheduler killed between `POST node` and the submission leaves behind, created
/// `age` ago.
async fn orphan(env: &Env, checkout: &Value, age: Duration) -> Value {
    let cid = checkout["id"].as_str().unwrap();
    let created = chrono::Utc::now() - chrono::Duration::from_std(age).unwrap();
    env.create(json!({
        "kind": "kbuild",
        "name": "kbuild-x86",
        "path": ["checkout", "kbuild-x86"],
        "group": "kbuild-x86",
        "parent": cid,
        "state": "running",
        "artifacts": {},
        "data": {
            "kernel_revision": checkout["data"]["kernel_revision"],
            "runtime": "shell",
            "platform": "shell",
            "schedule_key": format!("{cid}/kbuild-x86/shell/shell/0"),
        },
        "retry_counter": 0,
        "treeid": checkout["treeid"],
        "submitter": "service:pipeline",
        "created": kernelci_pipeline::iso(created),
    }))
    .await
}

#[tokio::test]
async fn a_job_created_but_never_submitted_is_submitted_after_a_restart() {
    let env = Env::new(&sched_yaml()).await;
    let (checkout, ev) = available_checkout(&env, 3).await;
    let cid = checkout["id"].as_str().unwrap();
    let orphan = orphan(&env, &checkout, ABANDONED_AFTER * 2).await;
    let oid = orphan["id"].as_str().unwrap();
    assert!(orphan["data"]["job_id"].is_null());

    // A fresh scheduler (fresh client, fresh runtime) gets the event again.
    let ctx = env.new_ctx();
    let s = env.scheduler(&ctx);
    let outcomes = s.handle_event(&ev).await;
    assert_eq!(submitted(&outcomes), oid, "{outcomes:?}");
    let node = env.node(oid).await;
    assert!(node["data"]["job_id"].is_string(), "{node:#}");
    assert_eq!(node["state"], "running");
    assert_eq!(kbuilds_under(&env, cid).await.len(), 1);

    // Submitted now: a further delivery leaves it alone.
    let again = s.handle_event(&ev).await;
    assert!(
        matches!(about(&again, "kbuild-x86").as_slice(), [Planned::Skipped(why)] if why.contains("already scheduled")),
        "{again:?}"
    );
    assert_eq!(
        env.node(oid).await["data"]["job_id"],
        node["data"]["job_id"]
    );
}

#[tokio::test]
async fn only_the_transition_to_available_schedules() {
    let env = Env::new(&sched_yaml()).await;
    let s = env.scheduler(&env.ctx);
    let events = env.listener("node").await;

    // Created running: nothing matches.
    let a = env.checkout(&commit(4), "running").await;
    let aid = a["id"].as_str().unwrap().to_string();
    let created = events.node_event(&aid, "created", "running").await;
    assert!(s.handle_event(&created).await.is_empty());
    assert_eq!(kbuilds_under(&env, &aid).await.len(), 0);

    // running -> available: scheduled.
    env.update(&aid, |n| {
        n["state"] = "available".into();
        n["result"] = "pass".into();
    })
    .await;
    let became = events.node_event(&aid, "updated", "available").await;
    submitted(&s.handle_event(&became).await);
    assert_eq!(kbuilds_under(&env, &aid).await.len(), 1);

    // available -> available (another field changed): edge trigger, nothing planned at all.
    env.update(&aid, |n| {
        n["data"]["kernel_revision"]["describe"] = "v6.1".into();
    })
    .await;
    let touched = events
        .wait("second update", |ev| {
            ev["id"] == aid.as_str() && ev["previous_state"] == "available"
        })
        .await;
    assert_eq!(touched["state"], "available");
    let outcomes = s.handle_event(&touched).await;
    assert!(outcomes.is_empty(), "{outcomes:?}");
    // Even a scheduler that never saw the first event (no cache) plans nothing.
    let fresh = env.scheduler(&env.new_ctx());
    assert!(fresh.handle_event(&touched).await.is_empty());
    assert_eq!(kbuilds_under(&env, &aid).await.len(), 1);

    // Created already available (e.g. by the API): level-triggered, scheduled.
    let b = env.checkout(&commit(5), "available").await;
    let bid = b["id"].as_str().unwrap().to_string();
    let created = events.node_event(&bid, "created", "available").await;
    submitted(&s.handle_event(&created).await);
    assert_eq!(kbuilds_under(&env, &bid).await.len(), 1);
}

#[tokio::test]
async fn jobfilter_and_rules_skip_with_a_reason() {
    let extra_jobs = "  kbuild-notfake:\n    template: kbuild.jinja2\n    kind: kbuild\n    \
                      rules: {tree: ['!fake']}\n";
    let extra_entries = "  - job: kbuild-notfake\n    event: {channel: node, kind: checkout, \
                         state: available}\n    runtime: {name: shell}\n";
    let env = Env::new(&sched_yaml_with(extra_jobs, extra_entries)).await;
    let s = env.scheduler(&env.ctx);
    let events = env.listener("node").await;

    // A checkout asking only for another job: neither kbuild is created.
    let mut body = common::checkout_node(&commit(6), "available");
    body["jobfilter"] = json!(["other-job"]);
    let filtered = env.create(body).await;
    let fid = filtered["id"].as_str().unwrap().to_string();
    let ev = events.node_event(&fid, "created", "available").await;
    let outcomes = s.handle_event(&ev).await;
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    for job in ["kbuild-x86", "kbuild-notfake"] {
        assert!(
            matches!(about(&outcomes, job).as_slice(), [Planned::Skipped(why)] if why.contains("not in the jobfilter")),
            "{job}: {outcomes:?}"
        );
    }
    assert_eq!(env.count(&[("parent", &fid)]).await, 0);

    // No jobfilter: kbuild-x86 is scheduled, kbuild-notfake is refused by its rule.
    let open = env.checkout(&commit(7), "available").await;
    let oid = open["id"].as_str().unwrap().to_string();
    let ev = events.node_event(&oid, "created", "available").await;
    let outcomes = s.handle_event(&ev).await;
    let kid = submitted(&outcomes);
    let Some(Planned::Skipped(why)) = outcomes
        .iter()
        .find(|p| matches!(p, Planned::Skipped(w) if w.starts_with("kbuild-notfake:")))
    else {
        panic!("kbuild-notfake should be skipped: {outcomes:?}");
    };
    assert!(
        why.contains("job rules") && why.contains("tree") && why.contains("fake"),
        "{why}"
    );
    let children = env.find(&[("parent", &oid)]).await;
    assert_eq!(children.len(), 1, "{children:#?}");
    assert_eq!(children[0]["id"], kid.as_str());
    assert_eq!(children[0]["name"], "kbuild-x86");

    // A jobfilter naming the job lets it through (and keeps the filter on the job node).
    let mut body = common::checkout_node(&commit(8), "available");
    body["jobfilter"] = json!(["kbuild-x86"]);
    let named = env.create(body).await;
    let nid = named["id"].as_str().unwrap().to_string();
    let ev = events.node_event(&nid, "created", "available").await;
    let kid = submitted(&s.handle_event(&ev).await);
    assert_eq!(env.node(&kid).await["jobfilter"], json!(["kbuild-x86"]));
}

#[tokio::test]
async fn an_incomplete_build_is_retried_through_the_retry_channel() {
    let env = Env::new(&sched_yaml()).await;
    let retries = env.listener("retry").await;
    let stream = EventStream::opened(env.ctx.api.clone(), "node", "job-retry:node").await;
    let role = tokio::spawn(job_retry::run(env.ctx.clone(), stream));
    let s = env.scheduler(&env.ctx);

    let (checkout, ev) = available_checkout(&env, 9).await;
    let cid = checkout["id"].as_str().unwrap().to_string();
    let kid = submitted(&s.handle_event(&ev).await);

    // The build ends incomplete (an infrastructure failure).
    env.update(&kid, |n| {
        n["state"] = "done".into();
        n["result"] = "incomplete".into();
        n["data"]["error_code"] = "Infrastructure".into();
    })
    .await;
    let retry = retries
        .wait("retry of the checkout", |ev| ev["id"] == cid.as_str())
        .await;
    role.abort();
    assert_eq!(retry["kind"], "checkout", "{retry:#}");
    assert_eq!(retry["state"], "available");
    assert_eq!(retry["retry_counter"], 1);
    assert_eq!(retry["jobfilter"], json!(["kbuild-x86+"]));
    assert_eq!(retry["debug"]["retry_by"], kid.as_str());
    // The failed node is left as it was.
    let failed = env.node(&kid).await;
    assert_eq!(
        (failed["state"].as_str(), failed["result"].as_str()),
        (Some("done"), Some("incomplete"))
    );

    // The scheduler takes the retry event: a new build node, counter 1, its own key.
    let outcomes = s.handle_event(&retry).await;
    let new = submitted(&outcomes);
    assert_ne!(new, kid);
    let node = env.node(&new).await;
    assert_eq!(node["retry_counter"], 1, "{node:#}");
    assert_eq!(node["parent"], cid.as_str());
    assert_eq!(
        node["data"]["schedule_key"],
        format!("{cid}/kbuild-x86/shell/shell/1")
    );
    assert_eq!(node["jobfilter"], json!(["kbuild-x86+"]));
    assert_eq!(kbuilds_under(&env, &cid).await.len(), 2);

    // The retry event redelivered (or seen by a second scheduler) adds nothing.
    let again = env.scheduler(&env.new_ctx()).handle_event(&retry).await;
    assert!(
        matches!(about(&again, "kbuild-x86").as_slice(), [Planned::Skipped(why)] if why.contains("already scheduled")),
        "{again:?}"
    );
    assert_eq!(kbuilds_under(&env, &cid).await.len(), 2);
}

#[tokio::test]
async fn a_build_that_failed_on_its_own_is_not_retried() {
    let env = Env::new(&sched_yaml()).await;
    let retries = env.listener("retry").await;
    let stream = EventStream::opened(env.ctx.api.clone(), "node", "job-retry:node").await;
    let role = tokio::spawn(job_retry::run(env.ctx.clone(), stream));
    let s = env.scheduler(&env.ctx);
    let (_, ev) = available_checkout(&env, 10).await;
    let kid = submitted(&s.handle_event(&ev).await);
    let node_events = env.listener("node").await;
    env.update(&kid, |n| {
        n["state"] = "done".into();
        n["result"] = "fail".into();
    })
    .await;
    // The role has seen the event once ours has (same channel, same order).
    node_events.node_event(&kid, "updated", "done").await;
    retries.none(Duration::from_secs(3), |_| true).await;
    role.abort();
}

#[tokio::test]
async fn a_young_unsubmitted_job_is_left_to_its_scheduler_until_abandoned() {
    let env = Env::new(&sched_yaml()).await;
    let (checkout, ev) = available_checkout(&env, 11).await;
    let cid = checkout["id"].as_str().unwrap();
    // Created 2 s short of being considered abandoned: another scheduler may be submitting
    // it, so this one waits; nobody records a job id, so it takes the job over after that.
    let left = Duration::from_secs(2);
    let orphan = orphan(&env, &checkout, ABANDONED_AFTER - left).await;
    let oid = orphan["id"].as_str().unwrap();
    let s = env.scheduler(&env.new_ctx());
    let start = std::time::Instant::now();
    let outcomes = s.handle_event(&ev).await;
    assert_eq!(submitted(&outcomes), oid, "{outcomes:?}");
    assert!(
        start.elapsed() >= left - Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    assert!(env.node(oid).await["data"]["job_id"].is_string());
    assert_eq!(kbuilds_under(&env, cid).await.len(), 1);
}

#[tokio::test]
async fn retries_stop_at_the_limit() {
    let env = Env::new(&sched_yaml()).await;
    assert_eq!(env.ctx.settings.max_retries, 3);
    let retries = env.listener("retry").await;
    let stream = EventStream::opened(env.ctx.api.clone(), "node", "job-retry:node").await;
    let role = tokio::spawn(job_retry::run(env.ctx.clone(), stream));
    let checkout = env.checkout(&commit(12), "available").await;
    let cid = checkout["id"].as_str().unwrap();
    let build = |counter: i64| {
        json!({
            "kind": "kbuild", "name": "kbuild-x86", "path": ["checkout", "kbuild-x86"],
            "parent": cid, "state": "running", "retry_counter": counter,
            "data": {"kernel_revision": checkout["data"]["kernel_revision"],
                     "schedule_key": format!("{cid}/kbuild-x86/shell/shell/{counter}")},
        })
    };
    let fail = |n: &mut Value| {
        n["state"] = "done".into();
        n["result"] = "incomplete".into();
    };
    // The second retry failed: a third one is published.
    let second = env.create(build(2)).await;
    env.update(second["id"].as_str().unwrap(), fail).await;
    let ev = retries.wait("third retry", |ev| ev["id"] == cid).await;
    assert_eq!(ev["retry_counter"], 3);
    // The third retry failed as well: that was the last one.
    let third = env.create(build(3)).await;
    let node_events = env.listener("node").await;
    let tid = third["id"].as_str().unwrap();
    env.update(tid, fail).await;
    node_events.node_event(tid, "updated", "done").await;
    retries.none(Duration::from_secs(3), |_| true).await;
    role.abort();
}
