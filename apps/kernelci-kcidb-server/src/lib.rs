//! The KCIDB role: the submission receiver (upstream's kcidb-restd-rs, specs/kcidb.md §1)
//! and the ingester into SQLite or PostgreSQL (§2, §4).
//!
//! Routes ([`kcidb_router`]): `GET /` (a short page), `POST /submit`, `GET /status?id=`,
//! `GET /authtest` (JWT), `GET /health`, `GET /metrics` (no auth), and the notification
//! subscriptions `GET`/`POST /subscriptions`, `DELETE /subscriptions/{id}` (admin token;
//! see [`notify`]). Every JSON reply has
//! upstream's fields first, `{"id", "status", "message"}`, then ours; errors have
//! `"id": "0", "status": "error"`. Unlike upstream (which sends `text/plain`), replies are
//! `application/json`.
//!
//! Differences from upstream, each fixing a gap of §1.9:
//! * authentication runs before the body is read;
//! * the body is streamed into `submission-<id>.json.temp` with a size limit
//!   ([`KcidbConfig::max_body`], 413 beyond it, checked on `Content-Length` first);
//! * the file is validated as it is read back ([`check_spooled`]): documents up to 16 MiB
//!   in memory ([`kernelci_kcidb::load`]), larger v5 ones one object at a time
//!   ([`kernelci_kcidb::stream`]), so a 500 MiB submission needs about the memory of its
//!   largest object, not 500 MiB. An invalid one gets 400 with every problem (`stage`,
//!   `pointer`, `reason`; a streamed one at most 1,000) and its temp file is removed;
//! * origins are enforced: every object's `origin` and the `origin:` prefix of its `id`
//!   must equal the token's `origin`, else 403 listing the offending objects (pointers into
//!   the v5.3 form of the document). A token with the permission `kcidb:admin` (claim
//!   `"permissions": ["kcidb:admin"]`) may submit for any origin;
//! * the file is `fsync`ed before the rename to `submission-<id>.json` and the directory
//!   after it, all before the 200 reply, whose `id` is the receipt for `/status`;
//! * `processed` means the file's batch is committed in the database, not merely archived;
//! * `/status` needs a valid token but, as upstream, any origin's: the receipt id is an
//!   unguessable capability (32 random alphanumerics, about 190 bits) and the status tells
//!   nothing about the content beyond a load failure's reason. Spool files do not record the
//!   submitter, so limiting it would need a second file per submission; not worth it.

pub mod auth;
pub use kernelci_kcidb::db;
pub mod ingest;
pub mod logfetch;
pub mod notify;
pub mod regress;
pub mod spool;
pub mod triage;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use http_body_util::BodyExt;
use kernelci_kcidb::stream::{AnyObject, StreamError, StreamOptions};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

pub use auth::{ADMIN_PERMISSION, Submitter, TokenError, Verifier};
pub use db::{Counts, DbError, KcidbDb};
pub use ingest::IngestLimits;
pub use spool::{FileState, Spool};
pub use triage::{Report as TriageReport, TriageConfig, triage_once};

/// The default body limit (bytes).
pub const DEFAULT_MAX_BODY: u64 = 256 << 20;

/// Configuration of the receiver.
#[derive(Debug, Clone)]
pub struct KcidbConfig {
    /// The spool directory (created with `archive/` and `failed/`).
    pub spool_dir: PathBuf,
    /// Token verification; `None` disables authentication (every request is the origin
    /// `none` with the admin permission). Only ever `None` when explicitly configured.
    pub verifier: Option<Verifier>,
    /// The largest accepted body, in bytes.
    pub max_body: u64,
}

/// Counters (in memory, reset on restart).
#[derive(Debug, Default)]
pub struct Metrics {
    submissions_total: AtomicU64,
    submission_size_total: AtomicU64,
    errors_total: AtomicU64,
    system_errors_total: AtomicU64,
    user_errors_total: AtomicU64,
    by_origin: Mutex<BTreeMap<String, u64>>,
    /// Files archived by the ingester.
    pub ingested_files: AtomicU64,
    /// Files moved to `failed/` by the ingester.
    pub failed_files: AtomicU64,
    /// Ingest rounds that failed on the database.
    pub ingest_errors: AtomicU64,
    rows: Mutex<Counts>,
    /// Triage counters.
    pub triage: triage::TriageMetrics,
}

