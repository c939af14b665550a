//! The Maestro API role: an axum [`Router`] over a [`kernelci_store::Store`], wire-compatible
//! with upstream kernelci-api (paths, bodies, status codes, error shapes, JWTs).
//!
//! Routes are mounted under `/latest` and `/v0`; [`router`] can also serve them unprefixed
//! (when the role runs alone, as upstream does). Handlers live in one module per area.

pub mod auth;
pub mod cursors;
pub mod error;
mod events;
pub mod extract;
pub mod fanout;
mod html;
pub mod mail;
mod misc;
mod nodes;
mod paging;
mod pubsub;
pub mod retention;
mod telemetry;
pub mod user_cache;
mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use kernelci_model::{ObjectId, UserGroup, time};
use kernelci_store::Store;

pub use auth::JwtKeys;
pub use error::{ApiError, ApiResult};

/// Settings of the Maestro role (upstream's environment variables, with the same defaults).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Keep-alive period of `/listen` (`KEEP_ALIVE_PERIOD`, 45 s upstream).
    pub keep_alive: Duration,
    /// CloudEvent `source` (`CLOUD_EVENTS_SOURCE`).
    pub event_source: String,
    /// Base of invite links (`PUBLIC_BASE_URL`).
    pub public_base_url: Option<String>,
    /// Lifetime of login tokens in seconds (None: no `exp`).
    pub access_token_ttl: Option<i64>,
    /// Lifetime of invite tokens in seconds.
    pub invite_token_ttl: i64,
    /// How long nodes, events and telemetry are kept, and the purge pace.
    pub retention: retention::Retention,
    /// `/nodes/fast` gives up after this long (504).
    pub fast_query_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            keep_alive: Duration::from_secs(45),
            event_source: kernelci_model::event::DEFAULT_EVENT_SOURCE.into(),
            public_base_url: None,
            access_token_ttl: Some(315_360_000),
            invite_token_ttl: 604_800,
            retention: retention::Retention::default(),
            fast_query_timeout: Duration::from_secs(15),
        }
    }
}

/// Counters exposed on `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests served.
    pub http_requests_total: AtomicU64,
    /// Stale subscriptions removed.
    pub subscriptions_cleaned: AtomicU64,
    /// Nodes purged.
    pub nodes_purged: AtomicU64,
    /// Events purged.
    pub events_purged: AtomicU64,
    /// Telemetry events purged.
    pub telemetry_purged: AtomicU64,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Token keys.
    pub keys: JwtKeys,
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// Outgoing mail.
    pub mailer: Arc<dyn mail::Mailer>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The in-memory follower of the events table that `/listen` reads from.
    pub fanout: Arc<fanout::Fanout>,
    /// Recently authenticated users.
    pub users: Arc<user_cache::UserCache>,
    /// Cursors of plain subscriptions not yet written to the store.
    pub cursors: Arc<cursors::Cursors>,
}

impl AppState {
    /// State over `store`; starts the event follower (needs a Tokio runtime).
    pub async fn new(
        store: Arc<dyn Store>,
        keys: JwtKeys,
        config: ApiConfig,
        mailer: Arc<dyn mail::Mailer>,
    ) -> kernelci_store::Result<AppState> {
        let fanout = fanout::Fanout::start(store.clone()).await?;
        let cursors = Arc::new(cursors::Cursors::default());
        tokio::spawn(cursors::flush_forever(
            Arc::downgrade(&cursors),
            store.clone(),
        ));
        Ok(AppState {
            store,
            keys,
            config: Arc::new(config),
            mailer,
            metrics: Arc::new(Metrics::default()),
            fanout,
            users: Arc::default(),
            cursors,
        })
    }
}

