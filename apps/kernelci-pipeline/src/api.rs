//! The pipeline REST API (specs/pipeline.md §6), served under `/pipeline` by `kernelci up`:
//! `POST /api/checkout`, `POST /api/jobretry`, `POST /api/patchset` (the patchset role does
//! the rest), `GET /api/metrics`, the LAVA callback `POST /node/{id}`
//! ([`crate::lava_callback`]), and the artifact upload of jobs that run out of the
//! scheduler's sight, `PUT /api/artifacts/{node_id}/{name}` ([`crate::remote_artifacts`]:
//! per-job token, permission `artifacts`, claim `node`).
//!
//! Tokens: HS256 JWTs in `Authorization` (raw, as kci-dev sends them, or `Bearer`), with a
//! `permissions` list (`checkout`, `testretry`, `patchset`) and an `email`; `exp` is checked.
//! Upstream bugs fixed here: `/api/checkout` with `nodeid` works (upstream raises on an
//! unset platform filter); `/api/jobretry` really schedules the job again (upstream emits a
//! `done` event no scheduler entry matches, without a new retry counter).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::{Ctx, iso_in, trigger};

/// Largest request body: 32 patches of 10 MiB, plus JSON overhead.
pub const MAX_BODY: usize = 330 << 20;

/// State of the pipeline API.
#[derive(Clone)]
pub struct PipelineApi {
    ctx: Ctx,
    secrets: Arc<Vec<Vec<u8>>>,
    metrics: Arc<Metrics>,
    callbacks: Arc<crate::lava_callback::CallbackGate>,
    max_artifact: u64,
}

#[derive(Default)]
struct Metrics {
    requests: AtomicU64,
    api_requests: AtomicU64,
    auth_fail: AtomicU64,
    callbacks: AtomicU64,
    callback_fail: AtomicU64,
}

type Reply = (StatusCode, axum::Json<Value>);

fn reply(status: StatusCode, message: impl Into<String>) -> Reply {
    (status, axum::Json(json!({"message": message.into()})))
}

impl PipelineApi {
    /// The API over `ctx`, accepting tokens signed with any of `secrets`.
    /// The first secret also signs the per-job artifact upload tokens the scheduler of this
    /// process issues ([`crate::Settings::artifact_key`]).
    pub fn new(ctx: Ctx, secrets: Vec<Vec<u8>>) -> PipelineApi {
        if let Some(first) = secrets.first() {
            ctx.settings.artifact_key.set(first);
        }
        PipelineApi {
            ctx,
            secrets: Arc::new(secrets),
            metrics: Arc::new(Metrics::default()),
            callbacks: Arc::new(crate::lava_callback::CallbackGate::default()),
            max_artifact: crate::remote_artifacts::DEFAULT_MAX_UPLOAD,
        }
    }

    /// Refuse uploaded artifacts larger than `bytes` (default
    /// [`crate::remote_artifacts::DEFAULT_MAX_UPLOAD`]).
    pub fn with_artifact_limit(mut self, bytes: u64) -> PipelineApi {
        self.max_artifact = bytes;
        self
    }

    /// Accept LAVA callbacks carrying one of `tokens` (every LAVA lab's `runtime_token`
    /// and `callback_token`).
    pub fn with_callback_tokens(mut self, tokens: Vec<String>) -> PipelineApi {
        self.callbacks = Arc::new(crate::lava_callback::CallbackGate::new(tokens));
        self
    }

    /// The router (mount it under `/pipeline`, or at `/` when the role runs alone).
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/api/checkout", post(checkout))
            .route("/api/jobretry", post(jobretry))
            .route("/api/patchset", post(patchset))
            .route("/api/bisect", post(bisect))
            .route("/api/metrics", get(metrics))
            .route("/node/{id}", post(callback))
            .route("/api/artifacts/{node_id}/{*name}", put(upload_artifact))
            // Patchsets may carry 32 patches of 10 MiB each (upstream's limits).
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(self)
    }

    /// Check the token and its permission; the claims.
    fn authorize(&self, headers: &HeaderMap, permission: &str) -> Result<Value, Reply> {
        self.metrics.api_requests.fetch_add(1, Ordering::Relaxed);
        let fail = |msg: &str| {
            self.metrics.auth_fail.fetch_add(1, Ordering::Relaxed);
            reply(StatusCode::UNAUTHORIZED, msg)
        };
        let Some(raw) = headers.get("authorization").and_then(|h| h.to_str().ok()) else {
            return Err(fail("Missing Authorization header"));
        };
        let token = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
        let secrets: Vec<&[u8]> = self.secrets.iter().map(Vec::as_slice).collect();
        let claims = kernelci_model::jwt::verify(&secrets, token)
            .map_err(|e| fail(&format!("Invalid token: {e}")))?;
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
            && exp < chrono::Utc::now().timestamp()
        {
            return Err(fail("Token expired"));
        }
        let allowed = claims["permissions"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == permission));
        if !allowed {
            self.metrics.auth_fail.fetch_add(1, Ordering::Relaxed);
            return Err(reply(
                StatusCode::FORBIDDEN,
                format!("The token lacks the {permission:?} permission"),
            ));
        }
        Ok(claims)
    }
}

