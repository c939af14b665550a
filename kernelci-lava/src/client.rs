//! A blocking client of a LAVA server's REST API v0.2 (feature `client`), written against
//! lava-server 2023.01 (`lava_rest_app/v02`).
//!
//! Requests carry `Authorization: Token <token>` when a token is given and `format=json` on
//! JSON endpoints; lists are paginated by LAVA (`count`, `next`, `results`) and followed with
//! `limit=256`. `next` links are built by LAVA from the request's Host header, which a proxy
//! may rewrite, so only their query string is taken and applied to our own URL. Timeouts:
//! 10 s to connect, 60 s per request. No retries: the scheduler decides what to do with an
//! error (the queue gate fails open; a status poll is tried again later).
//!
//! Endpoints: `system/version/`, `jobs/` (POST `{"definition": <yaml>}` → `job_ids`),
//! `jobs/<id>/`, `jobs/<id>/logs/` (the YAML log, 404 until the job has one),
//! `jobs/<id>/tests/`, `jobs/<id>/cancel/` — a GET in 2023.01 (`@detail_route(methods=
//! ["get"])`); a server answering 405 gets a POST instead —, `devices/?device_type=` and
//! `jobs/?state=Submitted&requested_device_type=` (read with `limit=1`: only `count` is
//! used).
//!
//! Blocking (reqwest's blocking client runs its own small runtime): do not call it from an
//! async task — reqwest panics there; [`crate::runtime`] calls it from a thread of its own.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

/// Page size of list requests.
const PAGE_LIMIT: &str = "256";
/// Pages followed at most (256 × 4096 ≈ one million objects).
const MAX_PAGES: usize = 4096;
/// Characters of a reply body kept in an error.
const BODY_EXCERPT: usize = 500;

/// Why a LAVA request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LavaError {
    /// The API URL is not an http(s) URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// What was given.
        url: String,
    },
    /// The HTTP client could not be set up (TLS roots, or called from an async task).
    #[error("cannot create the HTTP client: {0}")]
    Setup(String),
    /// No reply (connection refused, reset, timed out).
    #[error("no reply from {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A reply with a non-2xx status.
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        /// The status.
        status: u16,
        /// The URL (without the token, which is never in URLs).
        url: String,
        /// The start of the reply body.
        body: String,
    },
    /// A 2xx reply that is not what LAVA sends.
    #[error("unexpected reply from {url}: {reason}")]
    Decode {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

impl LavaError {
    /// The HTTP status of an [`LavaError::Http`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            LavaError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A job as `GET jobs/<id>/` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// The job id.
    pub id: i64,
    /// `Submitted`, `Scheduling`, `Scheduled`, `Running`, `Canceling`, `Finished`.
    pub state: String,
    /// `Unknown`, `Complete`, `Incomplete`, `Canceled`.
    pub health: String,
    /// The device's hostname once scheduled.
    pub actual_device: Option<String>,
}

/// A device as `GET devices/` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The hostname (the device's name).
    pub hostname: String,
    /// Its device type.
    pub device_type: Option<String>,
    /// `Good`, `Unknown`, `Looping`, `Bad`, `Maintenance`, `Retired`.
    pub health: Option<String>,
    /// `Idle`, `Reserved`, `Running`.
    pub state: Option<String>,
}

/// A LAVA server's REST API and an optional token.
#[derive(Debug, Clone)]
pub struct LavaClient {
    http: reqwest::blocking::Client,
    base: Url,
    token: Option<String>,
}

impl LavaClient {
    /// A client of the API at `api_url` (`…/api/v0.2/`, see [`crate::lab::api_url`]) with
    /// the API `token`, if any.
    pub fn new(api_url: &str, token: Option<&str>) -> Result<LavaClient, LavaError> {
        let bad = || LavaError::BadUrl {
            url: api_url.to_string(),
        };
        let mut text = api_url.trim().to_string();
        if !text.ends_with('/') {
            text.push('/');
        }
        let base = Url::parse(&text).map_err(|_| bad())?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad());
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("kernelci-lava/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LavaError::Setup(error_chain(&e)))?;
        Ok(LavaClient {
            http,
            base,
            token: token.filter(|t| !t.is_empty()).map(str::to_string),
        })
    }

