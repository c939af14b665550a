//! Telemetry endpoints (spec §2.8): pipeline roles post events about runtimes, jobs and
//! tests; anyone can list them, count results per group, and look for anomalies. The
//! aggregations run in memory over the matching events ([`kernelci_model::telemetry`]).

use axum::Json;
use axum::extract::State;
use kernelci_model::telemetry::{
    self, AnomalyRules, AnomalyScope, ErrorAnomaly, ResultAnomaly, StatsRow, TelemetryEvent,
};
use kernelci_model::{Timestamp, time};
use kernelci_store::{Page, TelemetryColumn, TelemetryFilter, TelemetryQuery};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{CurrentUser, JsonBody, QueryPairs};
use crate::paging::PageModel;

/// Default `threshold` of `/telemetry/anomalies`.
const DEFAULT_THRESHOLD: f64 = 0.5;
/// Default `min_total` of `/telemetry/anomalies`.
const DEFAULT_MIN_TOTAL: i64 = 3;
/// Query keys of `GET /telemetry` that are not exact-match filters.
const LIST_CONTROLS: [&str; 5] = ["limit", "offset", "since", "until", "is_infra_error"];
/// Exact-match filters of `/telemetry/stats` (besides `lab`, an alias of `runtime`).
const STATS_FILTERS: [TelemetryColumn; 8] = [
    TelemetryColumn::Kind,
    TelemetryColumn::Runtime,
    TelemetryColumn::DeviceType,
    TelemetryColumn::DeviceId,
    TelemetryColumn::JobName,
    TelemetryColumn::Tree,
    TelemetryColumn::Branch,
    TelemetryColumn::Arch,
];

/// `POST /telemetry`: validate every event, then store them all (or none).
pub(crate) async fn insert(
    State(state): State<AppState>,
    CurrentUser(_user): CurrentUser,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let events = parse_events(&body, time::now())?;
    let inserted = state.store.insert_telemetry(&events).await?;
    Ok(Json(json!({ "inserted": inserted })))
}

/// The posted array as events; the first invalid one refuses the whole batch.
fn parse_events(body: &Value, now: Timestamp) -> ApiResult<Vec<TelemetryEvent>> {
    let Value::Array(items) = body else {
        return Err(ApiError::invalid_field(
            &["body"],
            "list_type",
            "Input should be a valid list",
            body.clone(),
        ));
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("Events list cannot be empty"));
    }
    items
        .iter()
        .map(|item| {
            TelemetryEvent::from_json(item, now)
                .map_err(|e| ApiError::bad_request(format!("Invalid telemetry event: {e}")))
        })
        .collect()
}

/// `GET /telemetry`: a page `{items, total, limit, offset}`, oldest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<PageModel<Value>>> {
    let (limit, offset) = crate::paging::params(&query)?;
    let page = Page {
        limit: Some(limit),
        offset,
    };
    let (items, total) = match list_filter(&query)? {
        Some(filter) => {
            state
                .store
                .find_telemetry(&TelemetryQuery { filter, page })
                .await?
        }
        None => (Vec::new(), 0),
    };
    let items: Vec<Value> = items.iter().map(TelemetryEvent::to_json).collect();
    Ok(Json(PageModel {
        items,
        total,
        limit,
        offset,
    }))
}

/// The filter of `GET /telemetry`, or None when no stored event can match: a key that is
/// not a filterable field (Mongo matches nothing on a missing field), a `retry` that is not
/// an integer, or a value no stored string can equal.
fn list_filter(query: &QueryPairs) -> ApiResult<Option<TelemetryFilter>> {
    let mut filter = TelemetryFilter {
        is_infra_error: infra_error_param(query)?,
        since: time_param(query, "since")?,
        until: time_param(query, "until")?,
        ..TelemetryFilter::default()
    };
    for (key, value) in last_values(query, &LIST_CONTROLS) {
        match (TelemetryColumn::from_field(key), key) {
            (Some(column), _) if storable(value) => filter.equals.push((column, value.into())),
            (None, "retry") => match value.trim().parse() {
                Ok(retry) => filter.retry = Some(retry),
                Err(_) => return Ok(None),
            },
            _ => return Ok(None),
        }
    }
    Ok(Some(filter))
}

/// Each key once with its last value (upstream reads the query string as a dict).
fn last_values<'a>(query: &'a QueryPairs, skip: &'a [&str]) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (key, value) in query.without(skip) {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

/// Stored strings never hold NUL (validation refuses it, PostgreSQL cannot store it).
fn storable(value: &str) -> bool {
    !value.contains('\0')
}

/// `is_infra_error`: `true` or `false` (any case), 400 otherwise.
fn infra_error_param(query: &QueryPairs) -> ApiResult<Option<bool>> {
    match query.get("is_infra_error").map(str::to_ascii_lowercase) {
        None => Ok(None),
        Some(v) if v == "true" => Ok(Some(true)),
        Some(v) if v == "false" => Ok(Some(false)),
        Some(_) => Err(ApiError::bad_request(
            "Bad is_infra_error value, use 'true' or 'false'",
        )),
    }
}