/// Issue a pipeline API token for `email` with `permissions`, valid `days`.
pub fn issue_token(secret: &[u8], email: &str, permissions: &[&str], days: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    kernelci_model::jwt::sign(
        secret,
        &json!({"email": email, "permissions": permissions, "iat": now, "exp": now + days * 86400}),
    )
}

async fn index(State(api): State<PipelineApi>) -> impl IntoResponse {
    api.metrics.requests.fetch_add(1, Ordering::Relaxed);
    axum::Json(
        json!({"message": "KernelCI pipeline API: POST /api/checkout, /api/jobretry, /api/patchset; GET /api/metrics"}),
    )
}

/// The `email` claim (checkouts and patchsets are submitted as `user:<email>`).
fn email_claim(claims: &Value) -> Result<&str, Reply> {
    claims["email"]
        .as_str()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| reply(StatusCode::UNAUTHORIZED, "The token has no email claim"))
}

/// Create a user-requested node with its filters; upstream's `{"message", "node"}` answer.
async fn create_node(
    api: &PipelineApi,
    mut node: Value,
    jobfilter: Option<Vec<String>>,
    platform_filter: Option<Vec<String>>,
) -> Result<Reply, Reply> {
    if let Some(jf) = jobfilter {
        node["jobfilter"] = json!(jf);
    }
    if let Some(pf) = platform_filter {
        node["platform_filter"] = json!(pf);
    }
    let created = api
        .ctx
        .api
        .create(&node)
        .await
        .map_err(|e| reply(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok((
        StatusCode::OK,
        axum::Json(json!({"message": "OK", "node": created})),
    ))
}

/// The node `id`, or a 404 naming it.
async fn fetch_node(api: &PipelineApi, id: &str) -> Result<Value, Reply> {
    if kernelci_model::ObjectId::parse(id).is_err() {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a node id (24 hexadecimal digits)"),
        ));
    }
    api.ctx
        .api
        .node(id)
        .await
        .map_err(|e| reply(StatusCode::BAD_GATEWAY, e.to_string()))?
        .ok_or_else(|| reply(StatusCode::NOT_FOUND, format!("Node {id} not found")))
}

fn body_json(body: &[u8]) -> Result<Value, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(reply(
            StatusCode::BAD_REQUEST,
            "The body must be a JSON object",
        )),
        Err(e) => Err(reply(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}"))),
    }
}

fn string_list(v: &Value, key: &str, max: usize) -> Result<Option<Vec<String>>, Reply> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() <= max && a.iter().all(Value::is_string) => Ok(Some(
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
        )),
        Some(_) => Err(reply(
            StatusCode::BAD_REQUEST,
            format!("{key} must be a list of at most {max} strings"),
        )),
    }
}

