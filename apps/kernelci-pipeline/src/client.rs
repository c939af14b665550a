//! A client of the Maestro API, as the pipeline roles use it (specs/pipeline.md §0.1).
//!
//! Unlike upstream's client, only idempotent calls are retried: a retried `POST /node` could
//! create a node twice. Node creation by the scheduler is made safe by `data.schedule_key`
//! instead (a second create answers 409, see [`ApiError::Conflict`]).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Errors talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the API at {url}: {reason}")]
    Transport {
        /// The URL called.
        url: String,
        /// Why.
        reason: String,
    },
    /// A unique key is taken (for the scheduler: the job exists already).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Not found (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Any other non-success status.
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        /// Request method.
        method: String,
        /// The URL called.
        url: String,
        /// HTTP status.
        status: u16,
        /// Response body (truncated).
        body: String,
    },
    /// The answer was not the JSON expected.
    #[error("unexpected answer from {url}: {reason}")]
    Decode {
        /// The URL called.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Maestro API client (base URL such as `http://127.0.0.1:8001/latest`).
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .finish()
    }
}

const RETRIES: u32 = 5;

impl ApiClient {
    /// A client for `base` (trailing slash optional) with a bearer token.
    pub fn new(base: &str, token: &str) -> ApiClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap_or_default();
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let idempotent = method != Method::POST;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let outcome = req.send().await;
            let retry = match &outcome {
                Err(e) => e.is_connect() || e.is_timeout(),
                Ok(r) => matches!(r.status().as_u16(), 500 | 502 | 503 | 504 | 521),
            };
            if retry && idempotent && attempt < RETRIES {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
                continue;
            }
            let resp = outcome.map_err(|e| ApiError::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| ApiError::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            if status.is_success() {
                if text.is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_str(&text).map_err(|e| ApiError::Decode {
                    url,
                    reason: e.to_string(),
                });
            }
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("detail").map(|d| d.to_string()))
                .unwrap_or_else(|| text.chars().take(500).collect());
            return Err(match status {
                StatusCode::CONFLICT => ApiError::Conflict(detail),
                StatusCode::NOT_FOUND => ApiError::NotFound(detail),
                _ => ApiError::Status {
                    method: method.to_string(),
                    url,
                    status: status.as_u16(),
                    body: detail,
                },
            });
        }
    }

    /// `GET whoami`.
    pub async fn whoami(&self) -> Result<Value, ApiError> {
        self.call(Method::GET, "whoami", None).await
    }

    /// `GET node/{id}`; `None` when it does not exist.
    pub async fn node(&self, id: &str) -> Result<Option<Value>, ApiError> {
        match self
            .call(Method::GET, &format!("node/{}", enc(id)), None)
            .await
        {
            Ok(Value::Null) => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET nodes/fast?<filters>`: every matching node (no pagination).
    pub async fn find(&self, filters: &[(&str, String)]) -> Result<Vec<Value>, ApiError> {
        let v = self
            .call(Method::GET, &format!("nodes/fast?{}", query(filters)), None)
            .await?;
        match v {
            Value::Array(items) => Ok(items),
            other => Err(ApiError::Decode {
                url: format!("{}/nodes/fast", self.base),
                reason: format!("expected a list, got {other}"),
            }),
        }
    }

    /// `GET count?<filters>`.
    pub async fn count(&self, filters: &[(&str, String)]) -> Result<u64, ApiError> {
        let v = self
            .call(Method::GET, &format!("count?{}", query(filters)), None)
            .await?;
        v.as_u64().ok_or_else(|| ApiError::Decode {
            url: format!("{}/count", self.base),
            reason: format!("expected a number, got {v}"),
        })
    }

    /// `POST node`: the created node. Not retried (a retried create could duplicate it).
    pub async fn create(&self, node: &Value) -> Result<Value, ApiError> {
        self.call(Method::POST, "node", Some(node)).await
    }

    /// `POST node` for a node carrying `data.schedule_key`: retried on connection errors
    /// and 5xx like the idempotent calls, since a second create of the same key answers
    /// 409 ([`ApiError::Conflict`]) instead of duplicating the node.
    pub async fn create_keyed(&self, node: &Value) -> Result<Value, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call(Method::POST, "node", Some(node)).await {
                Err(ApiError::Transport { .. })
                | Err(ApiError::Status {
                    status: 500..=599, ..
                }) if attempt < RETRIES => {
                    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
                }
                other => return other,
            }
        }
    }

    /// `PUT node/{id}` with the whole node document.
    pub async fn update(&self, node: &Value) -> Result<Value, ApiError> {
        let id = node.get("id").and_then(Value::as_str).unwrap_or_default();
        self.call(Method::PUT, &format!("node/{id}"), Some(node))
            .await
    }

    /// `PUT node/{id}?noevent=true`: an update no subscriber needs to hear about.
    pub async fn update_quiet(&self, node: &Value) -> Result<Value, ApiError> {
        let id = node.get("id").and_then(Value::as_str).unwrap_or_default();
        self.call(
            Method::PUT,
            &format!("node/{}?noevent=true", enc(id)),
            Some(node),
        )
        .await
    }

    /// `PUT nodes/{id}`: a node and its new children in one hierarchy.
    pub async fn update_hierarchy(&self, id: &str, hierarchy: &Value) -> Result<Value, ApiError> {
        self.call(Method::PUT, &format!("nodes/{}", enc(id)), Some(hierarchy))
            .await
    }

    /// `PUT batch/nodeset`: set one field on many nodes without events.
    pub async fn set_on_nodes(
        &self,
        ids: &[String],
        field: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Ok(());
        }
        let body = json!({"nodes": ids, "field": field, "value": value});
        self.call(Method::PUT, "batch/nodeset", Some(&body)).await?;
        Ok(())
    }

    /// `POST subscribe/{channel}` with a durable subscriber id; the subscription id.
    pub async fn subscribe(
        &self,
        channel: &str,
        subscriber_id: &str,
        promisc: bool,
    ) -> Result<i64, ApiError> {
        let path = format!(
            "subscribe/{channel}?promisc={promisc}&subscriber_id={}",
            enc(subscriber_id)
        );
        let v = self.call(Method::POST, &path, None).await?;
        v.get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::Decode {
                url: format!("{}/subscribe/{channel}", self.base),
                reason: format!("no subscription id in {v}"),
            })
    }

    /// `GET listen/{id}`: the next event's CloudEvent `data`, or `None` for a keep-alive.
    pub async fn listen(&self, sub: i64) -> Result<Option<Value>, ApiError> {
        let v = self
            .call(Method::GET, &format!("listen/{sub}"), None)
            .await?;
        let raw = v.get("data").and_then(Value::as_str).unwrap_or_default();
        let event: Value = serde_json::from_str(raw).map_err(|e| ApiError::Decode {
            url: format!("{}/listen/{sub}", self.base),
            reason: e.to_string(),
        })?;
        match event.get("data") {
            Some(Value::String(s)) if s == "BEEP" => Ok(None),
            Some(d) => Ok(Some(d.clone())),
            None => Ok(None),
        }
    }

    /// `POST telemetry` with a list of events.
    pub async fn telemetry(&self, events: &[Value]) -> Result<(), ApiError> {
        self.call(
            Method::POST,
            "telemetry",
            Some(&Value::from(events.to_vec())),
        )
        .await?;
        Ok(())
    }

    /// `POST publish/{channel}`.
    pub async fn publish(&self, channel: &str, data: &Value) -> Result<(), ApiError> {
        self.call(
            Method::POST,
            &format!("publish/{channel}"),
            Some(&json!({"data": data})),
        )
        .await?;
        Ok(())
    }
}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query(filters: &[(&str, String)]) -> String {
    filters
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