    /// The API base URL.
    pub fn api_url(&self) -> &str {
        self.base.as_str()
    }

    /// The server's version (`2023.01`).
    pub fn version(&self) -> Result<String, LavaError> {
        let url = self.endpoint("system/version/", &[("format", "json")])?;
        let reply = self.get_json(&url)?;
        reply["version"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| decode(&url, "no \"version\" in the reply"))
    }

    /// Submits a job definition (YAML); returns the LAVA job id (the first of a multinode
    /// job's ids, whose `<id>.<n>` form is read as `<id>`).
    pub fn submit(&self, definition_yaml: &str) -> Result<i64, LavaError> {
        let url = self.endpoint("jobs/", &[("format", "json")])?;
        let body = json!({ "definition": definition_yaml }).to_string();
        let request = self
            .auth(self.http.post(url.clone()))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let text = self.send(request, &url)?;
        let reply: Value =
            serde_json::from_str(&text).map_err(|e| decode(&url, &format!("not JSON: {e}")))?;
        let first = reply["job_ids"].get(0).cloned().unwrap_or(Value::Null);
        let id = match &first {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.split('.').next().and_then(|s| s.trim().parse().ok()),
            _ => None,
        };
        id.ok_or_else(|| decode(&url, &format!("no job id in {}", excerpt(&text))))
    }

    /// A job's state and health.
    pub fn job(&self, id: i64) -> Result<JobInfo, LavaError> {
        let url = self.endpoint(&format!("jobs/{id}/"), &[("format", "json")])?;
        let reply = self.get_json(&url)?;
        let text = |key: &str| reply[key].as_str().map(str::to_string);
        Ok(JobInfo {
            id: reply["id"].as_i64().unwrap_or(id),
            state: text("state").ok_or_else(|| decode(&url, "no \"state\" in the reply"))?,
            health: text("health").ok_or_else(|| decode(&url, "no \"health\" in the reply"))?,
            actual_device: text("actual_device").filter(|d| !d.is_empty()),
        })
    }

    /// A job's log: the YAML list of `{dt, lvl, msg}` ([`crate::log::LavaLog::parse`]).
    pub fn logs(&self, id: i64) -> Result<String, LavaError> {
        let url = self.endpoint(&format!("jobs/{id}/logs/"), &[])?;
        self.send(self.auth(self.http.get(url.clone())), &url)
    }

    /// A job's test cases, every page, as one JSON list.
    pub fn tests(&self, id: i64) -> Result<Value, LavaError> {
        let url = self.endpoint(
            &format!("jobs/{id}/tests/"),
            &[("format", "json"), ("limit", PAGE_LIMIT)],
        )?;
        Ok(Value::Array(self.get_all(url)?))
    }

    /// Asks LAVA to cancel a job (accepted for a job that already ended).
    pub fn cancel(&self, id: i64) -> Result<(), LavaError> {
        let url = self.endpoint(&format!("jobs/{id}/cancel/"), &[("format", "json")])?;
        match self.send(self.auth(self.http.get(url.clone())), &url) {
            Ok(_) => Ok(()),
            Err(LavaError::Http { status: 405, .. }) => self
                .send(self.auth(self.http.post(url.clone())), &url)
                .map(|_| ()),
            Err(e) => Err(e),
        }
    }