async fn checkout(
    State(api): State<PipelineApi>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Reply, Reply> {
    let (api, headers) = (&api, &headers);
    let claims = api.authorize(headers, "checkout")?;
    let email = email_claim(&claims)?;
    let v = body_json(&body)?;
    let commit = v["commit"].as_str().unwrap_or_default();
    let valid_commit = (7..=40).contains(&commit.len())
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid_commit {
        return Err(reply(StatusCode::BAD_REQUEST, "Invalid commit format"));
    }
    let cfg = &api.ctx.config;
    let mut jobfilter = string_list(&v, "jobfilter", 8)?;
    let platform_filter = string_list(&v, "platformfilter", 8)?;
    let (tree, url, branch) = if let Some(nodeid) = v["nodeid"].as_str() {
        let node = fetch_node(api, nodeid).await?;
        let rev = &node["data"]["kernel_revision"];
        let (Some(t), Some(u), Some(b)) = (
            rev["tree"].as_str(),
            rev["url"].as_str(),
            rev["branch"].as_str(),
        ) else {
            return Err(reply(
                StatusCode::BAD_REQUEST,
                "The node has no kernel revision",
            ));
        };
        if jobfilter.is_none() && matches!(node["kind"].as_str(), Some("job" | "kbuild")) {
            // Re-run that job (and the build above it) on the new commit.
            let mut names = Vec::new();
            let ancestors = crate::ancestry::Ancestors::new(&api.ctx.api);
            if let Some(kb) = ancestors.nearest(&node, &["kbuild"]).await
                && let Some(n) = kb["name"].as_str()
            {
                names.push(n.to_string());
            }
            if node["kind"] == "job"
                && let Some(n) = node["name"].as_str()
            {
                names.push(n.to_string());
            }
            jobfilter = Some(names);
        }
        (t.to_string(), u.to_string(), b.to_string())
    } else {
        let (Some(u), Some(b)) = (v["url"].as_str(), v["branch"].as_str()) else {
            return Err(reply(
                StatusCode::BAD_REQUEST,
                "url and branch are required without nodeid",
            ));
        };
        let Some(tree) = cfg
            .trees
            .iter()
            .filter(|(_, t)| t.url == u)
            .map(|(name, _)| name.clone())
            .next_back()
            .filter(|name| cfg.build_configs.values().any(|bc| &bc.tree == name))
        else {
            return Err(reply(
                StatusCode::NOT_FOUND,
                format!("Tree not found for url {u}"),
            ));
        };
        (tree, u.to_string(), b.to_string())
    };
    if let Some(jf) = &jobfilter {
        for j in jf {
            if !cfg.jobs.contains_key(j.trim_end_matches('+')) {
                return Err(reply(StatusCode::NOT_FOUND, format!("Job {j} not found")));
            }
        }
    }
    if let Some(pf) = &platform_filter {
        for p in pf {
            if !cfg.platforms.contains_key(p) {
                return Err(reply(
                    StatusCode::NOT_FOUND,
                    format!("Platform {p} not found"),
                ));
            }
        }
    }
    let node = json!({
        "kind": "checkout",
        "name": "checkout",
        "path": ["checkout"],
        "data": {"kernel_revision": {"tree": tree, "branch": branch, "commit": commit, "url": url,
                                     "tip_of_branch": false}},
        "timeout": iso_in(Duration::from_secs(300 * 60)),
        "submitter": format!("user:{email}"),
        "treeid": trigger::treeid(&url, &branch, chrono::Utc::now()),
    });
    create_node(api, node, jobfilter, platform_filter).await
}

async fn jobretry(
    State(api): State<PipelineApi>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Reply, Reply> {
    let (api, headers) = (&api, &headers);
    api.authorize(headers, "testretry")?;
    let v = body_json(&body)?;
    let Some(nodeid) = v["nodeid"].as_str() else {
        return Err(reply(StatusCode::BAD_REQUEST, "nodeid is required"));
    };
    let extra = string_list(&v, "jobfilter", 8)?.unwrap_or_default();
    let node = fetch_node(api, nodeid).await?;
    if node["kind"] != "job" {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            "Only job nodes can be retried",
        ));
    }
    let ancestors = crate::ancestry::Ancestors::new(&api.ctx.api);
    let Some(kbuild) = ancestors.nearest(&node, &["kbuild"]).await else {
        return Err(reply(
            StatusCode::NOT_FOUND,
            "The job has no kbuild ancestor",
        ));
    };
    if kbuild["state"] != "done" && kbuild["state"] != "available" || kbuild["result"] != "pass" {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            "The kbuild of this job did not pass",
        ));
    }
    let name = node["name"].as_str().unwrap_or_default();
    // The next retry counter for this job under this build.
    let siblings = api
        .ctx
        .api
        .find(&[
            (
                "parent",
                kbuild["id"].as_str().unwrap_or_default().to_string(),
            ),
            ("name", name.to_string()),
        ])
        .await
        .map_err(|e| reply(StatusCode::BAD_GATEWAY, e.to_string()))?;
    let counter = siblings
        .iter()
        .filter_map(|n| n["retry_counter"].as_i64())
        .max()
        .unwrap_or(0)
        + 1;
    let mut data = kbuild.clone();
    let mut jobfilter = vec![kbuild["name"].clone(), name.into()];
    jobfilter.extend(extra.into_iter().map(Value::from));
    data["jobfilter"] = jobfilter.into();
    data["state"] = "available".into();
    data["retry_counter"] = counter.into();
    if let Some(p) = node["data"]["platform"].as_str() {
        data["platform_filter"] = json!([p]);
    }
    api.ctx
        .api
        .publish("retry", &data)
        .await
        .map_err(|e| reply(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(reply(StatusCode::OK, "OK"))
}

/// `POST /api/bisect` `{nodeid, good, bad?, repeat?}` (permission `checkout`): starts a
/// bisection of the failing node between `good` and `bad` (default: the node's commit).
async fn bisect(
    State(api): State<PipelineApi>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Reply, Reply> {
    api.authorize(&headers, "checkout")?;
    let v = body_json(&body)?;
    let text = |k: &str| v[k].as_str().map(String::from);
    let (Some(node_id), Some(good)) = (text("nodeid"), text("good")) else {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            "nodeid and good are required",
        ));
    };
    let repeat = match &v["repeat"] {
        Value::Null => crate::bisect::DEFAULT_REPEAT,
        r => r.as_u64().ok_or_else(|| {
            reply(
                StatusCode::BAD_REQUEST,
                "repeat: must be a number from 1 to 10",
            )
        })?,
    };
    if kernelci_model::ObjectId::parse(&node_id).is_err() {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            format!("{node_id:?} is not a node id (24 hexadecimal digits)"),
        ));
    }
    let req = crate::bisect::Request {
        node_id,
        good,
        bad: text("bad"),
        repeat,
        regression: None,
    };
    match crate::bisect::start(&api.ctx, &req).await {
        Ok(node) => Ok((
            StatusCode::OK,
            axum::Json(json!({"message": "OK", "node": node})),
        )),
        Err(crate::bisect::StartError::NotFound(id)) => {
            Err(reply(StatusCode::NOT_FOUND, format!("Node {id} not found")))
        }
        Err(crate::bisect::StartError::Invalid(msg)) => Err(reply(StatusCode::BAD_REQUEST, msg)),
        Err(e) => Err(reply(StatusCode::BAD_GATEWAY, e.to_string())),
    }
}