impl Metrics {
    fn add_rows(&self, c: Counts) {
        if let Ok(mut rows) = self.rows.lock() {
            rows.checkouts += c.checkouts;
            rows.builds += c.builds;
            rows.tests += c.tests;
            rows.issues += c.issues;
            rows.incidents += c.incidents;
        }
    }
}

struct Inner {
    spool: Spool,
    verifier: Option<Verifier>,
    max_body: u64,
    metrics: Metrics,
    started: Instant,
    wake: Notify,
    stream: StreamOptions,
    /// The database, for the subscription routes ([`KcidbState::enable_subscriptions`]).
    db: std::sync::OnceLock<KcidbDb>,
}

/// The state shared by the handlers and the ingester.
#[derive(Clone)]
pub struct KcidbState {
    inner: Arc<Inner>,
}

impl KcidbState {
    /// Opens the spool directory.
    pub fn new(config: KcidbConfig) -> std::io::Result<KcidbState> {
        KcidbState::with_stream_options(config, StreamOptions::default())
    }

    /// [`KcidbState::new`] with how submissions are read: documents above
    /// `stream.in_memory_up_to` bytes are validated (and ingested) one object at a time.
    pub fn with_stream_options(
        config: KcidbConfig,
        stream: StreamOptions,
    ) -> std::io::Result<KcidbState> {
        let spool = Spool::open(&config.spool_dir)?;
        Ok(KcidbState {
            inner: Arc::new(Inner {
                spool,
                verifier: config.verifier,
                max_body: config.max_body,
                metrics: Metrics::default(),
                started: Instant::now(),
                wake: Notify::new(),
                stream,
                db: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The spool.
    pub fn spool(&self) -> &Spool {
        &self.inner.spool
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Serves the notification subscriptions (`/subscriptions`) from `db`, creating their
    /// tables if missing; until then those routes answer 503.
    pub async fn enable_subscriptions(&self, db: KcidbDb) -> Result<(), DbError> {
        notify::store::migrate(&db).await.map_err(DbError::Sql)?;
        let _ = self.inner.db.set(db);
        Ok(())
    }

    /// The database the subscription routes use, once enabled.
    pub fn db(&self) -> Option<&KcidbDb> {
        self.inner.db.get()
    }

    /// Starts the ingester task into `db`.
    pub fn spawn_ingester(&self, db: KcidbDb, limits: IngestLimits) -> tokio::task::JoinHandle<()> {
        tokio::spawn(ingest::run(self.clone(), db, limits))
    }

    /// One ingester round (for tests and tools).
    pub async fn ingest_round(
        &self,
        db: &KcidbDb,
        limits: IngestLimits,
    ) -> Result<ingest::Round, DbError> {
        ingest::ingest_round(self, db, limits).await
    }
}

/// The KCIDB routes: at the root when `unprefixed` (`kernelci kcidb serve`), else under
/// `/kcidb` (`kernelci up`).
pub fn kcidb_router(state: KcidbState, unprefixed: bool) -> Router {
    let routes = Router::new()
        .route("/", get(root))
        .route("/submit", post(submit))
        .route("/status", get(status))
        .route("/authtest", get(authtest))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route(
            "/subscriptions",
            get(notify::api::list).post(notify::api::create),
        )
        .route("/subscriptions/{id}", delete(notify::api::remove))
        // /submit streams and limits its body itself.
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    if unprefixed {
        routes
    } else {
        Router::new().nest("/kcidb", routes)
    }
}

fn reply(
    code: StatusCode,
    id: &str,
    status: &str,
    message: &str,
    extra: Map<String, Value>,
) -> Response {
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.insert("status".into(), json!(status));
    body.insert("message".into(), json!(message));
    body.extend(extra);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        Value::Object(body).to_string(),
    )
        .into_response()
}

fn error(code: StatusCode, message: &str) -> Response {
    reply(code, "0", "error", message, Map::new())
}

fn authenticate(state: &KcidbState, headers: &HeaderMap) -> Result<Submitter, Box<Response>> {
    let Some(verifier) = &state.inner.verifier else {
        return Ok(Submitter {
            origin: "none".into(),
            admin: true,
        });
    };
    verifier
        .verify_header(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
        .map_err(|e| Box::new(error(StatusCode::UNAUTHORIZED, &e.to_string())))
}

async fn root() -> Html<&'static str> {
    Html(
        "<!doctype html><html><head><title>KCIDB</title></head><body><h1>KCIDB submission \
         service</h1><p>POST /submit with a KCIDB I/O document and a JWT; GET /status?id= \
         for its state.</p></body></html>",
    )
}

async fn health() -> &'static str {
    "OK"
}

async fn authtest(State(state): State<KcidbState>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers) {
        Ok(who) => {
            let mut extra = Map::new();
            extra.insert("origin".into(), json!(who.origin));
            extra.insert("admin".into(), json!(who.admin));
            reply(
                StatusCode::OK,
                "0",
                "ok",
                "Authentication successful",
                extra,
            )
        }
        Err(r) => *r,
    }
}

async fn status(
    State(state): State<KcidbState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let metrics = &state.inner.metrics;
    let Some(id) = query.get("id") else {
        metrics.user_errors_total.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::BAD_REQUEST, "missing query parameter id");
    };
    if let Err(r) = authenticate(&state, &headers) {
        return *r;
    }
    if id.is_empty() {
        metrics.user_errors_total.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::BAD_REQUEST, "Empty id");
    }
    if !spool::valid_id(id) {
        metrics.user_errors_total.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::BAD_REQUEST, "Invalid id");
    }
    let file_state = state.spool().state(id);
    let mut extra = Map::new();
    let code = match file_state {
        FileState::NotFound => {
            metrics.user_errors_total.fetch_add(1, Ordering::Relaxed);
            StatusCode::NOT_FOUND
        }
        FileState::Failed => {
            if let Some(reason) = state.spool().failure_reason(id) {
                extra.insert("reason".into(), json!(reason.trim_end()));
            }
            StatusCode::OK
        }
        _ => StatusCode::OK,
    };
    reply(code, id, file_state.as_str(), file_state.message(), extra)
}

