//! The root page, `/metrics`, and the key/value store.

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::CurrentUser;

/// `GET /`: the landing page (upstream's marker text "KernelCI API Server").
pub(crate) async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><html><head><title>KernelCI API Server</title></head><body>\
         <h1>KernelCI API Server</h1><p>kernelci-rs Maestro API. Nodes: \
         <a href=\"/latest/nodes\">/latest/nodes</a>, events: \
         <a href=\"/latest/events?limit=20\">/latest/events</a>.</p></body></html>",
    )
}

/// `GET /metrics`: Prometheus text lines, no HELP/TYPE (as upstream).
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    let mut out = format!(
        "http_requests_total{{instance=\"api\"}} {}\n",
        m.http_requests_total.load(Ordering::Relaxed)
    );
    for (name, counter) in [
        ("subscriptions_cleaned", &m.subscriptions_cleaned),
        ("nodes_purged", &m.nodes_purged),
        ("events_purged", &m.events_purged),
        ("telemetry_purged", &m.telemetry_purged),
    ] {
        let n = counter.load(Ordering::Relaxed);
        if n > 0 {
            out.push_str(&format!("{name}{{instance=\"api\"}} {n}\n"));
        }
    }
    if let Ok(seq) = state.store.last_event_seq().await {
        out.push_str(&format!(
            "events_last_sequence_id{{instance=\"api\"}} {seq}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], out)
}

/// `GET /kv/{namespace}/{key}`: the stored JSON string, or `null`.
pub(crate) async fn kv_get(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path((namespace, key)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let v = state.store.kv_get(&namespace, &key).await?;
    Ok(axum::Json(v.map(Value::from).unwrap_or(Value::Null)))
}

/// `POST /kv/{namespace}/{key}`: the body is a JSON string; an empty string or `null` deletes.
pub(crate) async fn kv_set(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path((namespace, key)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<Value>> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice::<Value>(&body).map_err(|e| {
            ApiError::invalid_field(
                &["body"],
                "json_invalid",
                &format!("JSON decode error: {e}"),
                Value::Null,
            )
        })?)
    };
    if let Some(v) = &value {
        crate::extract::reject_nul(v, &mut vec![kernelci_model::error::Loc::Key("body".into())])?;
    }
    match value {
        None | Some(Value::Null) => state.store.kv_delete(&namespace, &key).await?,
        Some(Value::String(s)) if s.is_empty() => state.store.kv_delete(&namespace, &key).await?,
        Some(Value::String(s)) => state.store.kv_set(&namespace, &key, &s).await?,
        Some(other) => {
            return Err(ApiError::invalid_field(
                &["body"],
                "string_type",
                "Input should be a valid string",
                other,
            ));
        }
    }
    Ok(axum::Json(Value::from("OK")))
}

/// `DELETE /kv/{namespace}/{key}`.
pub(crate) async fn kv_delete(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path((namespace, key)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    state.store.kv_delete(&namespace, &key).await?;
    Ok(axum::Json(Value::from(
        "Key-value pair deleted successfully",
    )))
}