async fn patchset(
    State(api): State<PipelineApi>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Reply, Reply> {
    let (api, headers) = (&api, &headers);
    let claims = api.authorize(headers, "patchset")?;
    let email = email_claim(&claims)?;
    let v = body_json(&body)?;
    let Some(nodeid) = v["nodeid"].as_str() else {
        return Err(reply(StatusCode::BAD_REQUEST, "nodeid is required"));
    };
    let jobfilter = string_list(&v, "jobfilter", 8)?;
    let platform_filter = string_list(&v, "platformfilter", 8)?;
    let checkout = fetch_node(api, nodeid).await?;
    if checkout["kind"] != "checkout" {
        return Err(reply(StatusCode::BAD_REQUEST, "The node is not a checkout"));
    }
    let mut artifacts = serde_json::Map::new();
    if let Some(urls) = string_list(&v, "patchurl", 32)? {
        for (i, u) in urls.iter().enumerate() {
            let ok = url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
            if !ok {
                return Err(reply(
                    StatusCode::BAD_REQUEST,
                    format!("patchurl {u:?} is not an http(s) URL"),
                ));
            }
            artifacts.insert(format!("patch{i}"), u.clone().into());
        }
    } else if let Some(texts) = string_list(&v, "patch", 32)? {
        let safe_email: String = email
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
        for (i, text) in texts.iter().enumerate() {
            if text.is_empty() {
                return Err(reply(
                    StatusCode::BAD_REQUEST,
                    format!("patch {i} is empty"),
                ));
            }
            crate::patchset::check_patch(text.as_bytes())
                .map_err(|e| reply(StatusCode::BAD_REQUEST, format!("patch {i}: {e}")))?;
            let tmp = tempfile::NamedTempFile::new()
                .and_then(|f| std::fs::write(f.path(), text).map(|_| f))
                .map_err(|e| reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let dest = format!("patchset/{safe_email}/{nodeid}-{stamp}-{i}.patch");
            let url = api
                .ctx
                .storage
                .upload(tmp.path(), &dest)
                .await
                .map_err(|e| reply(StatusCode::BAD_GATEWAY, e.to_string()))?;
            artifacts.insert(format!("patch{i}"), url.into());
        }
    }
    if artifacts.is_empty() {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            "Give patchurl (a list of URLs) or patch (a list of patch texts)",
        ));
    }
    let mut node = checkout.clone();
    if let Some(obj) = node.as_object_mut() {
        for key in [
            "id",
            "created",
            "updated",
            "timeout",
            "result",
            "owner",
            "holdoff",
            "processed_by_kcidb_bridge",
            "jobfilter",
            "platform_filter",
        ] {
            obj.remove(key);
        }
    }
    if let Some(data) = node["data"].as_object_mut() {
        data.remove("schedule_key");
        data.remove("error_code");
        data.remove("error_msg");
    }
    let mut path = checkout["path"].as_array().cloned().unwrap_or_default();
    path.push("patchset".into());
    node["name"] = "patchset".into();
    node["path"] = path.into();
    node["group"] = "patchset".into();
    node["state"] = "running".into();
    node["parent"] = nodeid.into();
    node["artifacts"] = artifacts.into();
    node["timeout"] = iso_in(Duration::from_secs(300 * 60)).into();
    node["submitter"] = format!("user:{email}").into();
    let url = checkout["data"]["kernel_revision"]["url"]
        .as_str()
        .unwrap_or_default();
    let branch = checkout["data"]["kernel_revision"]["branch"]
        .as_str()
        .unwrap_or_default();
    node["treeid"] = trigger::treeid(url, branch, chrono::Utc::now()).into();
    create_node(api, node, jobfilter, platform_filter).await
}

