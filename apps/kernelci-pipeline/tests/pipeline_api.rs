//! The pipeline REST API (specs/pipeline.md §6) served on a real port over a real Maestro
//! API: token checks, request validation, checkout creation, job retry through the
//! `retry` channel (and the scheduler acting on it), metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{Env, commit, sched_yaml, submitted};
use kernelci_pipeline::api::{PipelineApi, issue_token};
use serde_json::{Value, json};

const SECRET: &[u8] = b"pipeline-test-secret";
const OLD_SECRET: &[u8] = b"previous-secret";

type Served = common::ServedApi;

async fn serve() -> Served {
    let env = Env::new(&sched_yaml()).await;
    let router =
        PipelineApi::new(env.ctx.clone(), vec![SECRET.to_vec(), OLD_SECRET.to_vec()]).router();
    common::serve_api(env, router).await
}

impl Served {
    async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, Some(&format!("Bearer {token}")), &body.to_string())
            .await
    }

    async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/api/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }
}

fn token(perms: &[&str]) -> String {
    issue_token(SECRET, "dev@example.org", perms, 1)
}

fn good_checkout() -> Value {
    json!({"url": "https://git.example.org/fake/linux.git", "branch": "master",
           "commit": commit(0xab), "jobfilter": ["kbuild-x86"]})
}

