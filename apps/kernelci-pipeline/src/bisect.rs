//! The bisect role: automatic bisection on the server, through the normal pipeline.
//!
//! A bisection is a node of its own (`kind: process`, `name: bisection`, state `running`
//! until it ends) whose `data.bisection` holds everything: the tree, the good and bad
//! commits, the build job, the test job and platform, how many runs make a verdict
//! (`repeat`), the commits of the range, and per tested commit its checkout, runs and
//! verdict. Each tested commit is a checkout node *below* the bisection node with a
//! `jobfilter` of the build and test jobs and a `platform_filter` of the platform, so the
//! trigger's tarball, the scheduler and the runtimes do the work as for any checkout; the
//! role asks for more runs of the test through the `retry` channel, like `jobretry`.
//! [`kernelci_sched::bisect`] decides which commit comes next and when the culprit is
//! verified. The node is the state: a restarted role goes on where it was.
//!
//! Bisection trees are not sent to KCIDB (they would look like new results of old commits)
//! and job-retry leaves them alone (the role decides on repeats itself).
//!
//! Started by `POST /pipeline/api/bisect` (`kci bisect start`) from a failing node and a
//! good commit.

use std::time::Duration;

use kernelci_sched::bisect::{Bisection, Next, Outcome, Verdict};
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::ancestry::Ancestors;
use crate::client::ApiError;
use crate::git;
use crate::kcidb_bridge::KcidbTarget;

/// The bisection node's name.
pub const NODE_NAME: &str = "bisection";

/// Runs of the test per commit unless asked otherwise.
pub const DEFAULT_REPEAT: u64 = 3;

/// How long a bisection may take before the timeout role ends it.
const BISECTION_TIMEOUT: Duration = Duration::from_secs(48 * 3600);

/// Why a bisection cannot start (answered 400/404 by the API).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The node or a commit is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The node does not exist.
    #[error("node {0} not found")]
    NotFound(String),
    /// The API failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What to bisect: a failing node (a test, a job or a build) and a good commit.
#[derive(Debug, Clone)]
pub struct Request {
    /// The failing node.
    pub node_id: String,
    /// A commit where the test passed.
    pub good: String,
    /// A commit where it fails (default: the failing node's commit).
    pub bad: Option<String>,
    /// Runs per commit.
    pub repeat: u64,
    /// The stored regression (KCIDB) being bisected, and its first failing result's
    /// KCIDB id, to attach the outcome to.
    pub regression: Option<(String, String)>,
}

