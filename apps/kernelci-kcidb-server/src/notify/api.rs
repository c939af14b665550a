//! The subscription routes of the KCIDB role (a token with `kcidb:admin` needed; 401
//! without a valid token, 403 without the permission):
//!
//! * `GET /subscriptions`: every subscription, oldest first (a JSON array);
//! * `POST /subscriptions` `{"tree_name": "mainline", "branch": "master", "origin":
//!   "maestro", "email": "a@b.org"}` or `{..., "webhook": "https://...", "format":
//!   "json"|"discord"}` (`tree_name` and `branch` default to `*`, any; `origin` optional;
//!   `format` defaults to `json`): 201 with the subscription, 400 naming a bad field;
//! * `DELETE /subscriptions/{id}`: 200 `{"id", "status": "ok", "message"}`, 404 unknown.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::store::{self, Subscription, Target, WebhookFormat};
use crate::{KcidbState, error};

/// The largest subscription body.
const MAX_BODY: usize = 64 * 1024;

fn json_reply(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// The database, after checking the caller is an administrator.
fn admin(
    state: &KcidbState,
    headers: &HeaderMap,
) -> Result<kernelci_kcidb::db::KcidbDb, Box<Response>> {
    let who = crate::authenticate(state, headers)?;
    if !who.admin {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            &format!(
                "subscriptions need a token with the {} permission (this one is for origin {:?})",
                crate::ADMIN_PERMISSION,
                who.origin
            ),
        )));
    }
    state.db().cloned().ok_or_else(|| {
        Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "subscriptions are not available: the role has no database",
        ))
    })
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("notify: {e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

/// `GET /subscriptions`.
pub async fn list(State(state): State<KcidbState>, headers: HeaderMap) -> Response {
    let db = match admin(&state, &headers) {
        Ok(db) => db,
        Err(r) => return *r,
    };
    match store::subscriptions(&db).await {
        Ok(subs) => json_reply(StatusCode::OK, &json!(subs)),
        Err(e) => internal(e),
    }
}

/// `DELETE /subscriptions/{id}`.
pub async fn remove(
    State(state): State<KcidbState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let db = match admin(&state, &headers) {
        Ok(db) => db,
        Err(r) => return *r,
    };
    match store::delete(&db, &id).await {
        Ok(true) => json_reply(
            StatusCode::OK,
            &json!({"id": id, "status": "ok", "message": format!("Subscription {id} deleted")}),
        ),
        Ok(false) => error(StatusCode::NOT_FOUND, &format!("no subscription {id:?}")),
        Err(e) => internal(e),
    }
}

/// `POST /subscriptions`.
pub async fn create(State(state): State<KcidbState>, headers: HeaderMap, body: Body) -> Response {
    let db = match admin(&state, &headers) {
        Ok(db) => db,
        Err(r) => return *r,
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is over {MAX_BODY} bytes"),
            );
        }
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    let sub = match parse(&value) {
        Ok(s) => s,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match store::insert(&db, &sub).await {
        Ok(()) => json_reply(StatusCode::CREATED, &json!(sub)),
        Err(e) => internal(e),
    }
}

/// A field that must be a string when present.
fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("{key}: must be a string")),
    }
}

/// A tree or branch name: `*`, or 1-200 characters without control characters or spaces.
fn name(key: &str, value: Option<&str>) -> Result<String, String> {
    let v = value.unwrap_or("*");
    if v.is_empty() || v.chars().count() > 200 {
        return Err(format!(
            "{key}: must be 1 to 200 characters (or `*` for any)"
        ));
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{key}: must not contain spaces or control characters"
        ));
    }
    Ok(v.to_string())
}

/// An e-mail address `local@domain` as lettre accepts it, without a display name.
fn email(v: &str) -> Result<String, String> {
    let bad = || format!("email: {v:?} is not an address like user@example.org");
    if v.len() > 254
        || v.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<')
    {
        return Err(bad());
    }
    v.parse::<lettre::Address>().map_err(|_| bad())?;
    Ok(v.to_string())
}