fn metric(text: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{kind=\"pipeline_callback\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn checkout_tokens_and_validation() {
    let s = serve().await;
    let body = good_checkout().to_string();
    let checkouts = || async { s.env.count(&[("kind", "checkout")]).await };

    // Authentication and authorization, before anything else.
    let (st, v) = s.post_raw("/api/checkout", None, &body).await;
    assert_eq!(st, 401, "{v}");
    let forged = issue_token(b"another-secret", "dev@example.org", &["checkout"], 1);
    let (st, v) = s.post("/api/checkout", &forged, &good_checkout()).await;
    assert_eq!(st, 401, "{v}");
    let (st, v) = s
        .post_raw("/api/checkout", Some("Bearer not.a.jwt"), &body)
        .await;
    assert_eq!(st, 401, "{v}");
    let expired = issue_token(SECRET, "dev@example.org", &["checkout"], -1);
    let (st, v) = s.post("/api/checkout", &expired, &good_checkout()).await;
    assert_eq!(st, 401, "{v}");
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");
    let (st, v) = s
        .post("/api/checkout", &token(&["testretry"]), &good_checkout())
        .await;
    assert_eq!(st, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("checkout"), "{v}");
    let no_email = issue_token(SECRET, "", &["checkout"], 1);
    let (st, v) = s.post("/api/checkout", &no_email, &good_checkout()).await;
    assert_eq!(st, 401, "{v}");
    assert_eq!(checkouts().await, 0);

    // Bad requests.
    let t = token(&["checkout"]);
    let auth = format!("Bearer {t}");
    let (st, v) = s.post_raw("/api/checkout", Some(&auth), "{not json").await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.post_raw("/api/checkout", Some(&auth), "[1, 2]").await;
    assert_eq!(st, 400, "{v}");
    for bad in [
        "",
        "abc",
        "xyz1234",
        "0123456789abcdef0123456789abcdef012345678",
        "ABCDEF0",
    ] {
        let mut b = good_checkout();
        b["commit"] = bad.into();
        let (st, v) = s.post("/api/checkout", &t, &b).await;
        assert_eq!(st, 400, "commit {bad:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains("commit"), "{v}");
    }
    let mut b = good_checkout();
    b.as_object_mut().unwrap().remove("branch");
    let (st, v) = s.post("/api/checkout", &t, &b).await;
    assert_eq!(st, 400, "{v}");
    // Unknown tree URL, and a tree no build config uses.
    for url in [
        "https://git.example.org/unknown.git",
        "https://git.example.org/orphan/linux.git",
    ] {
        let mut b = good_checkout();
        b["url"] = url.into();
        let (st, v) = s.post("/api/checkout", &t, &b).await;
        assert_eq!(st, 404, "{url}: {v}");
    }
    let mut b = good_checkout();
    b["jobfilter"] = json!(["kbuild-x86", "no-such-job+"]);
    let (st, v) = s.post("/api/checkout", &t, &b).await;
    assert_eq!(st, 404, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("no-such-job"),
        "{v}"
    );
    let mut b = good_checkout();
    b["platformfilter"] = json!(["no-such-board"]);
    let (st, v) = s.post("/api/checkout", &t, &b).await;
    assert_eq!(st, 404, "{v}");
    let mut b = good_checkout();
    b["jobfilter"] = json!(vec!["kbuild-x86"; 9]);
    let (st, v) = s.post("/api/checkout", &t, &b).await;
    assert_eq!(st, 400, "{v}");
    let mut b = good_checkout();
    b["nodeid"] = "0123456789abcdef01234567".into();
    let (st, v) = s.post("/api/checkout", &t, &b).await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(checkouts().await, 0);

    // A good request: a checkout node for the user, with the filters asked for. The raw
    // token (as kci-dev sends it) works as well as `Bearer`, and so does the old secret.
    let (st, v) = s.post_raw("/api/checkout", Some(&t), &body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["message"], "OK");
    let id = v["node"]["id"].as_str().unwrap();
    let node = s.env.node(id).await;
    assert_eq!(node["kind"], "checkout");
    assert_eq!(node["state"], "running");
    assert_eq!(node["submitter"], "user:dev@example.org");
    assert_eq!(node["jobfilter"], json!(["kbuild-x86"]));
    assert_eq!(
        node["data"]["kernel_revision"],
        json!({"tree": "fake", "branch": "master", "commit": commit(0xab),
               "url": "https://git.example.org/fake/linux.git", "tip_of_branch": false})
    );
    let old = issue_token(OLD_SECRET, "old@example.org", &["checkout"], 1);
    let mut b = good_checkout();
    b["platformfilter"] = json!(["qemu-x86"]);
    let (st, v) = s.post("/api/checkout", &old, &b).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["node"]["submitter"], "user:old@example.org");
    assert_eq!(v["node"]["platform_filter"], json!(["qemu-x86"]));
    assert_eq!(checkouts().await, 2);

    // The counters saw all of it.
    let m = s.metrics().await;
    assert!(
        m.contains("# TYPE pipeline_api_requests_total counter"),
        "{m}"
    );
    assert!(metric(&m, "pipeline_api_requests_total") >= 20, "{m}");
    assert!(metric(&m, "pipeline_api_auth_fail_total") >= 5, "{m}");
}

#[tokio::test]
async fn checkout_from_a_node_reruns_its_jobs_on_another_commit() {
    let s = serve().await;
    let env = &s.env;
    let c = env.checkout(&commit(1), "done").await;
    let kb = env
        .create(json!({
            "kind": "kbuild", "name": "kbuild-x86", "path": ["checkout", "kbuild-x86"],
            "parent": c["id"], "state": "done", "result": "pass",
            "data": {"kernel_revision": c["data"]["kernel_revision"]},
        }))
        .await;
    let job = env
        .create(json!({
            "kind": "job", "name": "baseline-x86",
            "path": ["checkout", "kbuild-x86", "baseline-x86"],
            "parent": kb["id"], "state": "done", "result": "fail",
            "data": {"kernel_revision": c["data"]["kernel_revision"], "platform": "qemu-x86"},
        }))
        .await;
    let t = token(&["checkout"]);
    let (st, v) = s
        .post(
            "/api/checkout",
            &t,
            &json!({"nodeid": job["id"], "commit": commit(2)}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let node = env.node(v["node"]["id"].as_str().unwrap()).await;
    assert_eq!(node["jobfilter"], json!(["kbuild-x86", "baseline-x86"]));
    assert_eq!(node["data"]["kernel_revision"]["commit"], commit(2));
    assert_eq!(node["data"]["kernel_revision"]["tree"], "fake");
    assert_eq!(node["submitter"], "user:dev@example.org");
}

#[tokio::test]
async fn jobretry_publishes_a_retry_the_scheduler_acts_on() {
    let s = serve().await;
    let env = &s.env;
    let retries = env.listener("retry").await;
    let c = env.checkout(&commit(3), "available").await;
    let cid = c["id"].as_str().unwrap();
    let rev = c["data"]["kernel_revision"].clone();
    let kb = env
        .create(json!({
            "kind": "kbuild", "name": "kbuild-x86", "path": ["checkout", "kbuild-x86"],
            "parent": cid, "state": "done", "result": "pass", "treeid": c["treeid"],
            "data": {"kernel_revision": rev, "arch": "x86_64"},
        }))
        .await;
    let kid = kb["id"].as_str().unwrap();
    let job = env
        .create(json!({
            "kind": "job", "name": "baseline-x86",
            "path": ["checkout", "kbuild-x86", "baseline-x86"],
            "parent": kid, "state": "done", "result": "fail", "treeid": c["treeid"],
            "data": {"kernel_revision": rev, "platform": "qemu-x86", "runtime": "shell",
                     "schedule_key": format!("{kid}/baseline-x86/shell/qemu-x86/0")},
        }))
        .await;
    let jid = job["id"].as_str().unwrap();
    let t = token(&["testretry"]);

    // Refusals: no permission, not a job, a job without a kbuild, a kbuild that failed.
    let (st, v) = s
        .post(
            "/api/jobretry",
            &token(&["checkout"]),
            &json!({"nodeid": jid}),
        )
        .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = s.post("/api/jobretry", &t, &json!({})).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.post("/api/jobretry", &t, &json!({"nodeid": cid})).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.post("/api/jobretry", &t, &json!({"nodeid": kid})).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .post(
            "/api/jobretry",
            &t,
            &json!({"nodeid": "0123456789abcdef01234567"}),
        )
        .await;
    assert_eq!(st, 404, "{v}");
    let direct = env
        .create(json!({
            "kind": "job", "name": "kunit", "path": ["checkout", "kunit"], "parent": cid,
            "state": "done", "result": "fail", "data": {"kernel_revision": rev},
        }))
        .await;
    let (st, v) = s
        .post("/api/jobretry", &t, &json!({"nodeid": direct["id"]}))
        .await;
    assert_eq!(st, 404, "{v}");
    let failed_kb = env
        .create(json!({
            "kind": "kbuild", "name": "kbuild-x86", "path": ["checkout", "kbuild-x86"],
            "parent": cid, "state": "done", "result": "fail",
            "data": {"kernel_revision": rev},
        }))
        .await;
    let under_failed = env
        .create(json!({
            "kind": "job", "name": "baseline-x86",
            "path": ["checkout", "kbuild-x86", "baseline-x86"], "parent": failed_kb["id"],
            "state": "done", "result": "fail", "data": {"kernel_revision": rev},
        }))
        .await;
    let (st, v) = s
        .post("/api/jobretry", &t, &json!({"nodeid": under_failed["id"]}))
        .await;
    assert_eq!(st, 400, "{v}");
    retries
        .none(std::time::Duration::from_millis(500), |_| true)
        .await;

    // A job under a passed build: 200 and a retry event for that build.
    let (st, v) = s.post("/api/jobretry", &t, &json!({"nodeid": jid})).await;
    assert_eq!(st, 200, "{v}");
    let ev = retries.wait("jobretry", |ev| ev["id"] == kid).await;
    assert_eq!(ev["kind"], "kbuild", "{ev:#}");
    assert_eq!(ev["state"], "available");
    assert_eq!(ev["jobfilter"], json!(["kbuild-x86", "baseline-x86"]));
    assert_eq!(ev["platform_filter"], json!(["qemu-x86"]));
    assert_eq!(ev["retry_counter"], 1);

    // The scheduler makes a new job node from it, next to the failed one.
    let sched = env.scheduler(&env.ctx);
    let outcomes = sched.handle_event(&ev).await;
    let new = submitted(&outcomes);
    assert_ne!(new, jid);
    let node = env.node(&new).await;
    assert_eq!(node["parent"], kid);
    assert_eq!(node["name"], "baseline-x86");
    assert_eq!(node["retry_counter"], 1);
    assert_eq!(node["data"]["platform"], "qemu-x86");
    assert_eq!(
        node["data"]["schedule_key"],
        format!("{kid}/baseline-x86/shell/qemu-x86/1")
    );
    assert_eq!(
        env.count(&[("parent", kid), ("name", "baseline-x86")])
            .await,
        2
    );

    // A second retry of the same job gets the next counter.
    let (st, v) = s.post("/api/jobretry", &t, &json!({"nodeid": jid})).await;
    assert_eq!(st, 200, "{v}");
    let ev = retries.wait("second jobretry", |ev| ev["id"] == kid).await;
    assert_eq!(ev["retry_counter"], 2);
    submitted(&sched.handle_event(&ev).await);
    assert_eq!(
        env.count(&[("parent", kid), ("name", "baseline-x86")])
            .await,
        3
    );
}

#[tokio::test]
async fn patchset_needs_its_permission_and_metrics_count() {
    let s = serve().await;
    let body = json!({"nodeid": "0123456789abcdef01234567", "patch": ["x"]});
    let (st, v) = s.post("/api/patchset", &token(&["checkout"]), &body).await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = s.post_raw("/api/patchset", None, &body.to_string()).await;
    assert_eq!(st, 401, "{v}");
    // With the permission: an unknown node is 404, a node that is not a checkout 400.
    let t = token(&["patchset"]);
    let (st, v) = s.post("/api/patchset", &t, &body).await;
    assert_eq!(st, 404, "{v}");
    let c = s.env.checkout(&commit(4), "available").await;
    let kb = s
        .env
        .create(json!({
            "kind": "kbuild", "name": "kbuild-x86", "path": ["checkout", "kbuild-x86"],
            "parent": c["id"], "state": "running",
            "data": {"kernel_revision": c["data"]["kernel_revision"]},
        }))
        .await;
    let (st, v) = s
        .post(
            "/api/patchset",
            &t,
            &json!({"nodeid": kb["id"], "patch": ["x"]}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(s.env.count(&[("name", "patchset")]).await, 0);
    let resp = s.http.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let m = s.metrics().await;
    assert_eq!(metric(&m, "pipeline_api_requests_total"), 4, "{m}");
    assert_eq!(metric(&m, "pipeline_api_auth_fail_total"), 2, "{m}");
    assert_eq!(metric(&m, "http_requests_total"), 1, "{m}");
    assert_eq!(metric(&m, "lava_callback_requests_total"), 0, "{m}");
}
