//! A client of a KCIDB receiver (feature `client`): what a lab needs to send its results.
//!
//! [`Client`] posts submissions to `…/submit` with `Authorization: Bearer <JWT>` (the token's
//! `origin` must own the objects) and reads `…/status?id=` for the receipt it got back. Bodies
//! can be bytes, a typed [`Submission`], a file (streamed from disk, re-opened for each try)
//! or a stream of objects cut into submissions of a given size. 5xx replies and connection
//! errors are retried with a doubling delay ([`Retry`]); resubmitting is harmless because
//! KCIDB merges an object submitted twice. 4xx replies are final.
//!
//! Blocking (reqwest's blocking client, which runs its own small runtime): callers need no
//! async runtime.
//!
//! ```no_run
//! use kernelci_kcidb::client::Client;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://localhost:8001/kcidb/submit", "TOKEN")?;
//! let receipt = client.submit_file("results.json".as_ref())?;
//! let status = client.wait(&receipt.id, std::time::Duration::from_secs(60))?;
//! println!("{}: {}", receipt.id, status.status);
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::blocking::Body;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

use crate::stream::AnyObject;
use crate::types::Submission;

/// Retry policy for 5xx replies and connection errors.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (at least one).
    pub tries: u32,
    /// The wait before the second attempt, doubled before each further one.
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            tries: 3,
            first_delay: Duration::from_secs(1),
        }
    }
}

/// The receiver's answer: upstream's `{"id", "status", "message"}` plus our fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The submission id (`/status?id=`).
    pub id: String,
    /// `ok` after a submission; `inprogress`, `ready`, `processed`, `failed`, ... from status.
    pub status: String,
    /// The human-readable message.
    pub message: String,
    /// The whole reply.
    pub reply: Value,
}

impl Receipt {
    fn from_reply(reply: Value) -> Receipt {
        let text = |key: &str| {
            reply
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Receipt {
            id: text("id"),
            status: text("status"),
            message: text("message"),
            reply,
        }
    }
}

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not an http(s) URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// What was given.
        url: String,
    },
    /// The HTTP client could not be set up (TLS roots).
    #[error("cannot create the HTTP client: {0}")]
    Setup(String),
    /// A file to submit cannot be read.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No reply (connection refused, reset, timed out) after every try.
    #[error("no reply from {url} after {tries} tries: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Attempts made.
        tries: u32,
        /// The last failure.
        reason: String,
    },
    /// A 5xx reply to every try.
    #[error("HTTP {status} from {url} after {tries} tries: {body}")]
    ServerError {
        /// The URL.
        url: String,
        /// Attempts made.
        tries: u32,
        /// The last status.
        status: u16,
        /// The last reply's text.
        body: String,
    },
    /// The receiver refused the request (4xx): the body says why (for a submission, every
    /// problem with its pointer).
    #[error("refused with HTTP {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The reply's `message`, or its text.
        message: String,
        /// The whole reply.
        reply: Value,
    },
    /// [`Client::wait`] ran out of time.
    #[error("submission {id} still {status:?} after {waited:?}")]
    StillPending {
        /// The submission.
        id: String,
        /// Its last status.
        status: String,
        /// How long we waited.
        waited: Duration,
    },
}

/// One attempt's outcome.
enum Attempt {
    Reply(u16, String),
    NoReply(String),
}

/// A KCIDB receiver and a token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    submit_url: Url,
    status_url: Url,
    token: String,
    retry: Retry,
}

