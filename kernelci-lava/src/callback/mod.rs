//! LAVA's notify callback (`POST /node/{id}`, `dataset: all`, specs/pipeline.md §5 and
//! specs/real-peers.md §2.6), parsed once and turned into what the pipeline stores.
//!
//! [`Callback::parse`] reads the raw body and checks everything up front, so the HTTP layer
//! can answer 400 with a precise [`CallbackError`] before accepting the job: the body must be
//! a JSON object with an integer `id` and `status` (a string of digits is accepted, LAVA
//! quotes numbers elsewhere); `results` values, when present, must each be a YAML list (or a
//! JSON list); `log`, when present, a YAML list; `definition`, when present, YAML. Inside
//! those lists reading is lenient (see [`results`] and [`crate::log`]).
//!
//! Measured quirks accepted: `end_time` is the string `"None"`, `failure_comment` is null
//! even for Incomplete jobs (the reason is in `results.lava`, case `job`), result fields
//! hold quoted numbers and the string `None`, `metadata` is `[]`, and `actual_device_id`
//! may be null (read `None` or empty as no device).
//!
//! What it gives: the job result (§5.2-5.3), the device, the console text and the kept log
//! entries (§5.3.2), the payload to archive (without `token`), the artifacts of an `upload`
//! suite, and the whole `PUT /nodes/{id}` body ([`Callback::hierarchy`], §5.3.4-5.4).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

mod error;
mod hierarchy;
mod metadata;
pub mod results;

pub use error::CallbackError;
pub use results::{Suite, TestCase};

use crate::log::LavaLog;

/// LAVA's legacy job status codes (lava-server `TestJob.get_legacy_status`).
pub mod status {
    /// Submitted.
    pub const SUBMITTED: i64 = 0;
    /// Running.
    pub const RUNNING: i64 = 1;
    /// Complete.
    pub const COMPLETE: i64 = 2;
    /// Incomplete.
    pub const INCOMPLETE: i64 = 3;
    /// Canceled.
    pub const CANCELED: i64 = 4;
    /// Canceling.
    pub const CANCELING: i64 = 5;
}

/// The error types LAVA puts in the `job` case's `metadata.error_type`.
pub const ERROR_TYPES: [&str; 10] = [
    "Infrastructure",
    "Canceled",
    "Job",
    "Bug",
    "Test",
    "Configuration",
    "LAVATimeout",
    "MultinodeTimeout",
    "ObjectNotPersisted",
    "Unexisting permission codename.",
];

/// `data.error_code` when LAVA gives no (known) error type.
pub const DEFAULT_ERROR_CODE: &str = "Infrastructure";
/// `data.error_msg` when LAVA gives no job failure metadata.
pub const DEFAULT_ERROR_MSG: &str = "Unknown infrastructure error";
/// `data.error_msg` of a job cancelled before it started (no `job` case at all).
pub const CANCELED_BEFORE_START: &str = "The job was canceled before it started";

/// Whether a LAVA error type is the lab's side rather than the test's. Lab side: the lab
/// (`Infrastructure`, `Bug`, `Configuration`, `ObjectNotPersisted`, `Unexisting permission
/// codename.`), LAVA's own handling of the job (`Canceled`, `Job` — the definition LAVA
/// refused —, `LAVATimeout`, `MultinodeTimeout`). `Test` (the test shell or its commands
/// failed) and unknown types are not. For telemetry and retries; the node of an Incomplete
/// job stays `incomplete` whatever the type (except the baseline rule of
/// [`Callback::hierarchy`]).
pub fn is_infrastructure_error(code: &str) -> bool {
    matches!(
        code,
        "Infrastructure"
            | "Bug"
            | "Canceled"
            | "Configuration"
            | "Job"
            | "LAVATimeout"
            | "MultinodeTimeout"
            | "ObjectNotPersisted"
            | "Unexisting permission codename."
    )
}

/// Why a job did not complete: `data.error_code` / `data.error_msg` of its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One of [`ERROR_TYPES`] (an unknown type becomes [`DEFAULT_ERROR_CODE`]).
    pub code: String,
    /// LAVA's message (prefixed with an unknown type's name), or [`DEFAULT_ERROR_MSG`] when
    /// LAVA gave no failure metadata.
    pub message: Option<String>,
}