/// Creates the bisection node for `req`; the role does the rest.
pub async fn start(ctx: &Ctx, req: &Request) -> Result<Value, StartError> {
    let Some(node) = ctx.api.node(&req.node_id).await? else {
        return Err(StartError::NotFound(req.node_id.clone()));
    };
    let ancestors = Ancestors::new(&ctx.api);
    let job = ancestors.nearest(&node, &["job"]).await;
    let Some(kbuild) = ancestors.nearest(&node, &["kbuild"]).await else {
        return Err(StartError::Invalid(format!(
            "node {} has no build above it: only builds, jobs and their tests can be bisected",
            req.node_id
        )));
    };
    let rev = &node["data"]["kernel_revision"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (tree, url, branch) = (text(&rev["tree"]), text(&rev["url"]), text(&rev["branch"]));
    if tree.is_empty() || url.is_empty() {
        return Err(StartError::Invalid(format!(
            "node {} has no data.kernel_revision",
            req.node_id
        )));
    }
    let bad = req.bad.clone().unwrap_or_else(|| text(&rev["commit"]));
    for (what, c) in [("good", &req.good), ("bad", &bad)] {
        if !git::is_commit_id(c) {
            return Err(StartError::Invalid(format!(
                "{what}: {c:?} is not a commit id (7 to 40 hexadecimal digits)"
            )));
        }
    }
    if !(1..=10).contains(&req.repeat) {
        return Err(StartError::Invalid("repeat: must be from 1 to 10".into()));
    }
    let job_name = job.as_ref().map(|j| text(&j["name"]));
    let platform = job
        .as_ref()
        .map(|j| text(&j["data"]["platform"]))
        .unwrap_or_default();
    let bisection = json!({
        "tree": tree, "url": url, "branch": branch,
        "good": req.good, "bad": bad,
        "kbuild": kbuild["name"], "job": job_name, "platform": platform,
        "repeat": req.repeat, "from_node": req.node_id,
        "regression": req.regression.as_ref().map(|r| &r.0),
        "regression_object": req.regression.as_ref().map(|r| &r.1),
        "commits": [], "steps": {}, "outcome": null,
    });
    let body = json!({
        "kind": "process",
        "name": NODE_NAME,
        "path": [NODE_NAME],
        "group": NODE_NAME,
        "state": "running",
        "data": {"bisection": bisection, "kernel_revision": rev},
        "timeout": crate::iso_in(BISECTION_TIMEOUT),
        "treeid": crate::trigger::treeid(&url, &branch, chrono::Utc::now()),
    });
    Ok(ctx.api.create(&body).await?)
}

/// Rounds between two looks at the dashboard's new regressions.
const AUTO_EVERY: u32 = 5;

/// Advances every running bisection, forever; with a KCIDB target that has a dashboard
/// URL, also starts one for each new regression of a tree with `bisect:` in the
/// configuration, and attaches each outcome to its regression.
pub async fn run(ctx: Ctx, kcidb: Option<KcidbTarget>) {
    let http = reqwest::Client::new();
    let auto = ctx.config.trees.values().any(|t| t.bisect.is_some());
    let mut round = 0u32;
    loop {
        if auto
            && round.is_multiple_of(AUTO_EVERY)
            && let Some(target) = &kcidb
            && let Err(e) = start_for_regressions(&ctx, &http, target).await
        {
            tracing::warn!("bisect: new regressions: {e:#}");
        }
        round = round.wrapping_add(1);
        match ctx
            .api
            .find(&[("name", NODE_NAME.into()), ("state", "running".into())])
            .await
        {
            Ok(nodes) => {
                for node in nodes.into_iter().filter(|n| n["kind"] == "process") {
                    if let Err(e) = advance(&ctx, node.clone(), kcidb.as_ref(), &http).await {
                        tracing::warn!("bisect: {}: {e:#}", node["id"]);
                    }
                }
            }
            Err(e) => tracing::warn!("bisect: {e}"),
        }
        tokio::time::sleep(ctx.settings.timeout_poll).await;
    }
}

/// Whether `node` or an ancestor in `lookup` is a bisection (such trees are not sent to
/// KCIDB and not retried by job-retry).
pub fn in_bisection(node: &Value, lookup: impl Fn(&str) -> Option<Value>) -> bool {
    let mut cur = Some(node.clone());
    for _ in 0..64 {
        let Some(n) = cur else { return false };
        if n["kind"] == "process" && n["name"] == NODE_NAME {
            return true;
        }
        cur = n["parent"].as_str().and_then(&lookup);
    }
    false
}

fn str_of<'a>(b: &'a Value, key: &str) -> &'a str {
    b[key].as_str().unwrap_or_default()
}

