//! `GET /events`: the event history, oldest first, with upstream's query parameters.

use axum::Json;
use axum::extract::State;
use kernelci_model::filter::{Op, Value as FV};
use kernelci_model::{ObjectId, time};
use kernelci_store::{EventCondition, EventField, EventQuery, Page, StoredEvent};
use serde_json::{Map, Value};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryPairs;

/// Largest `limit` allowed with `recursive`.
const MAX_RECURSIVE: i64 = 1000;

fn cond(field: EventField, op: Op, value: FV) -> EventCondition {
    EventCondition { field, op, value }
}

fn python_int(key: &str, raw: &str) -> ApiResult<i64> {
    raw.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid literal for int() with base 10: '{raw}' ({key})"
        ))
    })
}

/// Translate the query string into an [`EventQuery`] (and whether nodes are attached).
fn parse_query(q: &QueryPairs) -> ApiResult<(EventQuery, bool)> {
    let mut conditions = Vec::new();
    if q.get("node_id").is_some() && q.get("data.id").is_some() {
        return Err(ApiError::bad_request(
            "Provide either node_id or data.id, not both",
        ));
    }
    if q.get("id").is_some() && q.get("ids").is_some() {
        return Err(ApiError::bad_request("Provide either id or ids, not both"));
    }
    let mut limit = None;
    let mut offset = 0;
    let mut recursive = false;
    for (key, raw) in q.without(&[]) {
        match key {
            "kind" | "state" | "result" | "op" | "name" | "group" | "owner" => {
                if !raw.is_empty() {
                    conditions.push(cond(
                        EventField::Data(vec![key.into()]),
                        Op::Eq,
                        FV::Str(raw.into()),
                    ));
                }
            }
            "channel" => {
                if !raw.is_empty() {
                    conditions.push(cond(EventField::Channel, Op::Eq, FV::Str(raw.into())));
                }
            }
            "path" => {
                kernelci_model::NodeFilter::parse([("path__re", raw)])
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                conditions.push(cond(
                    EventField::Data(vec!["path".into()]),
                    Op::Re,
                    FV::Str(raw.into()),
                ));
            }
            "node_id" | "data.id" => {
                conditions.push(cond(
                    EventField::Data(vec!["id".into()]),
                    Op::Eq,
                    FV::Str(raw.into()),
                ));
            }
            "id" => {
                let id =
                    ObjectId::parse(raw).map_err(|_| ApiError::bad_request("Invalid id format"))?;
                conditions.push(cond(EventField::Id, Op::Eq, FV::Str(id.to_string())));
            }
            "ids" => {
                let ids: Vec<&str> = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                if ids.is_empty() {
                    return Err(ApiError::bad_request("ids must contain at least one id"));
                }
                let ids = ids
                    .iter()
                    .map(|s| ObjectId::parse(s).map(|i| FV::Str(i.to_string())))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| ApiError::bad_request("Invalid ids format"))?;
                conditions.push(cond(EventField::Id, Op::In, FV::List(ids)));
            }
            "from" => {
                let t = time::parse_iso(raw).map_err(|_| {
                    ApiError::bad_request("Invalid 'from' parameter, must be an ISO 8601 datetime")
                })?;
                conditions.push(cond(EventField::Timestamp, Op::Gt, FV::Time(t)));
            }
            "limit" => limit = Some(python_int(key, raw)?.max(0)),
            "offset" => offset = python_int(key, raw)?.max(0),
            "recursive" => recursive = !raw.is_empty(),
            other => conditions.push(passthrough(other, raw)),
        }
    }
    if recursive && limit.is_none_or(|l| l > MAX_RECURSIVE) {
        return Err(ApiError::bad_request(
            "Recursive limit is too large, max is 1000",
        ));
    }
    Ok((
        EventQuery {
            conditions,
            page: Page { limit, offset },
        },
        recursive,
    ))
}

/// Any other parameter is an exact match on the stored document path.
fn passthrough(key: &str, raw: &str) -> EventCondition {
    let value = match raw.to_ascii_lowercase().as_str() {
        "true" => FV::Bool(true),
        "false" => FV::Bool(false),
        _ => FV::Str(raw.into()),
    };
    let field = match key.strip_prefix("data.") {
        Some(rest) if !rest.split('.').any(str::is_empty) => {
            EventField::Data(rest.split('.').map(str::to_string).collect())
        }
        _ => EventField::Missing,
    };
    cond(field, Op::Eq, value)
}

fn event_json(e: &StoredEvent) -> Value {
    let mut m = Map::new();
    m.insert("timestamp".into(), time::format(&e.timestamp).into());
    m.insert("sequence_id".into(), e.seq.into());
    m.insert("channel".into(), e.channel.clone().into());
    m.insert("owner".into(), e.owner.clone().into());
    m.insert("data".into(), e.data.clone());
    m.insert("id".into(), e.id.clone().into());
    Value::Object(m)
}

/// `GET /events`.
pub(crate) async fn list(
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<Value>> {
    let (q, recursive) = parse_query(&query)?;
    let events = state.store.query_events(&q).await?;
    let mut out = Vec::with_capacity(events.len());
    for e in &events {
        let mut v = event_json(e);
        if recursive {
            let node_id = e
                .data
                .get("id")
                .and_then(Value::as_str)
                .and_then(|s| ObjectId::parse(s).ok());
            if let Some(id) = node_id
                && let Some(node) = state.store.get_node(&id).await?
                && let Value::Object(m) = &mut v
            {
                m.insert(
                    "node".into(),
                    serde_json::to_value(node).map_err(|e| ApiError::Internal(e.to_string()))?,
                );
            }
        }
        out.push(v);
    }
    Ok(Json(Value::Array(out)))
}