/// Removes a temp file (best effort) and returns `response`.
async fn discard(path: &std::path::Path, response: Response) -> Response {
    let _ = tokio::fs::remove_file(path).await;
    response
}

async fn submit(State(state): State<KcidbState>, headers: HeaderMap, body: Body) -> Response {
    let metrics = &state.inner.metrics;
    let who = match authenticate(&state, &headers) {
        Ok(w) => w,
        Err(r) => {
            metrics.errors_total.fetch_add(1, Ordering::Relaxed);
            return *r;
        }
    };
    let max = state.inner.max_body;
    let too_large = || {
        metrics.user_errors_total.fetch_add(1, Ordering::Relaxed);
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("Submission larger than the limit of {max} bytes"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max
    {
        return too_large();
    }
    let system_error = |what: String| {
        tracing::error!("kcidb: {what}");
        metrics.system_errors_total.fetch_add(1, Ordering::Relaxed);
        error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    };
    let id = match spool::new_id() {
        Ok(id) => id,
        Err(e) => return system_error(format!("no random id: {e}")),
    };
    let temp = state.spool().temp_path(&id);
    let mut file = match tokio::fs::File::create(&temp).await {
        Ok(f) => f,
        Err(e) => return system_error(format!("cannot create {}: {e}", temp.display())),
    };
    // Stream to the temp file; the validator then reads it back one object at a time.
    let mut size: u64 = 0;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                metrics.user_errors_total.fetch_add(1, Ordering::Relaxed);
                let r = error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the body: {e}"),
                );
                return discard(&temp, r).await;
            }
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        size += chunk.len() as u64;
        if size > max {
            drop(file);
            return discard(&temp, too_large()).await;
        }
        if let Err(e) = file.write_all(&chunk).await {
            let r = system_error(format!("cannot write {}: {e}", temp.display()));
            return discard(&temp, r).await;
        }
    }
    if let Err(e) = file.sync_all().await {
        let r = system_error(format!("cannot sync {}: {e}", temp.display()));
        return discard(&temp, r).await;
    }
    drop(file);
    let origin = (!who.admin).then(|| who.origin.clone());
    let options = state.inner.stream;
    let path = temp.clone();
    let verdict =
        tokio::task::spawn_blocking(move || check_spooled(&path, &options, origin.as_deref()))
            .await;
    let (objects, offending) = match verdict {
        Err(e) => {
            let r = system_error(format!("validation task failed: {e}"));
            return discard(&temp, r).await;
        }
        Ok(Err(StreamError::Rejected(rejection))) => {
            metrics.user_errors_total.fetch_add(1, Ordering::Relaxed);
            return discard(&temp, invalid(&rejection)).await;
        }
        Ok(Err(e)) => {
            let r = system_error(format!("cannot read {}: {e}", temp.display()));
            return discard(&temp, r).await;
        }
        Ok(Ok(v)) => v,
    };
    if offending.count > 0 {
        metrics.user_errors_total.fetch_add(1, Ordering::Relaxed);
        let mut extra = Map::new();
        extra.insert("origin".into(), json!(who.origin));
        extra.insert("objects".into(), json!(offending.pointers));
        let r = reply(
            StatusCode::FORBIDDEN,
            "0",
            "error",
            &format!(
                "{} object(s) do not belong to the token's origin {:?}",
                offending.count, who.origin
            ),
            extra,
        );
        return discard(&temp, r).await;
    }
    let ready = state.spool().ready_path(&id);
    if let Err(e) = tokio::fs::rename(&temp, &ready).await {
        let r = system_error(format!("cannot rename {}: {e}", temp.display()));
        return discard(&temp, r).await;
    }
    let dir = state.spool().dir().to_path_buf();
    if let Err(e) = tokio::task::spawn_blocking(move || spool::sync_dir(&dir))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    {
        // The file is there; only its durability across a power cut is in doubt.
        tracing::warn!("kcidb: cannot sync the spool directory: {e}");
    }
    metrics.submissions_total.fetch_add(1, Ordering::Relaxed);
    metrics
        .submission_size_total
        .fetch_add(size, Ordering::Relaxed);
    if let Ok(mut by_origin) = metrics.by_origin.lock() {
        *by_origin.entry(normalize_label(&who.origin)).or_insert(0) += 1;
    }
    state.inner.wake.notify_one();
    let mut extra = Map::new();
    extra.insert("size".into(), json!(size));
    extra.insert("objects".into(), json!(objects));
    extra.insert("origin".into(), json!(who.origin));
    reply(
        StatusCode::OK,
        &id,
        "ok",
        &format!("Received submission {id} with size {size} bytes"),
        extra,
    )
}