/// `PUT /api/artifacts/{node_id}/{name}`: a job's artifact, with the job's own token (claim
/// `node` = `node_id`, permission `artifacts`); answers the artifact's public URL.
async fn upload_artifact(
    State(api): State<PipelineApi>,
    Path((node_id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Reply, Reply> {
    let claims = api.authorize(&headers, crate::remote_artifacts::PERMISSION)?;
    if claims["node"].as_str() != Some(node_id.as_str()) {
        api.metrics.auth_fail.fetch_add(1, Ordering::Relaxed);
        return Err(reply(
            StatusCode::FORBIDDEN,
            format!("The token is not for node {node_id}"),
        ));
    }
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match crate::remote_artifacts::receive(
        &api.ctx,
        &node_id,
        &name,
        declared,
        body,
        api.max_artifact,
    )
    .await
    {
        Ok(url) => Ok((
            StatusCode::OK,
            axum::Json(json!({"message": "OK", "url": url})),
        )),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(reply(status, e.to_string()))
        }
    }
}

/// A LAVA notify callback (checks in [`crate::lava_callback`]).
async fn callback(
    State(api): State<PipelineApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use crate::lava_callback::Accepted;
    api.metrics.callbacks.fetch_add(1, Ordering::Relaxed);
    let auth = headers.get("authorization").and_then(|h| h.to_str().ok());
    match api.callbacks.check(&api.ctx, &id, auth, &body).await {
        Ok(Accepted::Process(node, cb)) => {
            crate::lava_callback::spawn(api.ctx.clone(), api.callbacks.clone(), *node, *cb);
            reply(StatusCode::ACCEPTED, "OK").into_response()
        }
        Ok(Accepted::Duplicate) => reply(
            StatusCode::OK,
            format!("Already processed: the callback of node {id} was received before"),
        )
        .into_response(),
        Err(refusal) => {
            if refusal.status == 401 {
                api.metrics.auth_fail.fetch_add(1, Ordering::Relaxed);
            } else {
                api.metrics.callback_fail.fetch_add(1, Ordering::Relaxed);
            }
            let status =
                StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            reply(status, refusal.message).into_response()
        }
    }
}

async fn metrics(State(api): State<PipelineApi>) -> impl IntoResponse {
    let m = &api.metrics;
    let mut out = String::new();
    for (name, v) in [
        ("http_requests_total", m.requests.load(Ordering::Relaxed)),
        (
            "pipeline_api_requests_total",
            m.api_requests.load(Ordering::Relaxed),
        ),
        (
            "pipeline_api_auth_fail_total",
            m.auth_fail.load(Ordering::Relaxed),
        ),
        (
            "lava_callback_requests_total",
            m.callbacks.load(Ordering::Relaxed),
        ),
        (
            "lava_callback_refused_total",
            m.callback_fail.load(Ordering::Relaxed),
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {name}\n# TYPE {name} counter\n{name}{{kind=\"pipeline_callback\"}} {v}\n"
        ));
    }
    ([("content-type", "text/plain; version=0.0.4")], out)
}
