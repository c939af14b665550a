//! Pub/sub: subscriptions with a cursor in the database, long-poll `/listen` with keep-alive,
//! `/publish`, and the `/push` + `/pop` lists.
//!
//! Delivery: a listener gets the first event after its cursor on its channel (owner-filtered
//! unless promiscuous). Durable subscriptions (`subscriber_id`) acknowledge a delivered event
//! implicitly on their next `/listen`, so an event is redelivered if the consumer died before
//! polling again (at-least-once); plain subscriptions advance at delivery, as upstream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use kernelci_model::event::{BEEP, DEFAULT_EVENT_TYPE, python_json};
use kernelci_model::{CloudEvent, id::uuid4, time};
use kernelci_store::{EventDraft, StoreError, SubscribeRequest, Subscription};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AdminUser, CurrentUser, JsonBody, QueryPairs};
use crate::fanout::Lookup;

/// Listeners re-check the database at least this often, even without a wake-up.
const RECHECK: Duration = Duration::from_secs(1);

fn parse_sub_id(raw: &str) -> ApiResult<i64> {
    raw.parse().map_err(|_| {
        ApiError::invalid_field(
            &["path", "sub_id"],
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            Value::from(raw),
        )
    })
}

async fn owned_subscription(
    state: &AppState,
    id: i64,
    username: &str,
    action: &str,
) -> ApiResult<Subscription> {
    let sub = state.store.get_subscription(id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "Subscription id not found: 'Subscription {id} not found'"
        ))
    })?;
    if sub.username != username {
        return Err(ApiError::Detail(
            axum::http::StatusCode::FORBIDDEN,
            format!("{action}Subscription {id} not owned by {username}"),
        ));
    }
    Ok(sub)
}

/// `POST /subscribe/{channel}?promisc=&subscriber_id=`.
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(channel): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<Value>> {
    let req = SubscribeRequest {
        channel,
        username: user.username.clone(),
        promiscuous: query.bool("promisc")?.unwrap_or(false),
        subscriber_id: query
            .get("subscriber_id")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        now: time::now(),
    };
    let sub = state.store.subscribe(&req).await.map_err(|e| match e {
        StoreError::SubscriberOwned { id } => ApiError::Detail(
            axum::http::StatusCode::CONFLICT,
            format!("Subscriber id {id} is owned by another user"),
        ),
        e => e.into(),
    })?;
    Ok(Json(
        json!({"id": sub.id, "channel": sub.channel, "user": sub.username, "promiscuous": sub.promiscuous}),
    ))
}

fn message(channel: &str, envelope: &Value) -> Json<Value> {
    Json(
        json!({"type": "message", "pattern": null, "channel": channel, "data": python_json(envelope)}),
    )
}

fn beep(state: &AppState) -> Value {
    CloudEvent {
        id: uuid4(),
        source: state.config.event_source.clone(),
        event_type: DEFAULT_EVENT_TYPE.into(),
        time: time::now(),
        data: Value::from(BEEP),
        attributes: Map::new(),
        sequence_id: None,
    }
    .to_value()
}