/// The group that may edit any node; created at start-up like upstream.
pub async fn ensure_builtin_groups(store: &dyn Store) -> kernelci_store::Result<()> {
    let name = kernelci_model::user::EDIT_ANY_GROUP;
    if store.get_group_by_name(name).await?.is_none() {
        let group = UserGroup {
            id: ObjectId::generate(),
            name: name.into(),
        };
        match store.insert_group(&group).await {
            Ok(()) | Err(kernelci_store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(misc::index))
        .route("/metrics", get(misc::metrics))
        .route("/viewer", get(html::viewer))
        .route("/dashboard", get(html::dashboard))
        .route("/manage", get(html::manage))
        .route("/analytics", get(html::analytics))
        .route("/stats", get(html::stats))
        .route("/icons/{name}", get(html::icon))
        .route("/static/css/{file}", get(html::css))
        .route("/static/js/{file}", get(html::js))
        .route("/node", post(nodes::create))
        .route(
            "/node/{id}",
            get(nodes::get_one).put(nodes::replace).patch(nodes::patch),
        )
        .route("/nodes", get(nodes::list))
        .route("/nodes/fast", get(nodes::list_fast))
        .route("/nodes/{id}", put(nodes::put_hierarchy))
        .route("/count", get(nodes::count))
        .route("/batch/nodeset", put(nodes::batch_nodeset))
        .route("/events", get(events::list))
        .route("/subscribe/{channel}", post(pubsub::subscribe))
        .route("/listen/{sub_id}", get(pubsub::listen))
        .route("/unsubscribe/{sub_id}", post(pubsub::unsubscribe))
        .route("/publish/{channel}", post(pubsub::publish))
        .route("/push/{list}", post(pubsub::push))
        .route("/pop/{list}", get(pubsub::pop))
        .route("/stats/subscriptions", get(pubsub::stats))
        .route("/telemetry", get(telemetry::list).post(telemetry::insert))
        .route("/telemetry/stats", get(telemetry::stats))
        .route("/telemetry/anomalies", get(telemetry::anomalies))
        .route(
            "/kv/{namespace}/{key}",
            get(misc::kv_get).post(misc::kv_set).delete(misc::kv_delete),
        )
        .merge(users::routes())
}

/// The Maestro router under `/latest` and `/v0` (and unprefixed when `unprefixed`), with the
/// version check, trailing-slash redirects and `{"detail":"Not Found"}` for unknown paths.
pub fn router(state: AppState, unprefixed: bool) -> Router {
    let mut app = Router::new()
        .nest("/latest", routes())
        .nest("/v0", routes());
    if unprefixed {
        app = app.merge(routes());
    }
    app.fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Count requests; refuse URLs carrying NUL characters (`%00`), which no backend may store.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    state
        .metrics
        .http_requests_total
        .fetch_add(1, Ordering::Relaxed);
    if req.uri().to_string().contains("%00") {
        return ApiError::bad_request("NUL characters (%00) are not allowed in URLs")
            .into_response();
    }
    next.run(req).await
}

/// Starlette's JSON 405.
async fn method_not_allowed() -> Response {
    ApiError::Detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed".into()).into_response()
}

/// `/vN/...` other than v0 is a 400 in plain text; a trailing slash redirects (307) to the
/// path without it; anything else is upstream's JSON 404.
async fn fallback(uri: Uri) -> Response {
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/v") {
        let version: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let after = &rest[version.len()..];
        if !version.is_empty() && (after.is_empty() || after.starts_with('/')) && version != "0" {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("Unsupported API version: v{version}"),
            )
                .into_response();
        }
    }
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let target = match uri.query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        return Redirect::temporary(&target).into_response();
    }
    ApiError::not_found("Not Found").into_response()
}

/// Periodic upkeep: drop subscriptions not polled for 15 minutes and purge old events,
/// telemetry and nodes ([`retention`]: bounded batches with pauses, so the API keeps
/// answering). Runs until the task is dropped.
pub async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(15 * 60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        housekeeping_once(&state).await;
    }
}

/// One round of [`housekeeping`]; failures are logged and retried next round.
pub async fn housekeeping_once(state: &AppState) {
    let now = time::now();
    let stale = now - chrono::TimeDelta::minutes(15);
    match state.store.drop_stale_subscriptions(stale).await {
        Ok(n) => {
            state
                .metrics
                .subscriptions_cleaned
                .fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => tracing::warn!("subscription cleanup failed: {e}"),
    }
    for kind in retention::Kind::ALL {
        let name = kind.name();
        match retention::purge(&*state.store, kind, &state.config.retention, now, false).await {
            Ok(done) => {
                let counter = match kind {
                    retention::Kind::Nodes => &state.metrics.nodes_purged,
                    retention::Kind::Events => &state.metrics.events_purged,
                    retention::Kind::Telemetry => &state.metrics.telemetry_purged,
                };
                counter.fetch_add(done.removed, Ordering::Relaxed);
                if done.removed > 0 {
                    tracing::info!(
                        "retention: {} {name} purged in {} batches",
                        done.removed,
                        done.batches
                    );
                }
            }
            Err(e) => tracing::warn!("{name} purge failed: {e}"),
        }
    }
}