/// A parsed notify callback. `Debug` shows a summary: never the token, nor the whole log.
#[derive(Clone)]
pub struct Callback {
    payload: Map<String, Value>,
    job_id: i64,
    status: i64,
    suites: Vec<Suite>,
    log: Option<LavaLog>,
    metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("job_id", &self.job_id)
            .field("status", &self.status)
            .field(
                "suites",
                &self.suites.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("log_entries", &self.log.as_ref().map(|l| l.entries().len()))
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// Parses and checks a raw callback body.
    pub fn parse(body: &[u8]) -> Result<Callback, CallbackError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| CallbackError::NotJson(e.to_string()))?;
        let Value::Object(payload) = value else {
            return Err(CallbackError::NotObject);
        };
        let job_id = integer(&payload, "id")?;
        let status = integer(&payload, "status")?;
        let metadata = match payload.get("definition") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::String(text)) => metadata::read(text).map_err(CallbackError::Definition)?,
            Some(_) => return Err(CallbackError::NotString("definition")),
        };
        let suites = match payload.get("results") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(results)) => parse_suites(results)?,
            Some(_) => return Err(CallbackError::ResultsNotObject),
        };
        let log = match payload.get("log") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.trim().is_empty() => None,
            Some(Value::String(text)) => {
                Some(LavaLog::parse(text).map_err(|e| CallbackError::Log(e.0))?)
            }
            Some(Value::Array(items)) if items.is_empty() => None,
            Some(Value::Array(items)) => Some(LavaLog::from_json_list(items)),
            Some(_) => return Err(CallbackError::Log("not a string".into())),
        };
        Ok(Callback {
            payload,
            job_id,
            status,
            suites,
            log,
            metadata,
        })
    }

    /// The LAVA job id.
    pub fn job_id(&self) -> i64 {
        self.job_id
    }

    /// LAVA's legacy status code ([`status`]).
    pub fn status(&self) -> i64 {
        self.status
    }

    /// The job node's result: Complete → `pass`; Incomplete, Canceled, Canceling →
    /// `incomplete`; anything else `None`. A callback without a log is `incomplete` whatever
    /// its status (§5.3.2).
    pub fn job_result(&self) -> Option<&'static str> {
        if self.log.is_none() {
            return Some("incomplete");
        }
        match self.status {
            status::COMPLETE => Some("pass"),
            status::INCOMPLETE | status::CANCELED | status::CANCELING => Some("incomplete"),
            _ => None,
        }
    }

    /// The device that ran the job (`actual_device_id`).
    pub fn device(&self) -> Option<&str> {
        self.payload
            .get("actual_device_id")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty() && *d != "None")
    }

    /// `metadata.node_id` of the job definition, as written there.
    pub fn node_id(&self) -> Option<String> {
        self.meta("node_id").map(str::to_string)
    }

    /// A scalar of the job definition's `metadata` (`api_config_name`,
    /// `storage_config_name`, ...), as written (not resolved as a number or boolean).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// `health_string` (`Complete`, `Incomplete`, `Canceled`, ...).
    pub fn health_string(&self) -> Option<&str> {
        self.payload.get("health_string").and_then(Value::as_str)
    }

    /// Whether the callback carried a log (a non-blank `log`).
    pub fn has_log(&self) -> bool {
        self.log.is_some()
    }

    /// The parsed log, when there was one.
    pub fn log(&self) -> Option<&LavaLog> {
        self.log.as_ref()
    }

    /// The serial console as text (upstream's `log.txt.gz` content): empty without a log.
    pub fn target_log(&self) -> String {
        self.log
            .as_ref()
            .map(LavaLog::target_text)
            .unwrap_or_default()
    }

    /// The kept log entries as YAML (upstream's `lava-logs.yaml`): `[]` without a log.
    pub fn log_yaml(&self) -> String {
        self.log
            .as_ref()
            .map(LavaLog::to_yaml)
            .unwrap_or_else(|| "[]\n".to_string())
    }

    /// The payload to archive (`lava_callback.json.gz`): everything but `token`.
    pub fn stored_payload(&self) -> Value {
        let mut payload = self.payload.clone();
        payload.remove("token");
        Value::Object(payload)
    }

    /// The suites, in payload order.
    pub fn suites(&self) -> &[Suite] {
        &self.suites
    }

    /// Artifacts reported by an `upload` suite (`<n>_upload`): each passed case named
    /// `artifact-upload:<name>:<url>` gives `<name>: <url>` (a later case of the same name
    /// wins).
    pub fn upload_artifacts(&self) -> Map<String, Value> {
        let mut artifacts = Map::new();
        for suite in self.suites.iter().filter(|s| s.short_name() == "upload") {
            for case in &suite.cases {
                if case.result.as_deref() != Some("pass") {
                    continue;
                }
                let mut parts = case.name.splitn(3, ':');
                if let (Some("artifact-upload"), Some(name), Some(url)) =
                    (parts.next(), parts.next(), parts.next())
                    && !name.is_empty()
                    && !url.is_empty()
                {
                    artifacts.insert(name.to_string(), Value::String(url.to_string()));
                }
            }
        }
        artifacts
    }

    /// Why the job failed, from the `lava` suite's `job` case (`error_type`, `error_msg`).
    /// Without such a case: `Canceled` / [`CANCELED_BEFORE_START`] for a job cancelled
    /// before it started (status Canceled or Canceling: LAVA sends no log and no results
    /// then), else [`DEFAULT_ERROR_CODE`] / [`DEFAULT_ERROR_MSG`] as upstream. An error type
    /// LAVA does not document becomes [`DEFAULT_ERROR_CODE`] with the type kept in the
    /// message (the API accepts only known codes); a case without a type gets
    /// [`DEFAULT_ERROR_CODE`] too.
    pub fn failure(&self) -> Failure {
        let job_case = self
            .suites
            .iter()
            .filter(|s| s.name == "lava")
            .flat_map(|s| s.cases.iter())
            .rfind(|c| c.name == "job");
        let Some(case) = job_case else {
            if matches!(self.status, status::CANCELED | status::CANCELING) {
                // Cancelled before it started: no results at all, but the reason is known.
                return Failure {
                    code: "Canceled".into(),
                    message: Some(CANCELED_BEFORE_START.into()),
                };
            }
            return Failure {
                code: DEFAULT_ERROR_CODE.into(),
                message: Some(DEFAULT_ERROR_MSG.into()),
            };
        };
        match case.error_type.as_deref() {
            Some(t) if ERROR_TYPES.contains(&t) => Failure {
                code: t.to_string(),
                message: case.error_msg.clone(),
            },
            Some(t) => Failure {
                code: DEFAULT_ERROR_CODE.into(),
                message: Some(match &case.error_msg {
                    Some(m) => format!("{t}: {m}"),
                    None => t.to_string(),
                }),
            },
            None => Failure {
                code: DEFAULT_ERROR_CODE.into(),
                message: Some(
                    case.error_msg
                        .clone()
                        .unwrap_or_else(|| DEFAULT_ERROR_MSG.into()),
                ),
            },
        }
    }
}