/// `GET /listen/{sub_id}`: one event, or a `BEEP` keep-alive after the keep-alive period.
pub(crate) async fn listen(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(raw_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_sub_id(&raw_id)?;
    let prefix = format!("Error while listening to sub id {id}: ");
    // Read the unwritten cursor before the stored one: an entry leaves memory only after
    // its write, so one of the two reads always sees the newest cursor.
    let unwritten = state.cursors.get(id).unwrap_or(0);
    let sub = owned_subscription(&state, id, &user.username, &prefix).await?;
    let owner = (!sub.promiscuous).then_some(user.username.as_str());
    let mut cursor = sub.cursor.max(sub.pending.unwrap_or(0)).max(unwritten);
    let durable = sub.subscriber_id.is_some();
    let mut changed = state.fanout.subscribe();
    let deadline = Instant::now() + state.config.keep_alive;
    loop {
        changed.borrow_and_update();
        let found = match state.fanout.next(&sub.channel, cursor, owner) {
            Lookup::Found(ev) => Some(ev),
            Lookup::NothingUpTo(horizon) => {
                cursor = cursor.max(horizon);
                None
            }
            Lookup::Miss => {
                // Older than the in-memory window (a durable subscriber catching up).
                // Everything up to `horizon` is committed (ids become visible in commit
                // order), so the cursor may skip other channels' and owners' events.
                let horizon = state.store.last_event_seq().await?;
                match state.store.next_event(&sub.channel, cursor, owner).await? {
                    Some(ev) => Some(Arc::new(ev)),
                    None => {
                        cursor = cursor.max(horizon);
                        None
                    }
                }
            }
        };
        if let Some(ev) = found {
            if durable {
                // Acknowledged by the next poll (at-least-once), written at once.
                let now = time::now();
                state
                    .store
                    .advance_subscription(id, cursor, Some(ev.seq), now)
                    .await?;
            } else {
                state.cursors.advance(id, ev.seq);
            }
            let mut envelope = ev.envelope.clone();
            envelope.insert("_sequence_id".into(), ev.seq.into());
            return Ok(message(&sub.channel, &Value::Object(envelope)));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let _ = tokio::time::timeout(left.min(RECHECK), changed.changed()).await;
    }
    if durable {
        state
            .store
            .advance_subscription(id, cursor, None, time::now())
            .await?;
    } else {
        state.cursors.advance(id, cursor);
    }
    Ok(message(&sub.channel, &beep(&state)))
}

/// `POST /unsubscribe/{sub_id}`.
pub(crate) async fn unsubscribe(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(raw_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_sub_id(&raw_id)?;
    owned_subscription(&state, id, &user.username, "").await?;
    state.store.unsubscribe(id).await?;
    state.cursors.forget(id);
    Ok(Json(Value::Null))
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn opt_string(body: &Value, key: &str) -> ApiResult<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::invalid_field(
            &["body", key],
            "string_type",
            "Input should be a valid string",
            v.clone(),
        )),
    }
}

/// `POST /publish/{channel}`: store the event (owner = publisher) and wake listeners.
pub(crate) async fn publish(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(channel): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    if !body.is_object() {
        return Err(ApiError::invalid_field(
            &["body"],
            "dict_type",
            "Input should be a valid dictionary",
            body,
        ));
    }
    let data = body.get("data").cloned();
    if data.as_ref().is_some_and(is_falsy) {
        return Err(ApiError::invalid_field(
            &["body", "data"],
            "value_error",
            "Value error, None is not allowed as event payload",
            data.unwrap_or(Value::Null),
        ));
    }
    let mut attributes = Map::new();
    attributes.insert("owner".into(), user.username.clone().into());
    match body.get("attributes") {
        None | Some(Value::Null) => {}
        Some(Value::Object(extra)) => {
            for (k, v) in extra {
                if !["type", "source", "owner"].contains(&k.as_str()) {
                    attributes.insert(k.clone(), v.clone());
                }
            }
        }
        Some(v) => {
            return Err(ApiError::invalid_field(
                &["body", "attributes"],
                "dict_type",
                "Input should be a valid dictionary",
                v.clone(),
            ));
        }
    }
    let event = EventDraft {
        channel,
        owner: Some(user.username.clone()),
        cloud_event: CloudEvent {
            id: uuid4(),
            source: opt_string(&body, "source")?
                .unwrap_or_else(|| state.config.event_source.clone()),
            event_type: opt_string(&body, "type")?.unwrap_or_else(|| DEFAULT_EVENT_TYPE.into()),
            time: time::now(),
            data: data.unwrap_or(Value::Null),
            attributes,
            sequence_id: None,
        },
    };
    state.store.publish(&event).await?;
    Ok(Json(Value::Null))
}

/// `POST /push/{list}`: append a CloudEvent built from the body (`data` required; other keys
/// become attributes, `type`/`source` override the defaults).
pub(crate) async fn push(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(list): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::invalid_field(
            &["body"],
            "dict_type",
            "Input should be a valid dictionary",
            body,
        ));
    };
    let Some(data) = fields.remove("data") else {
        return Err(ApiError::invalid_field(
            &["body", "data"],
            "missing",
            "Field required",
            Value::Object(fields),
        ));
    };
    let take = |fields: &mut Map<String, Value>, k: &str| {
        fields
            .remove(k)
            .and_then(|v| v.as_str().map(str::to_string))
    };
    let event = CloudEvent {
        id: uuid4(),
        source: take(&mut fields, "source").unwrap_or_else(|| state.config.event_source.clone()),
        event_type: take(&mut fields, "type").unwrap_or_else(|| DEFAULT_EVENT_TYPE.into()),
        time: time::now(),
        data,
        attributes: fields,
        sequence_id: None,
    };
    state
        .store
        .push(&list, &event.to_value().to_string())
        .await?;
    Ok(Json(Value::Null))
}

/// `GET /pop/{list}`: wait until the list has an item, then return it (a CloudEvent object).
pub(crate) async fn pop(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(list): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut wake = state.store.wakeup().subscribe();
    loop {
        wake.borrow_and_update();
        if let Some(payload) = state.store.pop(&list).await? {
            let v = serde_json::from_str(&payload)
                .map_err(|e| ApiError::Internal(format!("list item: {e}")))?;
            return Ok(Json(v));
        }
        let _ = tokio::time::timeout(RECHECK, wake.changed()).await;
    }
}

/// `GET /stats/subscriptions` (admin).
pub(crate) async fn stats(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<Json<Value>> {
    let subs = state.store.list_subscriptions().await?;
    let items: Vec<Value> = subs
        .iter()
        .map(|s| {
            json!({"id": s.id, "channel": s.channel, "user": s.username, "promiscuous": s.promiscuous,
                   "created": time::format(&s.created), "last_poll": s.last_poll.as_ref().map(time::format)})
        })
        .collect();
    Ok(Json(Value::Array(items)))
}
