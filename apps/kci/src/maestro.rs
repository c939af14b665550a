//! The Maestro API (`latest/node/{id}`, `latest/nodes/fast`, `latest/count`) and the
//! pipeline API (`api/checkout`, `api/jobretry`, `api/patchset`) as kci-dev calls them: the
//! token goes raw in `Authorization` (our servers also take `Bearer`).

use std::time::Duration;

use kernelci_kcidb::client::error_chain;
use serde_json::Value;

/// Why a request failed, mapped to kci's exit codes by the commands.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer (connection refused, DNS, timeout) or a 5xx: try again later.
    #[error("{url}: {reason}")]
    Unavailable {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The server refused the request (4xx).
    #[error("{url}: HTTP {status}: {detail}")]
    Refused {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's explanation (`detail`, `message` or the body).
        detail: String,
    },
    /// A reply that is not the JSON expected.
    #[error("{url}: unexpected reply: {reason}")]
    BadReply {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

impl ApiError {
    /// Whether this is an HTTP 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Refused { status: 404, .. })
    }
}

/// A JSON-over-HTTP service with a token.
#[derive(Debug, Clone)]
pub struct Service {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Service {
    /// `base` is used as given, with exactly one `/` before each path.
    pub fn new(base: &str, token: Option<&str>) -> anyhow::Result<Service> {
        let parsed =
            reqwest::Url::parse(base).map_err(|e| anyhow::anyhow!("{base:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("{base:?} is not an http:// or https:// URL");
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("kci/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Service {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
        })
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// `GET path?query`.
    pub fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, ApiError> {
        let url = self.url(path);
        let request = self.http.get(&url).query(query);
        self.send(request, &url)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let url = self.url(path);
        let request = self.http.post(&url).json(body);
        self.send(request, &url)
    }

    /// `POST path` with a form body (`application/x-www-form-urlencoded`).
    pub fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Result<Value, ApiError> {
        let url = self.url(path);
        let request = self.http.post(&url).form(form);
        self.send(request, &url)
    }

    fn send(
        &self,
        mut request: reqwest::blocking::RequestBuilder,
        url: &str,
    ) -> Result<Value, ApiError> {
        if let Some(token) = &self.token {
            request = request.header(reqwest::header::AUTHORIZATION, token);
        }
        let response = request.send().map_err(|e| ApiError::Unavailable {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
        let status = response.status().as_u16();
        let text = response.text().map_err(|e| ApiError::Unavailable {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if status >= 500 {
            return Err(ApiError::Unavailable {
                url: url.to_string(),
                reason: format!("HTTP {status}: {}", text.trim()),
            });
        }
        if status >= 400 {
            let detail = body
                .as_ref()
                .and_then(|b| b.get("detail").or_else(|| b.get("message")))
                .map(|d| match d {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| text.trim().to_string());
            return Err(ApiError::Refused {
                url: url.to_string(),
                status,
                detail,
            });
        }
        body.ok_or_else(|| ApiError::BadReply {
            url: url.to_string(),
            reason: format!("not JSON: {:.200}", text.trim()),
        })
    }
}

/// The Maestro API.
#[derive(Debug, Clone)]
pub struct Maestro(pub Service);

impl Maestro {
    /// One node (`latest/node/{id}`).
    pub fn node(&self, id: &str) -> Result<Value, ApiError> {
        let node = self.0.get(&format!("latest/node/{id}"), &[])?;
        if node.is_null() {
            return Err(ApiError::Refused {
                url: self.0.url(&format!("latest/node/{id}")),
                status: 404,
                detail: format!("node {id} not found"),
            });
        }
        Ok(node)
    }

    /// Nodes matching `query` (`latest/nodes/fast`: a plain list).
    pub fn nodes(&self, query: &[(String, String)]) -> Result<Vec<Value>, ApiError> {
        let url = self.0.url("latest/nodes/fast");
        match self.0.get("latest/nodes/fast", query)? {
            Value::Array(nodes) => Ok(nodes),
            // Some servers page even the fast listing.
            Value::Object(mut page) => match page.remove("items") {
                Some(Value::Array(nodes)) => Ok(nodes),
                _ => Err(ApiError::BadReply {
                    url,
                    reason: "neither a list nor a page of nodes".into(),
                }),
            },
            _ => Err(ApiError::BadReply {
                url,
                reason: "not a list of nodes".into(),
            }),
        }
    }

    /// The number of nodes matching `query` (`latest/count`).
    pub fn count(&self, query: &[(String, String)]) -> Result<u64, ApiError> {
        let url = self.0.url("latest/count");
        self.0
            .get("latest/count", query)?
            .as_u64()
            .ok_or_else(|| ApiError::BadReply {
                url,
                reason: "not a count".into(),
            })
    }
}