/// 400 with every problem.
fn invalid(rejection: &kernelci_kcidb::Rejection) -> Response {
    let stage = rejection.stage().as_str();
    let problems: Vec<Value> = if rejection.problems().is_empty() {
        vec![json!({"stage": stage, "pointer": "", "reason": rejection.to_string()})]
    } else {
        rejection
            .problems()
            .iter()
            .map(|p| json!({"stage": stage, "pointer": p.pointer, "reason": p.reason.to_string()}))
            .collect()
    };
    let mut extra = Map::new();
    extra.insert("stage".into(), json!(stage));
    extra.insert("problems".into(), Value::Array(problems));
    reply(
        StatusCode::BAD_REQUEST,
        "0",
        "error",
        &format!("Invalid submission: {rejection}"),
        extra,
    )
}

/// Objects whose `origin` or id prefix is not the token's origin.
#[derive(Debug, Default)]
pub struct ForeignObjects {
    /// How many.
    pub count: usize,
    /// The first [`MAX_LISTED_FOREIGN`] of them, as pointers into the v5.3 document
    /// (`/builds/3`).
    pub pointers: Vec<String>,
}

/// Foreign objects listed in a 403 reply (the count covers them all).
pub const MAX_LISTED_FOREIGN: usize = 1000;

impl ForeignObjects {
    /// Records `object` (at `index` of its list) if it is foreign to `origin`.
    pub fn check(&mut self, origin: &str, index: usize, object: &AnyObject) {
        let id_prefix = object.id().split_once(':').map(|(p, _)| p);
        if object.origin() != origin || id_prefix != Some(origin) {
            self.count += 1;
            if self.pointers.len() < MAX_LISTED_FOREIGN {
                self.pointers.push(format!("/{}/{index}", object.list()));
            }
        }
    }
}