    /// The devices of a type (retired ones excluded by LAVA), every page.
    pub fn devices(&self, device_type: &str) -> Result<Vec<DeviceInfo>, LavaError> {
        let url = self.endpoint(
            "devices/",
            &[
                ("format", "json"),
                ("limit", PAGE_LIMIT),
                ("device_type", device_type),
            ],
        )?;
        let mut devices = Vec::new();
        for item in self.get_all(url)? {
            let text = |key: &str| item[key].as_str().map(str::to_string);
            let Some(hostname) = text("hostname").or_else(|| text("name")) else {
                continue;
            };
            let device_type_of = text("device_type");
            // As upstream: only devices of exactly this type.
            if device_type_of.as_deref().is_some_and(|t| t != device_type) {
                continue;
            }
            devices.push(DeviceInfo {
                hostname,
                device_type: device_type_of,
                health: text("health"),
                state: text("state"),
            });
        }
        Ok(devices)
    }

    /// How many jobs wait (`Submitted`) for a device type.
    pub fn queued(&self, device_type: &str) -> Result<u64, LavaError> {
        let url = self.endpoint(
            "jobs/",
            &[
                ("format", "json"),
                ("limit", "1"),
                ("state", "Submitted"),
                ("requested_device_type", device_type),
            ],
        )?;
        let reply = self.get_json(&url)?;
        reply["count"]
            .as_u64()
            .ok_or_else(|| decode(&url, "no \"count\" in the reply"))
    }

    fn endpoint(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, LavaError> {
        let mut url = self.base.join(path).map_err(|_| LavaError::BadUrl {
            url: format!("{}{path}", self.base),
        })?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn auth(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, format!("Token {token}")),
            None => request,
        }
    }