impl Client {
    /// A client of the `/submit` endpoint at `submit_url` (used as given; `/status` is its
    /// sibling) with the JWT `token`.
    pub fn new(submit_url: &str, token: &str) -> Result<Client, ClientError> {
        let bad = || ClientError::BadUrl {
            url: submit_url.to_string(),
        };
        let submit = Url::parse(submit_url).map_err(|_| bad())?;
        if !matches!(submit.scheme(), "http" | "https") || submit.cannot_be_a_base() {
            return Err(bad());
        }
        let mut status = submit.clone();
        if let Ok(mut segments) = status.path_segments_mut() {
            segments.pop_if_empty().pop().push("status");
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| ClientError::Setup(error_chain(&e)))?;
        Ok(Client {
            http,
            submit_url: submit,
            status_url: status,
            token: token.to_string(),
            retry: Retry::default(),
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: Retry) -> Client {
        self.retry = retry;
        self
    }

    /// The `/submit` URL.
    pub fn submit_url(&self) -> &str {
        self.submit_url.as_str()
    }

    /// Submits a document's bytes as they are (the receiver validates them).
    pub fn submit_bytes(&self, body: Vec<u8>) -> Result<Receipt, ClientError> {
        self.post(|| Ok(Body::from(body.clone())))
    }

    /// Submits a typed submission.
    pub fn submit(&self, submission: &Submission) -> Result<Receipt, ClientError> {
        self.submit_bytes(submission.to_json().into_bytes())
    }

    /// Submits a file, streamed from disk (so its size does not matter here).
    pub fn submit_file(&self, path: &Path) -> Result<Receipt, ClientError> {
        self.post(|| {
            std::fs::File::open(path)
                .map(Body::from)
                .map_err(|e| ClientError::File {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        })
    }

    /// Submits a stream of objects, `per_submission` (at least 1) to a submission, in order;
    /// stops at the first refusal. Returns the receipts.
    pub fn submit_objects(
        &self,
        objects: impl IntoIterator<Item = AnyObject>,
        per_submission: usize,
    ) -> Result<Vec<Receipt>, ClientError> {
        let per_submission = per_submission.max(1);
        let mut receipts = Vec::new();
        let mut current = Submission::new();
        for object in objects {
            object.push_into(&mut current);
            if current.object_count() >= per_submission {
                receipts.push(self.submit(&std::mem::take(&mut current))?);
            }
        }
        if current.object_count() > 0 {
            receipts.push(self.submit(&current)?);
        }
        Ok(receipts)
    }

    /// The state of a submission (`/status?id=`).
    pub fn status(&self, id: &str) -> Result<Receipt, ClientError> {
        let mut url = self.status_url.clone();
        url.query_pairs_mut().append_pair("id", id);
        let url_text = url.to_string();
        let attempt = self.with_retries(&url_text, || {
            Ok(self
                .http
                .get(url.clone())
                .header(AUTHORIZATION, format!("Bearer {}", self.token)))
        })?;
        self.outcome(attempt, &url_text)
    }

    /// Polls [`Client::status`] until the submission is `processed` (in the database) or
    /// `failed`, for at most `timeout`. `failed` is returned as a receipt, not an error.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<Receipt, ClientError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            let receipt = self.status(id)?;
            if matches!(receipt.status.as_str(), "processed" | "failed") {
                return Ok(receipt);
            }
            if start.elapsed() >= timeout {
                return Err(ClientError::StillPending {
                    id: id.to_string(),
                    status: receipt.status,
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    fn post(&self, body: impl Fn() -> Result<Body, ClientError>) -> Result<Receipt, ClientError> {
        let url = self.submit_url.to_string();
        let attempt = self.with_retries(&url, || {
            // A body that cannot be made (an unreadable file) ends the tries at once.
            Ok(self
                .http
                .post(self.submit_url.clone())
                .header(AUTHORIZATION, format!("Bearer {}", self.token))
                .header(CONTENT_TYPE, "application/json")
                .body(body()?))
        })?;
        self.outcome(attempt, &url)
    }

    /// Sends `request()` up to `retry.tries` times: until a reply below 500, or until the
    /// request cannot be made.
    fn with_retries(
        &self,
        url: &str,
        mut request: impl FnMut() -> Result<reqwest::blocking::RequestBuilder, ClientError>,
    ) -> Result<Attempt, ClientError> {
        let tries = self.retry.tries.max(1);
        let mut wait = self.retry.first_delay;
        let mut last = Attempt::NoReply(String::new());
        for attempt in 1..=tries {
            if attempt > 1 {
                std::thread::sleep(wait);
                wait *= 2;
            }
            let result = request()?.send().and_then(|resp| {
                let code = resp.status().as_u16();
                resp.text().map(|text| (code, text))
            });
            last = match result {
                Ok((code, text)) if code < 500 => return Ok(Attempt::Reply(code, text)),
                Ok((code, text)) => Attempt::Reply(code, text),
                Err(err) => Attempt::NoReply(error_chain(&err)),
            };
        }
        match last {
            Attempt::Reply(status, text) => Err(ClientError::ServerError {
                url: url.to_string(),
                tries,
                status,
                body: text.trim_end().to_string(),
            }),
            no_reply => Ok(no_reply),
        }
    }

    fn outcome(&self, attempt: Attempt, url: &str) -> Result<Receipt, ClientError> {
        match attempt {
            Attempt::NoReply(reason) => Err(ClientError::Unreachable {
                url: url.to_string(),
                tries: self.retry.tries.max(1),
                reason,
            }),
            Attempt::Reply(code, text) => {
                let reply: Value =
                    serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
                if (200..300).contains(&code) {
                    Ok(Receipt::from_reply(reply))
                } else {
                    let message = reply
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| text.trim_end().to_string());
                    Err(ClientError::Refused {
                        status: code,
                        message,
                        reply,
                    })
                }
            }
        }
    }
}

/// An error and its sources, `a: b: c` (reqwest's own message hides the cause).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