/// Validates a spooled file one object at a time ([`kernelci_kcidb::stream`]); with an
/// `origin`, also collects the objects foreign to it. Returns the object count.
pub fn check_spooled(
    path: &std::path::Path,
    options: &StreamOptions,
    origin: Option<&str>,
) -> Result<(u64, ForeignObjects), StreamError<std::convert::Infallible>> {
    let file = std::fs::File::open(path)?;
    let mut foreign = ForeignObjects::default();
    let objects = kernelci_kcidb::stream::read_objects(file, options, |index, object| {
        if let Some(origin) = origin {
            foreign.check(origin, index, &object);
        }
        Ok(())
    })?;
    Ok((objects, foreign))
}

/// Upstream's label normalization: lower case, runs of non-alphanumerics to one `_`,
/// trimmed.
fn normalize_label(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

async fn metrics(State(state): State<KcidbState>) -> Response {
    let m = &state.inner.metrics;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "kcidb_submissions_total",
        "counter",
        "Submissions accepted",
        get(&m.submissions_total),
    );
    metric(
        "kcidb_submission_size_total",
        "counter",
        "Bytes of accepted submissions",
        get(&m.submission_size_total),
    );
    metric(
        "kcidb_errors_total",
        "counter",
        "Authentication failures on /submit",
        get(&m.errors_total),
    );
    metric(
        "kcidb_system_errors_total",
        "counter",
        "Server-side errors",
        get(&m.system_errors_total),
    );
    metric(
        "kcidb_user_errors_total",
        "counter",
        "Client errors",
        get(&m.user_errors_total),
    );
    let spool = state.spool().clone();
    let depth = tokio::task::spawn_blocking(move || spool.queue_depth())
        .await
        .unwrap_or(0);
    metric(
        "kcidb_json_files",
        "gauge",
        "Submissions waiting in the spool",
        depth as u64,
    );
    metric(
        "kcidb_ingested_files_total",
        "counter",
        "Files loaded and archived",
        get(&m.ingested_files),
    );
    metric(
        "kcidb_failed_files_total",
        "counter",
        "Files moved to failed/",
        get(&m.failed_files),
    );
    metric(
        "kcidb_ingest_errors_total",
        "counter",
        "Ingest rounds failed on the database",
        get(&m.ingest_errors),
    );
    metric(
        "kcidb_uptime_seconds",
        "gauge",
        "Seconds since start",
        state.inner.started.elapsed().as_secs(),
    );
    text.push_str("# HELP kcidb_submissions_by_origin Submissions accepted per token origin\n# TYPE kcidb_submissions_by_origin counter\n");
    if let Ok(by_origin) = m.by_origin.lock() {
        for (origin, n) in by_origin.iter() {
            text.push_str(&format!(
                "kcidb_submissions_by_origin{{origin=\"{origin}\"}} {n}\n"
            ));
        }
    }
    text.push_str("# HELP kcidb_rows_written_total Rows written by the ingester per table\n# TYPE kcidb_rows_written_total counter\n");
    let rows = m.rows.lock().map(|r| *r).unwrap_or_default();
    for (table, n) in [
        ("checkouts", rows.checkouts),
        ("builds", rows.builds),
        ("tests", rows.tests),
        ("issues", rows.issues),
        ("incidents", rows.incidents),
    ] {
        text.push_str(&format!(
            "kcidb_rows_written_total{{table=\"{table}\"}} {n}\n"
        ));
    }
    text.push_str(&m.triage.render());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(normalize_label("__Red Hat!!x_"), "red_hat_x");
    }
}