/// One round for one bisection: record what finished, start what comes next, or end it.
pub async fn advance(
    ctx: &Ctx,
    mut node: Value,
    kcidb: Option<&KcidbTarget>,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    let id = node["id"].as_str().unwrap_or_default().to_string();
    let mut b = node["data"]["bisection"].clone();
    if !b.is_object() {
        anyhow::bail!("no data.bisection");
    }
    let changed_before = b.clone();
    let mirror = git::Mirror::new(&ctx.settings.work_dir.join("git"), str_of(&b, "tree"));
    if b["commits"].as_array().is_none_or(Vec::is_empty) {
        mirror
            .fetch(str_of(&b, "url"), str_of(&b, "branch"))
            .await?;
        let range = format!("{}..{}", str_of(&b, "good"), str_of(&b, "bad"));
        let listed = git::git(
            Some(&mirror.dir),
            &["rev-list", "--ancestry-path", "--reverse", &range],
        )
        .await;
        let commits: Vec<String> = match listed {
            Ok(out) => out.lines().map(String::from).collect(),
            Err(e) => {
                return finish(ctx, node, &b, Err(format!("git rev-list {range}: {e}")))
                    .await
                    .map(|_| ());
            }
        };
        let good = git::git(Some(&mirror.dir), &["rev-parse", str_of(&b, "good")])
            .await
            .unwrap_or_else(|_| str_of(&b, "good").to_string());
        if let Err(e) = Bisection::new(&good, commits.clone()) {
            return finish(ctx, node, &b, Err(e.to_string())).await.map(|_| ());
        }
        b["good"] = good.into();
        b["commits"] = json!(commits);
    }
    let commits: Vec<String> = b["commits"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut state = Bisection::new(str_of(&b, "good"), commits)?;
    if let Some(steps) = b["steps"].as_object() {
        for (commit, step) in steps {
            if let Some(v) = step
                .get("verdict")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
            {
                state.record(commit, v);
            }
        }
    }
    // Record what finished; start the next test; at most a few moves per round.
    for _ in 0..8 {
        match state.next() {
            Next::Done(outcome) => {
                let subject = match &outcome {
                    Outcome::Culprit { commit, .. } => {
                        git::git(Some(&mirror.dir), &["show", "-s", "--format=%s", commit])
                            .await
                            .ok()
                    }
                    _ => None,
                };
                let reported = finish(ctx, node, &b, Ok((outcome, subject))).await?;
                if let (Some(target), Some(done)) = (kcidb, reported) {
                    attach(http, target, &done).await?;
                }
                return Ok(());
            }
            Next::Test(commit) => {
                let step = b["steps"][&commit].clone();
                if step.is_null() {
                    let checkout = create_checkout(ctx, &id, &b, &commit).await?;
                    b["steps"][&commit] =
                        json!({"checkout": checkout, "runs": [], "verdict": null});
                    break;
                }
                match evaluate(ctx, &b, &step).await? {
                    Progress::Verdict(v, runs) => {
                        b["steps"][&commit]["runs"] = json!(runs);
                        b["steps"][&commit]["verdict"] = serde_json::to_value(v)?;
                        state.record(&commit, v);
                    }
                    Progress::Waiting(runs) => {
                        b["steps"][&commit]["runs"] = json!(runs);
                        break;
                    }
                }
            }
        }
    }
    if b != changed_before {
        node["data"]["bisection"] = b;
        ctx.api.update(&node).await?;
    }
    Ok(())
}

/// Where a tested commit stands.
enum Progress {
    /// Decided, with the runs.
    Verdict(Verdict, Vec<bool>),
    /// Still running (or another run was asked for).
    Waiting(Vec<bool>),
}

/// The checkout of one tested commit, below the bisection node; its id.
async fn create_checkout(ctx: &Ctx, id: &str, b: &Value, commit: &str) -> anyhow::Result<String> {
    let mut jobfilter = vec![str_of(b, "kbuild").to_string()];
    if let Some(job) = b["job"].as_str() {
        jobfilter.push(job.to_string());
    }
    let mut node = json!({
        "kind": "checkout",
        "name": "checkout",
        "path": ["checkout"],
        "parent": id,
        "state": "running",
        "data": {"kernel_revision": {"tree": b["tree"], "branch": b["branch"],
            "commit": commit, "url": b["url"], "tip_of_branch": false},
            "schedule_key": format!("bisect/{id}/{commit}")},
        "jobfilter": jobfilter,
        "timeout": crate::iso_in(Duration::from_secs(300 * 60)),
        "treeid": crate::trigger::treeid(str_of(b, "url"), str_of(b, "branch"), chrono::Utc::now()),
        "submitter": "service:pipeline",
    });
    if !str_of(b, "platform").is_empty() {
        node["platform_filter"] = json!([b["platform"]]);
    }
    let created = match ctx.api.create_keyed(&node).await {
        Ok(n) => n,
        Err(ApiError::Conflict(_)) => {
            let found = ctx
                .api
                .find(&[("data.schedule_key", format!("bisect/{id}/{commit}"))])
                .await?;
            found
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("checkout of {commit} vanished"))?
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!("bisect {id}: testing {commit} (checkout {})", created["id"]);
    Ok(created["id"].as_str().unwrap_or_default().to_string())
}

/// The runs of a tested commit so far, and its verdict once they agree `repeat` times.
async fn evaluate(ctx: &Ctx, b: &Value, step: &Value) -> anyhow::Result<Progress> {
    let repeat = usize::try_from(b["repeat"].as_u64().unwrap_or(DEFAULT_REPEAT)).unwrap_or(3);
    let checkout = str_of(step, "checkout").to_string();
    let Some(co) = ctx.api.node(&checkout).await? else {
        return Ok(Progress::Verdict(Verdict::Skip, Vec::new()));
    };
    let builds = ctx
        .api
        .find(&[
            ("parent", checkout.clone()),
            ("name", str_of(b, "kbuild").into()),
        ])
        .await?;
    let done =
        |n: &Value| n["state"] == "done" || (n["state"] == "available" && !n["result"].is_null());
    let passed_build = builds.iter().find(|k| k["result"] == "pass");
    let Some(job) = b["job"].as_str() else {
        // Bisecting a build: its result is the verdict.
        let runs: Vec<bool> = builds
            .iter()
            .filter(|k| done(k) && matches!(k["result"].as_str(), Some("pass" | "fail")))
            .map(|k| k["result"] == "pass")
            .collect();
        return Ok(match Verdict::from_runs(&runs, 1) {
            Some(v) => Progress::Verdict(v, runs),
            None if co["state"] == "done" => Progress::Verdict(Verdict::Skip, runs),
            None => Progress::Waiting(runs),
        });
    };
    let Some(kbuild) = passed_build else {
        let failed = !builds.is_empty() && builds.iter().all(|k| k["state"] == "done");
        let gone = co["state"] == "done" && builds.is_empty();
        return Ok(if failed || gone {
            Progress::Verdict(Verdict::Skip, Vec::new())
        } else {
            Progress::Waiting(Vec::new())
        });
    };
    let kbuild_id = kbuild["id"].as_str().unwrap_or_default().to_string();
    let jobs = ctx
        .api
        .find(&[("parent", kbuild_id), ("name", job.into())])
        .await?;
    let runs: Vec<bool> = jobs
        .iter()
        .filter(|j| j["state"] == "done" && matches!(j["result"].as_str(), Some("pass" | "fail")))
        .map(|j| j["result"] == "pass")
        .collect();
    if let Some(v) = Verdict::from_runs(&runs, repeat) {
        return Ok(Progress::Verdict(v, runs));
    }
    let pending = jobs.iter().any(|j| j["state"] != "done");
    if pending || (jobs.is_empty() && kbuild["state"] != "done") {
        return Ok(Progress::Waiting(runs));
    }
    // Infrastructure failures do not count; give up after twice the runs asked for.
    if jobs.len() > repeat * 2 {
        return Ok(Progress::Verdict(Verdict::Skip, runs));
    }
    let next = jobs
        .iter()
        .filter_map(|n| n["retry_counter"].as_i64())
        .max()
        .map_or(0, |m| m + 1);
    let mut event = kbuild.clone();
    event["jobfilter"] = json!([job]);
    event["state"] = "available".into();
    event["retry_counter"] = next.into();
    if !str_of(b, "platform").is_empty() {
        event["platform_filter"] = json!([b["platform"]]);
    }
    ctx.api.publish("retry", &event).await?;
    Ok(Progress::Waiting(runs))
}

/// Ends the bisection: `pass` with the verified culprit, `fail` otherwise; the node as
/// written when a culprit was found.
async fn finish(
    ctx: &Ctx,
    mut node: Value,
    b: &Value,
    outcome: Result<(Outcome, Option<String>), String>,
) -> anyhow::Result<Option<Value>> {
    let mut b = b.clone();
    let (result, summary) = match &outcome {
        Ok((Outcome::Culprit { commit, .. }, subject)) => {
            let reproduce = reproduce(&b, commit);
            b["reproduce"] = reproduce.into();
            b["culprit_subject"] = json!(subject);
            (
                "pass",
                format!("culprit {commit} {}", subject.clone().unwrap_or_default()),
            )
        }
        Ok((Outcome::Flaky { commit }, _)) => ("fail", format!("flaky at {commit}")),
        Ok((Outcome::Inconclusive { reason }, _)) => ("fail", format!("inconclusive: {reason}")),
        Err(e) => ("incomplete", e.clone()),
    };
    b["outcome"] = match outcome {
        Ok((o, _)) => serde_json::to_value(o)?,
        Err(e) => json!({"kind": "error", "reason": e}),
    };
    b["tested"] = b["steps"].as_object().map_or(0, Map::len).into();
    node["data"]["bisection"] = b;
    node["state"] = "done".into();
    node["result"] = result.into();
    if result != "pass" {
        node["data"]["error_msg"] = summary.clone().into();
    }
    let written = ctx.api.update(&node).await?;
    tracing::info!("bisect {}: {summary}", node["id"]);
    Ok((result == "pass").then_some(written))
}

/// One command that reruns the test on the culprit (kci, like kci-dev's `checkout`).
pub fn reproduce(b: &Value, commit: &str) -> String {
    let mut cmd = format!(
        "kci checkout --giturl {} --branch {} --commit {commit} --job-filter {}",
        str_of(b, "url"),
        str_of(b, "branch"),
        str_of(b, "kbuild")
    );
    if let Some(job) = b["job"].as_str() {
        cmd.push_str(&format!(" --job-filter {job}"));
    }
    if !str_of(b, "platform").is_empty() {
        cmd.push_str(&format!(" --platform-filter {}", str_of(b, "platform")));
    }
    cmd.push_str(" --watch");
    cmd
}

/// Starts a bisection for each new (or still failing) regression of a tree with `bisect:`
/// that has none yet: from its first failing result, between its last passing commit and
/// its first failing one.
async fn start_for_regressions(
    ctx: &Ctx,
    http: &reqwest::Client,
    target: &KcidbTarget,
) -> anyhow::Result<()> {
    let Some(dashboard) = &target.dashboard_url else {
        return Ok(());
    };
    let url = format!(
        "{}/regressions/?state=new,still_failing&origin={}&limit=200",
        dashboard.trim_end_matches('/'),
        target.origin
    );
    let resp = http.get(&url).send().await?;
    if !resp.status().is_success() {
        anyhow::bail!("{url}: {}", resp.status());
    }
    let list: Value = resp.json().await?;
    for r in list.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let Some(policy) = r["tree_name"]
            .as_str()
            .and_then(|t| ctx.config.trees.get(t))
            .and_then(|t| t.bisect)
        else {
            continue;
        };
        let (Some(id), Some(object), Some(good)) = (
            r["id"].as_str(),
            r["first_fail"]["object_id"].as_str(),
            r["last_pass"]["commit"].as_str(),
        ) else {
            continue;
        };
        let existing = ctx
            .api
            .count(&[
                ("name", NODE_NAME.into()),
                ("data.bisection.regression", id.into()),
            ])
            .await?;
        if existing > 0 {
            continue;
        }
        // KCIDB ids of our results are `<origin>:<node id>`.
        let Some(node_id) = object.strip_prefix(&format!("{}:", target.origin)) else {
            continue;
        };
        let req = Request {
            node_id: node_id.to_string(),
            good: good.to_string(),
            bad: r["first_fail"]["commit"].as_str().map(String::from),
            repeat: policy.repeat,
            regression: Some((id.to_string(), object.to_string())),
        };
        match start(ctx, &req).await {
            Ok(n) => tracing::info!("bisect: regression {id}: bisection {} started", n["id"]),
            Err(e) => tracing::warn!("bisect: regression {id}: cannot bisect: {e}"),
        }
    }
    Ok(())
}

/// Attaches a found culprit to the regression it came from, in KCIDB's own terms: an issue
/// (culprit `code`, the bisection in `misc.bisection`) and an incident linking it to the
/// regression's first failing result. The regression API shows it as the regression's
/// `bisection`.
async fn attach(http: &reqwest::Client, target: &KcidbTarget, node: &Value) -> anyhow::Result<()> {
    let b = &node["data"]["bisection"];
    let Some(object) = b["regression_object"].as_str() else {
        return Ok(());
    };
    let origin = &target.origin;
    let node_id = node["id"].as_str().unwrap_or_default();
    let issue_id = format!("{origin}:bisection-{node_id}");
    let commit = b["outcome"]["commit"].as_str().unwrap_or_default();
    let short: String = commit.chars().take(12).collect();
    let subject = b["culprit_subject"].as_str().unwrap_or_default();
    let mut incident = json!({
        "id": format!("{issue_id}-1"), "origin": origin, "issue_id": issue_id,
        "issue_version": 1, "present": true,
        "comment": format!("First failure of the regression bisected to {short}"),
    });
    let key = if b["job"].is_null() {
        "build_id"
    } else {
        "test_id"
    };
    incident[key] = object.into();
    let submission = json!({
        "version": {"major": 5, "minor": 3},
        "issues": [{
            "id": issue_id, "version": 1, "origin": origin,
            "comment": format!("Bisected to {short} (\"{subject}\")"),
            "culprit": {"code": true, "tool": false, "harness": false},
            "misc": {"bisection": {
                "node": node_id, "regression": b["regression"], "culprit": commit,
                "parent": b["outcome"]["parent"], "subject": subject,
                "reproduce": b["reproduce"], "tested": b["tested"],
            }},
        }],
        "incidents": [incident],
    });
    let resp = http
        .post(&target.submit_url)
        .bearer_auth(&target.token)
        .json(&submission)
        .send()
        .await?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::bail!("KCIDB refused the bisection issue: {status}: {text}");
    }
    Ok(())
}