/// `since`/`until`: an ISO 8601 date-time (400 with Python's message otherwise); empty is
/// the same as absent.
fn time_param(query: &QueryPairs, key: &str) -> ApiResult<Option<Timestamp>> {
    match query.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(raw) => time::parse_iso(raw)
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

/// `GET /telemetry/stats`: result counts per group, largest first.
pub(crate) async fn stats(
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<Value>> {
    let group_by =
        telemetry::parse_group_by(query.get("group_by")).map_err(ApiError::bad_request)?;
    let Some(filter) = stats_filter(&query)? else {
        return Ok(Json(Value::Array(Vec::new())));
    };
    let events = state.store.scan_telemetry(&filter).await?;
    let rows = telemetry::stats(&events, &group_by);
    Ok(Json(Value::Array(
        rows.iter().map(StatsRow::to_json).collect(),
    )))
}

/// The filter of `/telemetry/stats` (empty values are ignored; `lab` stands for `runtime`
/// and must agree with it), or None when no stored event can match.
fn stats_filter(query: &QueryPairs) -> ApiResult<Option<TelemetryFilter>> {
    let param = |key: &str| query.get(key).filter(|v| !v.is_empty());
    let runtime = param("runtime");
    let lab = param("lab");
    if let (Some(lab), Some(runtime)) = (lab, runtime)
        && lab != runtime
    {
        return Err(ApiError::bad_request(
            "'lab' and 'runtime' must match when both are provided",
        ));
    }
    let mut filter = TelemetryFilter {
        since: time_param(query, "since")?,
        until: time_param(query, "until")?,
        ..TelemetryFilter::default()
    };
    for column in STATS_FILTERS {
        let value = match column {
            TelemetryColumn::Runtime => runtime.or(lab),
            _ => param(column.name()),
        };
        if let Some(value) = value {
            if !storable(value) {
                return Ok(None);
            }
            filter.equals.push((column, value.into()));
        }
    }
    Ok(Some(filter))
}

/// `GET /telemetry/anomalies`: failing runtimes/devices and recurring errors in a window.
pub(crate) async fn anomalies(
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<Value>> {
    let threshold = threshold_param(&query)?;
    let min_total = query.int("min_total", 1)?.unwrap_or(DEFAULT_MIN_TOTAL);
    let scope = scope_param(&query)?;
    let window = query.get("window").unwrap_or(telemetry::DEFAULT_WINDOW);
    let since = time::now() - telemetry::parse_window(window).map_err(ApiError::bad_request)?;
    let mut kinds = scope.result_kinds().to_vec();
    kinds.extend(telemetry::ERROR_KINDS);
    let filter = TelemetryFilter {
        kinds,
        since: Some(since),
        ..TelemetryFilter::default()
    };
    let events = state.store.scan_telemetry(&filter).await?;
    let rules = AnomalyRules {
        threshold,
        min_total,
        scope,
    };
    let results: Vec<Value> = telemetry::result_anomalies(&events, &rules)
        .iter()
        .map(ResultAnomaly::to_json)
        .collect();
    let errors: Vec<Value> = telemetry::error_anomalies(&events, min_total)
        .iter()
        .map(ErrorAnomaly::to_json)
        .collect();
    Ok(Json(json!({
        "window": window,
        "threshold": threshold,
        "min_total": min_total,
        "scope": scope.as_str(),
        "since": time::format_aware(&since),
        "result_anomalies": results,
        "error_anomalies": errors,
    })))
}

/// `threshold`: a number in 0..1 (422 otherwise, as FastAPI's `Query(ge=0, le=1)`).
fn threshold_param(query: &QueryPairs) -> ApiResult<f64> {
    let Some(raw) = query.get("threshold") else {
        return Ok(DEFAULT_THRESHOLD);
    };
    let invalid = |kind: &str, msg: &str| {
        ApiError::invalid_field(&["query", "threshold"], kind, msg, Value::from(raw))
    };
    let x: f64 = raw.trim().parse().map_err(|_| {
        invalid(
            "float_parsing",
            "Input should be a valid number, unable to parse string as a number",
        )
    })?;
    if x.is_nan() || x < 0.0 {
        return Err(invalid(
            "greater_than_equal",
            "Input should be greater than or equal to 0",
        ));
    }
    if x > 1.0 {
        return Err(invalid(
            "less_than_equal",
            "Input should be less than or equal to 1",
        ));
    }
    Ok(x)
}

/// `scope`: `device_type` (default) or `device` (422 otherwise, as a FastAPI `Literal`).
fn scope_param(query: &QueryPairs) -> ApiResult<AnomalyScope> {
    let Some(raw) = query.get("scope") else {
        return Ok(AnomalyScope::DeviceType);
    };
    AnomalyScope::parse(raw).ok_or_else(|| {
        ApiError::invalid_field(
            &["query", "scope"],
            "literal_error",
            "Input should be 'device_type' or 'device'",
            Value::from(raw),
        )
    })
}