/// `id` / `status`: an integer, or a string holding one.
fn integer(payload: &Map<String, Value>, key: &'static str) -> Result<i64, CallbackError> {
    let value = match payload.get(key) {
        None | Some(Value::Null) => return Err(CallbackError::Missing(key)),
        Some(v) => v,
    };
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        let mut text = value.to_string();
        if text.len() > 100 {
            let cut = (0..=100)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
        CallbackError::NotInteger { key, value: text }
    })
}

fn parse_suites(results: &Map<String, Value>) -> Result<Vec<Suite>, CallbackError> {
    let mut suites = Vec::with_capacity(results.len());
    for (name, value) in results {
        let cases = match value {
            Value::String(text) => {
                results::parse_text(text).map_err(|problem| CallbackError::Suite {
                    suite: name.clone(),
                    problem,
                })?
            }
            Value::Array(items) => results::parse_json(items),
            Value::Null => Vec::new(),
            other => {
                return Err(CallbackError::Suite {
                    suite: name.clone(),
                    problem: format!("a JSON {}", json_type(other)),
                });
            }
        };
        suites.push(Suite {
            name: name.clone(),
            cases,
        });
    }
    Ok(suites)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn ids_may_be_digit_strings() {
        let cb = Callback::parse(&body(
            json!({"id": "42", "status": " 3 ", "log": "- {lvl: target, msg: x}"}),
        ))
        .unwrap();
        assert_eq!((cb.job_id(), cb.status()), (42, 3));
        assert_eq!(cb.job_result(), Some("incomplete"));
    }

    #[test]
    fn status_mapping() {
        for (status, expected) in [
            (0, None),
            (1, None),
            (2, Some("pass")),
            (3, Some("incomplete")),
            (4, Some("incomplete")),
            (5, Some("incomplete")),
            (9, None),
        ] {
            let cb =
                Callback::parse(&body(json!({"id": 1, "status": status, "log": "[]"}))).unwrap();
            assert_eq!(cb.job_result(), expected, "{status}");
        }
        let no_log = Callback::parse(&body(json!({"id": 1, "status": 2}))).unwrap();
        assert_eq!(no_log.job_result(), Some("incomplete"));
        assert!(!no_log.has_log());
    }

    #[test]
    fn errors_are_precise() {
        let err = |b: &[u8]| Callback::parse(b).unwrap_err().to_string();
        assert!(err(b"{").starts_with("callback: not JSON: "));
        assert_eq!(err(b"[1]"), "callback: not a JSON object");
        assert_eq!(err(&body(json!({"status": 2}))), "callback: id: missing");
        assert_eq!(
            err(&body(json!({"id": "x1", "status": 2}))),
            "callback: id: not an integer: \"x1\""
        );
        assert_eq!(err(&body(json!({"id": 1}))), "callback: status: missing");
        assert_eq!(
            err(&body(json!({"id": 1, "status": 2.5}))),
            "callback: status: not an integer: 2.5"
        );
        assert_eq!(
            err(&body(json!({"id": 1, "status": 2, "results": []}))),
            "callback: results: not an object"
        );
        assert!(
            err(&body(
                json!({"id": 1, "status": 2, "results": {"0_x": "a: 1"}})
            ))
            .starts_with("callback: results.0_x: not a YAML list: ")
        );
        assert_eq!(
            err(&body(json!({"id": 1, "status": 2, "results": {"0_x": 3}}))),
            "callback: results.0_x: not a YAML list: a JSON number"
        );
        assert!(
            err(&body(json!({"id": 1, "status": 2, "log": "a: 1"})))
                .starts_with("callback: log: not a YAML list: ")
        );
        assert!(
            err(&body(json!({"id": 1, "status": 2, "definition": "a: ["})))
                .starts_with("callback: definition: not YAML: ")
        );
        assert_eq!(
            err(&body(json!({"id": 1, "status": 2, "definition": 1}))),
            "callback: definition: not a string"
        );
        let long = "9".repeat(300);
        assert!(err(&body(json!({"id": long, "status": 2}))).ends_with('…'));
    }

    #[test]
    fn device_and_metadata() {
        let cb = Callback::parse(&body(json!({
            "id": 1, "status": 2, "actual_device_id": "qemu-01", "token": "s3cret",
            "definition": "metadata: {node_id: '65a1', api_config_name: staging, n: 3}\n",
        })))
        .unwrap();
        assert_eq!(cb.device(), Some("qemu-01"));
        assert_eq!(cb.node_id().as_deref(), Some("65a1"));
        assert_eq!(cb.meta("api_config_name"), Some("staging"));
        assert_eq!(cb.meta("n"), Some("3"));
        assert!(cb.stored_payload().get("token").is_none());
        assert_eq!(cb.stored_payload()["actual_device_id"], "qemu-01");
        assert!(!format!("{cb:?}").contains("s3cret"));
        for none in [json!(null), json!("None"), json!("")] {
            let cb = Callback::parse(&body(
                json!({"id": 1, "status": 4, "actual_device_id": none}),
            ))
            .unwrap();
            assert_eq!(cb.device(), None);
        }
    }

    #[test]
    fn infrastructure_classification() {
        for code in ERROR_TYPES {
            assert_eq!(is_infrastructure_error(code), code != "Test", "{code}");
        }
        assert!(!is_infrastructure_error("node_timeout"));
    }
}