    /// Sends a request; a 2xx reply's text, else the error.
    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
        url: &Url,
    ) -> Result<String, LavaError> {
        let reply = request.send().map_err(|e| LavaError::Unreachable {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
        let status = reply.status().as_u16();
        let text = reply.text().map_err(|e| LavaError::Unreachable {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            Err(LavaError::Http {
                status,
                url: url.to_string(),
                body: excerpt(&text),
            })
        }
    }

    fn get_json(&self, url: &Url) -> Result<Value, LavaError> {
        let text = self.send(self.auth(self.http.get(url.clone())), url)?;
        serde_json::from_str(&text).map_err(|e| decode(url, &format!("not JSON: {e}")))
    }

    /// Every `results` item of a paginated list, following `next`.
    fn get_all(&self, first: Url) -> Result<Vec<Value>, LavaError> {
        let mut items = Vec::new();
        let mut url = first.clone();
        for _ in 0..MAX_PAGES {
            let reply = self.get_json(&url)?;
            let Some(results) = reply["results"].as_array() else {
                return Err(decode(&url, "no \"results\" list in the reply"));
            };
            if results.is_empty() {
                break;
            }
            items.extend(results.iter().cloned());
            let Some(next) = reply["next"].as_str().filter(|n| !n.is_empty()) else {
                break;
            };
            let next =
                Url::parse(next).map_err(|e| decode(&url, &format!("bad next link: {e}")))?;
            let mut following = first.clone();
            following.set_query(next.query());
            if following == url {
                break;
            }
            url = following;
        }
        Ok(items)
    }
}

fn decode(url: &Url, reason: &str) -> LavaError {
    LavaError::Decode {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// An error and its sources, `a: b: c` (reqwest's own message hides the cause).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A one-connection-per-reply HTTP server: answers each request with the next canned
    /// reply and reports the request lines it saw.
    fn serve(replies: Vec<(u16, String)>) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for (status, body) in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut request = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    request.push_str(&line);
                }
                let mut body_in = vec![0; length];
                let _ = reader.read_exact(&mut body_in);
                request.push_str(&String::from_utf8_lossy(&body_in));
                let _ = tx.send(request);
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (format!("http://{addr}/api/v0.2/"), rx)
    }

    #[test]
    fn submit_sends_token_and_definition() {
        let (url, seen) = serve(vec![(201, r#"{"message":"ok","job_ids":[17]}"#.into())]);
        let client = LavaClient::new(&url, Some("tok")).unwrap();
        assert_eq!(client.submit("job_name: x\n").unwrap(), 17);
        let request = seen.recv().unwrap();
        assert!(
            request.starts_with("POST /api/v0.2/jobs/?format=json "),
            "{request}"
        );
        assert!(
            request.contains("authorization: Token tok\r\n"),
            "{request}"
        );
        assert!(
            request.contains(r#"{"definition":"job_name: x\n"}"#),
            "{request}"
        );
    }

    #[test]
    fn pages_are_followed_on_our_own_host() {
        let page1 = r#"{"count":3,"next":"http://proxy.internal/api/v0.2/devices/?device_type=qemu&limit=2&offset=2","results":[
            {"hostname":"q1","device_type":"qemu","health":"Good","state":"Idle"},
            {"hostname":"other","device_type":"qemu-aarch64","health":"Good","state":"Idle"}]}"#;
        let page2 = r#"{"count":3,"next":null,"results":[{"hostname":"q2","device_type":"qemu","health":"Bad","state":"Idle"}]}"#;
        let (url, seen) = serve(vec![(200, page1.into()), (200, page2.into())]);
        let client = LavaClient::new(&url, None).unwrap();
        let devices = client.devices("qemu").unwrap();
        let names: Vec<&str> = devices.iter().map(|d| d.hostname.as_str()).collect();
        assert_eq!(names, ["q1", "q2"]);
        assert_eq!(devices[1].health.as_deref(), Some("Bad"));
        let first = seen.recv().unwrap();
        assert!(
            first.starts_with("GET /api/v0.2/devices/?format=json&limit=256&device_type=qemu ")
        );
        assert!(!first.contains("authorization"));
        let second = seen.recv().unwrap();
        assert!(
            second.starts_with("GET /api/v0.2/devices/?device_type=qemu&limit=2&offset=2 "),
            "{second}"
        );
    }

    #[test]
    fn errors() {
        let (url, _seen) = serve(vec![
            (404, r#"{"detail":"Not found."}"#.into()),
            (200, "not json".into()),
            (405, "{}".into()),
            (200, r#"{"message":"Job cancel signal sent."}"#.into()),
        ]);
        let client = LavaClient::new(&url, Some("t")).unwrap();
        let e = client.job(5).unwrap_err();
        assert_eq!(e.status(), Some(404));
        assert!(e.to_string().contains("Not found"), "{e}");
        assert!(matches!(
            client.queued("qemu"),
            Err(LavaError::Decode { .. })
        ));
        client.cancel(5).unwrap();
        assert!(matches!(
            LavaClient::new("ftp://x/", None),
            Err(LavaError::BadUrl { .. })
        ));
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let client = LavaClient::new(&format!("http://127.0.0.1:{port}/api/v0.2"), None).unwrap();
        assert!(matches!(
            client.version(),
            Err(LavaError::Unreachable { .. })
        ));
    }

    #[test]
    fn job_and_queue() {
        let (url, seen) = serve(vec![
            (
                200,
                r#"{"id":5,"state":"Finished","health":"Incomplete","actual_device":"qemu-01"}"#
                    .into(),
            ),
            (
                200,
                r#"{"count":7,"next":null,"results":[{"id":1}]}"#.into(),
            ),
        ]);
        let client = LavaClient::new(&url, None).unwrap();
        let job = client.job(5).unwrap();
        assert_eq!(
            (job.state.as_str(), job.health.as_str()),
            ("Finished", "Incomplete")
        );
        assert_eq!(job.actual_device.as_deref(), Some("qemu-01"));
        assert_eq!(client.queued("qemu").unwrap(), 7);
        let _ = seen.recv();
        let q = seen.recv().unwrap();
        assert!(q.starts_with("GET /api/v0.2/jobs/?format=json&limit=1&state=Submitted&requested_device_type=qemu "), "{q}");
    }
}