/// An http(s) URL with a host.
fn webhook_url(v: &str) -> Result<String, String> {
    let url = url::Url::parse(v).map_err(|e| format!("webhook: {v:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "webhook: the scheme must be http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("webhook: the URL has no host".into());
    }
    Ok(v.to_string())
}

/// A new subscription from a request body, or the 400 message naming the field.
pub fn parse(value: &Value) -> Result<Subscription, String> {
    let Some(map) = value.as_object() else {
        return Err("the body must be a JSON object".into());
    };
    const KNOWN: [&str; 6] = [
        "tree_name",
        "branch",
        "origin",
        "email",
        "webhook",
        "format",
    ];
    if let Some(unknown) = map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "{unknown}: unknown field (expected tree_name, branch, origin, email, webhook, format)"
        ));
    }
    let tree_name = name("tree_name", text(map, "tree_name")?)?;
    let branch = name("branch", text(map, "branch")?)?;
    let origin = match text(map, "origin")? {
        Some(o) if !crate::auth::valid_origin(o) => {
            return Err(format!("origin: {o:?} must match ^[a-z0-9_]+$"));
        }
        o => o.map(String::from),
    };
    let format = text(map, "format")?;
    let target = match (text(map, "email")?, text(map, "webhook")?) {
        (Some(_), Some(_)) => return Err("email, webhook: give one of them, not both".into()),
        (None, None) => return Err("email, webhook: one of them is required".into()),
        (Some(address), None) => {
            if format.is_some() {
                return Err("format: only for a webhook".into());
            }
            Target::Email {
                address: email(address)?,
            }
        }
        (None, Some(url)) => {
            let format = match format {
                None => WebhookFormat::Json,
                Some(f) => WebhookFormat::from_name(f)
                    .ok_or_else(|| format!("format: {f:?} is not json or discord"))?,
            };
            Target::Webhook {
                url: webhook_url(url)?,
                format,
            }
        }
    };
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| format!("no random id: {e}"))?;
    Ok(Subscription {
        id: format!("{:016x}", u64::from_be_bytes(random)),
        tree_name,
        branch,
        origin,
        target,
        created: store::time_text(&chrono::Utc::now()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: Value) -> String {
        parse(&v).expect_err("invalid")
    }

    #[test]
    fn bodies() {
        let s = parse(&json!({"tree_name": "mainline", "branch": "master", "email": "a@b.org"}))
            .expect("valid");
        assert_eq!(
            (s.tree_name.as_str(), s.branch.as_str()),
            ("mainline", "master")
        );
        assert_eq!(s.id.len(), 16);
        let s =
            parse(&json!({"webhook": "https://h.example/x", "format": "discord"})).expect("valid");
        assert_eq!((s.tree_name.as_str(), s.branch.as_str()), ("*", "*"));
        assert_eq!(
            s.target,
            Target::Webhook {
                url: "https://h.example/x".into(),
                format: WebhookFormat::Discord
            }
        );
        assert!(err(json!({"email": "nope"})).starts_with("email: "));
        assert!(err(json!({"email": "a@b.org\nBcc: x@y.z"})).starts_with("email: "));
        assert!(err(json!({"webhook": "ftp://h/x"})).starts_with("webhook: the scheme"));
        assert!(err(json!({"webhook": "not a url"})).starts_with("webhook: "));
        assert!(err(json!({"webhook": "http://h/x", "format": "slack"})).starts_with("format: "));
        assert!(err(json!({"email": "a@b.org", "format": "json"})).starts_with("format: "));
        assert!(err(json!({})).starts_with("email, webhook: one"));
        assert!(err(json!({"email": "a@b.org", "webhook": "http://h"})).contains("not both"));
        assert!(err(json!({"email": "a@b.org", "tree": "x"})).starts_with("tree: unknown"));
        assert!(err(json!({"email": "a@b.org", "branch": 3})).starts_with("branch: must be"));
        assert!(err(json!({"email": "a@b.org", "branch": ""})).starts_with("branch: "));
        assert!(err(json!({"email": "a@b.org", "origin": "A-B"})).starts_with("origin: "));
        assert!(err(json!([1])).starts_with("the body"));
    }
}
