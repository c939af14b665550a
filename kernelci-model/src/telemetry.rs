//! Pipeline telemetry (upstream's `telemetry` collection, spec §2.8): one event per runtime
//! error, job submission, job skip, job result or test result. This module validates a
//! posted event, renders the wire shape, and computes the aggregations behind
//! `/telemetry/stats` and `/telemetry/anomalies` over a slice of events.

use std::collections::BTreeMap;
use std::fmt;

use chrono::TimeDelta;
use serde_json::{Map, Value};

use crate::id::ObjectId;
use crate::time::{self, Timestamp};

/// How long upstream keeps an event (a TTL index on `ts`).
pub const RETENTION_DAYS: i64 = 14;

/// What a telemetry event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TelemetryKind {
    /// A runtime (lab) failed to answer or to accept work.
    RuntimeError,
    /// A job was submitted to a runtime.
    JobSubmission,
    /// A job was not submitted (e.g. the runtime was offline).
    JobSkip,
    /// A job finished.
    JobResult,
    /// A test inside a job finished.
    TestResult,
}

impl TelemetryKind {
    /// All kinds, in upstream order.
    pub const ALL: [TelemetryKind; 5] = [
        TelemetryKind::RuntimeError,
        TelemetryKind::JobSubmission,
        TelemetryKind::JobSkip,
        TelemetryKind::JobResult,
        TelemetryKind::TestResult,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TelemetryKind::RuntimeError => "runtime_error",
            TelemetryKind::JobSubmission => "job_submission",
            TelemetryKind::JobSkip => "job_skip",
            TelemetryKind::JobResult => "job_result",
            TelemetryKind::TestResult => "test_result",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<TelemetryKind> {
        TelemetryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One telemetry event, fields in upstream order.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryEvent {
    /// Assigned by the server when the event is stored.
    pub id: ObjectId,
    /// When it happened (naive UTC; defaults to the time it was posted).
    pub ts: Timestamp,
    /// What it reports.
    pub kind: TelemetryKind,
    /// The runtime (lab) name; `lab` in stats and anomalies is this value.
    pub runtime: String,
    /// Device type (platform).
    pub device_type: Option<String>,
    /// Physical device (board instance) id.
    pub device_id: Option<String>,
    /// Job name.
    pub job_name: Option<String>,
    /// Test name.
    pub test_name: Option<String>,
    /// The runtime's job id.
    pub job_id: Option<String>,
    /// The Maestro node the event is about.
    pub node_id: Option<String>,
    /// Kernel tree.
    pub tree: Option<String>,
    /// Kernel branch.
    pub branch: Option<String>,
    /// CPU architecture.
    pub arch: Option<String>,
    /// `pass`, `fail`, `skip`, `incomplete` (free text).
    pub result: Option<String>,
    /// The failure is the infrastructure's, not the kernel's.
    pub is_infra_error: bool,
    /// Error category.
    pub error_type: Option<String>,
    /// Error message.
    pub error_msg: Option<String>,
    /// Retry number of the job.
    pub retry: i64,
    /// Anything else the sender wants to keep.
    pub extra: Map<String, Value>,
}

/// The keys of an event on the wire, in upstream order.
pub const EVENT_KEYS: [&str; 19] = [
    "id",
    "ts",
    "kind",
    "runtime",
    "device_type",
    "device_id",
    "job_name",
    "test_name",
    "job_id",
    "node_id",
    "tree",
    "branch",
    "arch",
    "result",
    "is_infra_error",
    "error_type",
    "error_msg",
    "retry",
    "extra",
];

/// A posted event was refused: every problem found, each as (field, message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidTelemetryEvent {
    /// (field, message) pairs in field order; the field is empty for the whole event.
    pub errors: Vec<(String, String)>,
}

impl fmt::Display for InvalidTelemetryEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} validation error{} for TelemetryEvent",
            if n == 1 { "" } else { "s" }
        )?;
        for (field, msg) in &self.errors {
            if field.is_empty() {
                write!(f, "\n{msg}")?;
            } else {
                write!(f, "\n{field}: {msg}")?;
            }
        }
        Ok(())
    }
}

const MSG_STR: &str = "Input should be a valid string";
const MSG_NUL: &str = "String should not contain NUL characters";

/// Collects field errors while reading one event object.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<(String, String)>,
}

impl Reader<'_> {
    fn fail(&mut self, field: &str, msg: impl Into<String>) {
        self.errors.push((field.to_string(), msg.into()));
    }

    /// A present, non-null value.
    fn get(&self, field: &str) -> Option<&Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn required_str(&mut self, field: &str) -> Option<String> {
        match self.obj.get(field) {
            None => {
                self.fail(field, "Field required");
                None
            }
            Some(v) => self.string(field, v),
        }
    }

    fn optional_str(&mut self, field: &str) -> Option<String> {
        let v = self.get(field)?.clone();
        self.string(field, &v)
    }

    fn string(&mut self, field: &str, v: &Value) -> Option<String> {
        match v.as_str() {
            Some(s) if s.contains('\0') => self.fail(field, MSG_NUL),
            Some(s) => return Some(s.to_string()),
            None => self.fail(field, MSG_STR),
        }
        None
    }

    fn kind(&mut self) -> Option<TelemetryKind> {
        let raw = self.required_str("kind")?;
        let kind = TelemetryKind::parse(&raw);
        if kind.is_none() {
            self.fail(
                "kind",
                "Input should be 'runtime_error', 'job_submission', 'job_skip', 'job_result' \
                 or 'test_result'",
            );
        }
        kind
    }

    fn ts(&mut self, now: Timestamp) -> Timestamp {
        let Some(v) = self.get("ts") else {
            return now;
        };
        match parse_ts(v) {
            Ok(ts) => ts,
            Err(msg) => {
                self.fail("ts", msg);
                now
            }
        }
    }

    fn bool(&mut self, field: &str) -> bool {
        let Some(v) = self.get(field) else {
            return false;
        };
        lax_bool(v).unwrap_or_else(|| {
            self.fail(field, "Input should be a valid boolean");
            false
        })
    }

    fn int(&mut self, field: &str) -> i64 {
        let Some(v) = self.get(field) else {
            return 0;
        };
        lax_int(v).unwrap_or_else(|msg| {
            self.fail(field, msg);
            0
        })
    }

    fn object(&mut self, field: &str) -> Map<String, Value> {
        match self.get(field) {
            None => Map::new(),
            Some(Value::Object(m)) if contains_nul(&Value::Object(m.clone())) => {
                self.fail(field, MSG_NUL);
                Map::new()
            }
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                self.fail(field, "Input should be a valid dictionary");
                Map::new()
            }
        }
    }
}

/// Any string (key or value) inside `v` holds a NUL character (PostgreSQL refuses those).
fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// A timestamp as pydantic reads one: an ISO 8601 string, or Unix seconds (milliseconds
/// past 2e10) as a number.
fn parse_ts(v: &Value) -> Result<Timestamp, String> {
    const MSG: &str = "Input should be a valid datetime";
    match v {
        Value::String(s) => time::parse_iso(s).map_err(|e| format!("{MSG}, {e}")),
        Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(|| MSG.to_string())?;
            let micros = if secs.abs() > 2e10 {
                secs * 1e3
            } else {
                secs * 1e6
            };
            if !micros.is_finite() || micros.abs() > 8.0e18 {
                return Err(MSG.into());
            }
            Ok(time::from_micros(micros.round() as i64))
        }
        _ => Err(MSG.into()),
    }
}

/// A boolean the way pydantic's lax mode reads one.
fn lax_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An integer the way pydantic's lax mode reads one (whole floats and numeric strings too).
fn lax_int(v: &Value) -> Result<i64, String> {
    const MSG: &str = "Input should be a valid integer";
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(x) if x.fract() != 0.0 => {
                    Err(format!("{MSG}, got a number with a fractional part"))
                }
                Some(x) if x.abs() < 9.0e18 => Ok(x as i64),
                _ => Err(MSG.into()),
            }
        }
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{MSG}, unable to parse string as an integer")),
        _ => Err(MSG.into()),
    }
}

impl TelemetryEvent {
    /// Validate one posted event. Missing `ts` is `now`; `is_infra_error`, `retry` and
    /// `extra` default to false, 0 and {}; unknown keys (and a given `id`) are dropped and
    /// a fresh id is assigned. Every problem is reported.
    pub fn from_json(v: &Value, now: Timestamp) -> Result<TelemetryEvent, InvalidTelemetryEvent> {
        let Some(obj) = v.as_object() else {
            return Err(InvalidTelemetryEvent {
                errors: vec![(String::new(), "Input should be a valid dictionary".into())],
            });
        };
        let mut r = Reader {
            obj,
            errors: Vec::new(),
        };
        let ts = r.ts(now);
        let kind = r.kind();
        let runtime = r.required_str("runtime");
        let event = TelemetryEvent {
            id: ObjectId::generate(),
            ts,
            kind: kind.unwrap_or(TelemetryKind::RuntimeError),
            runtime: runtime.unwrap_or_default(),
            device_type: r.optional_str("device_type"),
            device_id: r.optional_str("device_id"),
            job_name: r.optional_str("job_name"),
            test_name: r.optional_str("test_name"),
            job_id: r.optional_str("job_id"),
            node_id: r.optional_str("node_id"),
            tree: r.optional_str("tree"),
            branch: r.optional_str("branch"),
            arch: r.optional_str("arch"),
            result: r.optional_str("result"),
            is_infra_error: r.bool("is_infra_error"),
            error_type: r.optional_str("error_type"),
            error_msg: r.optional_str("error_msg"),
            retry: r.int("retry"),
            extra: r.object("extra"),
        };
        if r.errors.is_empty() {
            Ok(event)
        } else {
            Err(InvalidTelemetryEvent { errors: r.errors })
        }
    }

    /// The wire shape: every key of [`EVENT_KEYS`] in order, `null` for absent values.
    pub fn to_json(&self) -> Value {
        let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
        let mut m = Map::new();
        m.insert("id".into(), self.id.to_string().into());
        m.insert("ts".into(), time::format(&self.ts).into());
        m.insert("kind".into(), self.kind.as_str().into());
        m.insert("runtime".into(), self.runtime.clone().into());
        m.insert("device_type".into(), opt(&self.device_type));
        m.insert("device_id".into(), opt(&self.device_id));
        m.insert("job_name".into(), opt(&self.job_name));
        m.insert("test_name".into(), opt(&self.test_name));
        m.insert("job_id".into(), opt(&self.job_id));
        m.insert("node_id".into(), opt(&self.node_id));
        m.insert("tree".into(), opt(&self.tree));
        m.insert("branch".into(), opt(&self.branch));
        m.insert("arch".into(), opt(&self.arch));
        m.insert("result".into(), opt(&self.result));
        m.insert("is_infra_error".into(), self.is_infra_error.into());
        m.insert("error_type".into(), opt(&self.error_type));
        m.insert("error_msg".into(), opt(&self.error_msg));
        m.insert("retry".into(), self.retry.into());
        m.insert("extra".into(), Value::Object(self.extra.clone()));
        Value::Object(m)
    }
}

// --- aggregation -------------------------------------------------------------------------

/// Result counters of a group of events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResultCounts {
    /// Events in the group.
    pub total: i64,
    /// `result == "pass"`.
    pub pass: i64,
    /// `result == "fail"`.
    pub fail: i64,
    /// `result == "incomplete"`.
    pub incomplete: i64,
    /// `result == "skip"`.
    pub skip: i64,
    /// `is_infra_error` set.
    pub infra_error: i64,
}

impl ResultCounts {
    fn add(&mut self, e: &TelemetryEvent) {
        self.total += 1;
        match e.result.as_deref() {
            Some("pass") => self.pass += 1,
            Some("fail") => self.fail += 1,
            Some("incomplete") => self.incomplete += 1,
            Some("skip") => self.skip += 1,
            _ => {}
        }
        if e.is_infra_error {
            self.infra_error += 1;
        }
    }

    /// `infra_error / total`, rounded to 3 decimals.
    pub fn infra_rate(&self) -> f64 {
        rate(self.infra_error, self.total)
    }

    /// `(fail + incomplete) / total`, rounded to 3 decimals.
    pub fn fail_rate(&self) -> f64 {
        rate(self.fail + self.incomplete, self.total)
    }

    fn write_json(&self, m: &mut Map<String, Value>) {
        m.insert("total".into(), self.total.into());
        m.insert("pass".into(), self.pass.into());
        m.insert("fail".into(), self.fail.into());
        m.insert("incomplete".into(), self.incomplete.into());
        m.insert("skip".into(), self.skip.into());
        m.insert("infra_error".into(), self.infra_error.into());
    }
}

/// `n / total` rounded to 3 decimals (half up, computed exactly); 0 when `total` is 0.
pub fn rate(n: i64, total: i64) -> f64 {
    if total <= 0 {
        return 0.0;
    }
    let (n, total) = (i128::from(n), i128::from(total));
    let thousandths = (2000 * n + total) / (2 * total);
    thousandths as f64 / 1000.0
}

/// A field `/telemetry/stats` can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupField {
    /// `runtime`.
    Runtime,
    /// `lab`: the runtime, under another key.
    Lab,
    /// `device_type`.
    DeviceType,
    /// `device_id`.
    DeviceId,
    /// `job_name`.
    JobName,
    /// `tree`.
    Tree,
    /// `branch`.
    Branch,
    /// `arch`.
    Arch,
    /// `kind`.
    Kind,
    /// `error_type`.
    ErrorType,
}

impl GroupField {
    /// All fields, in upstream order.
    pub const ALL: [GroupField; 10] = [
        GroupField::Runtime,
        GroupField::Lab,
        GroupField::DeviceType,
        GroupField::DeviceId,
        GroupField::JobName,
        GroupField::Tree,
        GroupField::Branch,
        GroupField::Arch,
        GroupField::Kind,
        GroupField::ErrorType,
    ];

    /// The query and response key.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupField::Runtime => "runtime",
            GroupField::Lab => "lab",
            GroupField::DeviceType => "device_type",
            GroupField::DeviceId => "device_id",
            GroupField::JobName => "job_name",
            GroupField::Tree => "tree",
            GroupField::Branch => "branch",
            GroupField::Arch => "arch",
            GroupField::Kind => "kind",
            GroupField::ErrorType => "error_type",
        }
    }

    /// Parse a query key.
    pub fn parse(s: &str) -> Option<GroupField> {
        GroupField::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The value of this field in an event.
    pub fn value(self, e: &TelemetryEvent) -> Option<&str> {
        match self {
            GroupField::Runtime | GroupField::Lab => Some(&e.runtime),
            GroupField::DeviceType => e.device_type.as_deref(),
            GroupField::DeviceId => e.device_id.as_deref(),
            GroupField::JobName => e.job_name.as_deref(),
            GroupField::Tree => e.tree.as_deref(),
            GroupField::Branch => e.branch.as_deref(),
            GroupField::Arch => e.arch.as_deref(),
            GroupField::Kind => Some(e.kind.as_str()),
            GroupField::ErrorType => e.error_type.as_deref(),
        }
    }
}

/// Parse `group_by` (a comma list; blanks around names ignored; duplicates kept once).
/// Errors carry upstream's `detail` text.
pub fn parse_group_by(raw: Option<&str>) -> Result<Vec<GroupField>, String> {
    let names: Vec<&str> = raw
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Err("'group_by' parameter is required".into());
    }
    let mut invalid: Vec<&str> = Vec::new();
    let mut fields = Vec::new();
    for name in names {
        match GroupField::parse(name) {
            Some(f) if !fields.contains(&f) => fields.push(f),
            Some(_) => {}
            None if !invalid.contains(&name) => invalid.push(name),
            None => {}
        }
    }
    if invalid.is_empty() {
        Ok(fields)
    } else {
        Err(format!(
            "Invalid group_by fields: {{{}}}",
            invalid
                .iter()
                .map(|s| python_repr(s))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// A string as Python's `repr()` renders it (how upstream prints a set of names).
fn python_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// One row of `/telemetry/stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    /// The group: each field with its value (None = null), in `group_by` order.
    pub group: Vec<(GroupField, Option<String>)>,
    /// The counters.
    pub counts: ResultCounts,
}

impl StatsRow {
    /// `{<group keys>, total, pass, fail, incomplete, skip, infra_error}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (field, value) in &self.group {
            m.insert(
                field.as_str().into(),
                value.clone().map_or(Value::Null, Value::String),
            );
        }
        self.counts.write_json(&mut m);
        Value::Object(m)
    }
}

/// Group events by `group_by` and count results; sorted by total, descending (ties by the
/// group values, ascending, nulls first).
pub fn stats(events: &[TelemetryEvent], group_by: &[GroupField]) -> Vec<StatsRow> {
    let mut groups: BTreeMap<Vec<Option<&str>>, ResultCounts> = BTreeMap::new();
    for e in events {
        let key = group_by.iter().map(|f| f.value(e)).collect();
        groups.entry(key).or_default().add(e);
    }
    let mut rows: Vec<StatsRow> = groups
        .into_iter()
        .map(|(key, counts)| StatsRow {
            group: group_by
                .iter()
                .zip(key)
                .map(|(f, v)| (*f, v.map(str::to_string)))
                .collect(),
            counts,
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.counts.total));
    rows
}

/// The windows `/telemetry/anomalies` accepts, with their length in hours.
pub const WINDOWS: [(&str, i64); 6] = [
    ("1h", 1),
    ("3h", 3),
    ("6h", 6),
    ("12h", 12),
    ("24h", 24),
    ("48h", 48),
];

/// The default anomaly window.
pub const DEFAULT_WINDOW: &str = "6h";

/// Parse an anomaly window (`1h` ... `48h`). Errors carry upstream's `detail` text.
pub fn parse_window(s: &str) -> Result<TimeDelta, String> {
    WINDOWS
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, hours)| TimeDelta::hours(*hours))
        .ok_or_else(|| format!("Invalid window '{s}'. Use: 1h, 3h, 6h, 12h, 24h, 48h"))
}

/// What a result anomaly is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyScope {
    /// Per runtime and device type, over job and test results.
    DeviceType,
    /// Per physical device, over job results that name one.
    Device,
}

impl AnomalyScope {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyScope::DeviceType => "device_type",
            AnomalyScope::Device => "device",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<AnomalyScope> {
        [AnomalyScope::DeviceType, AnomalyScope::Device]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// The event kinds whose results count in this scope.
    pub fn result_kinds(self) -> &'static [TelemetryKind] {
        match self {
            AnomalyScope::DeviceType => &[TelemetryKind::JobResult, TelemetryKind::TestResult],
            AnomalyScope::Device => &[TelemetryKind::JobResult],
        }
    }

    fn includes(self, e: &TelemetryEvent) -> bool {
        self.result_kinds().contains(&e.kind)
            && (self == AnomalyScope::DeviceType
                || e.device_id.as_deref().is_some_and(|d| !d.is_empty()))
    }
}

/// The event kinds counted as error anomalies.
pub const ERROR_KINDS: [TelemetryKind; 2] = [TelemetryKind::RuntimeError, TelemetryKind::JobSkip];

/// The rules of `/telemetry/anomalies`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyRules {
    /// A group is anomalous when its infra or fail rate reaches this (0..1).
    pub threshold: f64,
    /// Groups (and error counts) below this size are ignored.
    pub min_total: i64,
    /// Grouping of result anomalies.
    pub scope: AnomalyScope,
}

/// A runtime/device type (or device) whose results look wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultAnomaly {
    /// Runtime (also reported as `lab`).
    pub runtime: String,
    /// Device type.
    pub device_type: Option<String>,
    /// The physical device (scope `device` only).
    pub device_id: Option<String>,
    /// The counters.
    pub counts: ResultCounts,
    /// `infra_error / total`, rounded to 3 decimals.
    pub infra_rate: f64,
    /// `(fail + incomplete) / total`, rounded to 3 decimals.
    pub fail_rate: f64,
    /// Time of the newest event.
    pub last_seen: Timestamp,
    /// Error type of the newest event.
    pub latest_error_type: Option<String>,
    /// Error message of the newest event.
    pub latest_error_msg: Option<String>,
}

impl ResultAnomaly {
    /// Nothing passed and everything failed or was incomplete.
    pub fn constant_failure(&self) -> bool {
        self.counts.pass == 0 && self.counts.fail + self.counts.incomplete == self.counts.total
    }

    /// Every event was an infrastructure error.
    pub fn constant_infra_failure(&self) -> bool {
        self.counts.infra_error == self.counts.total
    }

    /// The wire shape (`device_id` only in scope `device`).
    pub fn to_json(&self) -> Value {
        let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
        let mut m = Map::new();
        m.insert("runtime".into(), self.runtime.clone().into());
        m.insert("lab".into(), self.runtime.clone().into());
        m.insert("device_type".into(), opt(&self.device_type));
        if let Some(d) = &self.device_id {
            m.insert("device_id".into(), d.clone().into());
        }
        self.counts.write_json(&mut m);
        m.insert("infra_rate".into(), self.infra_rate.into());
        m.insert("fail_rate".into(), self.fail_rate.into());
        m.insert("constant_failure".into(), self.constant_failure().into());
        m.insert(
            "constant_infra_failure".into(),
            self.constant_infra_failure().into(),
        );
        m.insert("last_seen".into(), time::format(&self.last_seen).into());
        m.insert("latest_error_type".into(), opt(&self.latest_error_type));
        m.insert("latest_error_msg".into(), opt(&self.latest_error_msg));
        Value::Object(m)
    }
}

/// A group being accumulated: counters and the newest event so far.
struct Accumulator<'a> {
    counts: ResultCounts,
    newest: &'a TelemetryEvent,
}

/// Result anomalies among `events` (already limited to the window): the events of the
/// scope's kinds grouped by runtime and device type (and device), keeping groups of at least
/// `min_total` events whose infra or fail rate reaches `threshold` (compared after
/// rounding). Sorted by infra rate, then fail rate, descending (ties by group, ascending).
/// The newest event of a group is the one with the latest `ts`, the later one in `events`
/// on a tie.
pub fn result_anomalies(events: &[TelemetryEvent], rules: &AnomalyRules) -> Vec<ResultAnomaly> {
    let mut groups: BTreeMap<(&str, Option<&str>, Option<&str>), Accumulator> = BTreeMap::new();
    for e in events.iter().filter(|e| rules.scope.includes(e)) {
        let device = match rules.scope {
            AnomalyScope::Device => e.device_id.as_deref(),
            AnomalyScope::DeviceType => None,
        };
        let key = (e.runtime.as_str(), e.device_type.as_deref(), device);
        let acc = groups.entry(key).or_insert(Accumulator {
            counts: ResultCounts::default(),
            newest: e,
        });
        acc.counts.add(e);
        if e.ts >= acc.newest.ts {
            acc.newest = e;
        }
    }
    let mut out: Vec<ResultAnomaly> = groups
        .into_iter()
        .filter_map(|((runtime, device_type, device_id), acc)| {
            let anomaly = ResultAnomaly {
                runtime: runtime.to_string(),
                device_type: device_type.map(str::to_string),
                device_id: device_id.map(str::to_string),
                counts: acc.counts,
                infra_rate: acc.counts.infra_rate(),
                fail_rate: acc.counts.fail_rate(),
                last_seen: acc.newest.ts,
                latest_error_type: acc.newest.error_type.clone(),
                latest_error_msg: acc.newest.error_msg.clone(),
            };
            let anomalous =
                anomaly.infra_rate >= rules.threshold || anomaly.fail_rate >= rules.threshold;
            (acc.counts.total >= rules.min_total && anomalous).then_some(anomaly)
        })
        .collect();
    out.sort_by(|a, b| {
        b.infra_rate
            .total_cmp(&a.infra_rate)
            .then(b.fail_rate.total_cmp(&a.fail_rate))
    });
    out
}

/// A runtime that keeps reporting one kind of error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAnomaly {
    /// Runtime.
    pub runtime: String,
    /// Error type (None = null).
    pub error_type: Option<String>,
    /// How many runtime errors and job skips.
    pub count: i64,
}

impl ErrorAnomaly {
    /// `{runtime, error_type, count}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("runtime".into(), self.runtime.clone().into());
        m.insert(
            "error_type".into(),
            self.error_type.clone().map_or(Value::Null, Value::String),
        );
        m.insert("count".into(), self.count.into());
        Value::Object(m)
    }
}

/// Error anomalies among `events` (already limited to the window): runtime errors and job
/// skips grouped by runtime and error type, kept from `min_total` on, by count descending
/// (ties by group, ascending).
pub fn error_anomalies(events: &[TelemetryEvent], min_total: i64) -> Vec<ErrorAnomaly> {
    let mut groups: BTreeMap<(&str, Option<&str>), i64> = BTreeMap::new();
    for e in events.iter().filter(|e| ERROR_KINDS.contains(&e.kind)) {
        *groups
            .entry((e.runtime.as_str(), e.error_type.as_deref()))
            .or_default() += 1;
    }
    let mut out: Vec<ErrorAnomaly> = groups
        .into_iter()
        .filter(|(_, count)| *count >= min_total)
        .map(|((runtime, error_type), count)| ErrorAnomaly {
            runtime: runtime.to_string(),
            error_type: error_type.map(str::to_string),
            count,
        })
        .collect();
    out.sort_by_key(|a| std::cmp::Reverse(a.count));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        time::parse_iso("2026-07-21T01:00:00").unwrap()
    }

    fn ev(v: Value) -> TelemetryEvent {
        TelemetryEvent::from_json(&v, now()).unwrap()
    }

    fn err(v: Value) -> String {
        TelemetryEvent::from_json(&v, now())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_with_defaults_and_drops_unknown_keys() {
        let e = ev(json!({"kind": "job_result", "runtime": "lava-x", "bogus": 1, "id": "x"}));
        assert_eq!(e.ts, now());
        assert_eq!(e.kind, TelemetryKind::JobResult);
        assert!(!e.is_infra_error);
        assert_eq!(e.retry, 0);
        assert!(e.extra.is_empty());
        let v = e.to_json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, EVENT_KEYS);
        assert_eq!(v["ts"], "2026-07-21T01:00:00");
        assert_eq!(v["device_type"], Value::Null);
        assert_eq!(v["extra"], json!({}));
        assert_ne!(v["id"], "x");
    }

    #[test]
    fn parses_every_field() {
        let e = ev(json!({
            "ts": "2026-07-20T10:00:00.5+02:00", "kind": "test_result", "runtime": "r",
            "device_type": "dt", "device_id": "d", "job_name": "j", "test_name": "t",
            "job_id": "1", "node_id": "n", "tree": "mainline", "branch": "master",
            "arch": "arm64", "result": "fail", "is_infra_error": "yes", "error_type": "E",
            "error_msg": "m", "retry": "2", "extra": {"a": [1]}
        }));
        assert_eq!(time::format(&e.ts), "2026-07-20T08:00:00.500000");
        assert!(e.is_infra_error);
        assert_eq!(e.retry, 2);
        assert_eq!(e.result.as_deref(), Some("fail"));
        assert_eq!(e.extra["a"], json!([1]));
        let e = ev(
            json!({"kind": "job_skip", "runtime": "r", "ts": 1_700_000_000,
                           "retry": 3.0, "is_infra_error": 1, "extra": null}),
        );
        assert_eq!(time::format(&e.ts), "2023-11-14T22:13:20");
        assert_eq!((e.retry, e.is_infra_error), (3, true));
    }

    #[test]
    fn reports_every_problem_in_field_order() {
        assert_eq!(
            err(json!({"kind": "bogus", "retry": 1.5, "extra": [], "arch": 3})),
            "5 validation errors for TelemetryEvent\n\
             kind: Input should be 'runtime_error', 'job_submission', 'job_skip', \
             'job_result' or 'test_result'\n\
             runtime: Field required\n\
             arch: Input should be a valid string\n\
             retry: Input should be a valid integer, got a number with a fractional part\n\
             extra: Input should be a valid dictionary"
        );
        assert_eq!(
            err(json!({"kind": null, "runtime": "r", "ts": "yesterday"})),
            "2 validation errors for TelemetryEvent\n\
             ts: Input should be a valid datetime, Invalid isoformat string: 'yesterday'\n\
             kind: Input should be a valid string"
        );
        assert_eq!(
            err(json!({"kind": "job_result", "runtime": "r", "is_infra_error": "maybe"})),
            "1 validation error for TelemetryEvent\nis_infra_error: Input should be a valid boolean"
        );
        assert_eq!(
            err(json!([1])),
            "1 validation error for TelemetryEvent\nInput should be a valid dictionary"
        );
        assert_eq!(
            err(json!({"kind": "job_result", "runtime": "a\u{0}b", "extra": {"k": "\u{0}"}})),
            "2 validation errors for TelemetryEvent\n\
             runtime: String should not contain NUL characters\n\
             extra: String should not contain NUL characters"
        );
        assert!(
            err(json!({"kind": "job_result", "runtime": "r", "retry": "x"})).contains(
                "retry: Input should be a valid integer, unable to parse string as an integer"
            )
        );
    }

    fn result(runtime: &str, dt: &str, dev: Option<&str>, res: &str, infra: bool) -> Value {
        json!({"kind": "job_result", "runtime": runtime, "device_type": dt, "device_id": dev,
               "result": res, "is_infra_error": infra})
    }

    #[test]
    fn group_by_parsing() {
        assert_eq!(
            parse_group_by(Some("lab, device_id,lab")),
            Ok(vec![GroupField::Lab, GroupField::DeviceId])
        );
        for raw in [None, Some(""), Some(" , ")] {
            assert_eq!(
                parse_group_by(raw),
                Err("'group_by' parameter is required".into())
            );
        }
        assert_eq!(
            parse_group_by(Some("runtime,foo,bar,foo")),
            Err("Invalid group_by fields: {'foo', 'bar'}".into())
        );
        assert_eq!(
            parse_group_by(Some("it's")),
            Err("Invalid group_by fields: {\"it's\"}".into())
        );
    }

    #[test]
    fn stats_group_count_and_sort() {
        let mut events: Vec<TelemetryEvent> = [
            result("a", "x", None, "pass", false),
            result("b", "x", None, "fail", false),
            result("b", "y", None, "incomplete", true),
            result("b", "y", None, "skip", false),
            json!({"kind": "runtime_error", "runtime": "a", "error_type": "online_check"}),
        ]
        .into_iter()
        .map(ev)
        .collect();
        let rows = stats(&events, &[GroupField::Lab]);
        let json: Vec<Value> = rows.iter().map(StatsRow::to_json).collect();
        assert_eq!(
            json,
            vec![
                json!({"lab": "b", "total": 3, "pass": 0, "fail": 1, "incomplete": 1,
                       "skip": 1, "infra_error": 1}),
                json!({"lab": "a", "total": 2, "pass": 1, "fail": 0, "incomplete": 0,
                       "skip": 0, "infra_error": 0}),
            ]
        );
        events.truncate(4);
        let rows = stats(&events, &[GroupField::DeviceType, GroupField::Runtime]);
        let keys: Vec<Value> = rows.iter().map(StatsRow::to_json).collect();
        assert_eq!(keys[0]["device_type"], "y");
        assert_eq!(keys[0]["total"], 2);
        // Ties keep the group order: (x, a) before (x, b).
        assert_eq!(
            (&keys[1]["runtime"], &keys[2]["runtime"]),
            (&json!("a"), &json!("b"))
        );
        let rows = stats(&events, &[GroupField::DeviceId]);
        assert_eq!(rows[0].to_json()["device_id"], Value::Null);
    }

    #[test]
    fn rates_round_to_three_decimals() {
        assert_eq!(rate(2, 3), 0.667);
        assert_eq!(rate(1, 3), 0.333);
        assert_eq!(rate(1, 2000), 0.001);
        assert_eq!(rate(3, 3), 1.0);
        assert_eq!(rate(0, 0), 0.0);
    }

    #[test]
    fn windows() {
        assert_eq!(parse_window("48h"), Ok(TimeDelta::hours(48)));
        assert_eq!(
            parse_window("2h"),
            Err("Invalid window '2h'. Use: 1h, 3h, 6h, 12h, 24h, 48h".into())
        );
    }

    #[test]
    fn device_anomalies_match_upstream_example() {
        let mut events = Vec::new();
        for (i, msg) in [
            "old",
            "older",
            "bootloader-commands timed out after 180 seconds",
        ]
        .iter()
        .enumerate()
        {
            let mut v = result("lava-test", "board", Some("board-01"), "incomplete", true);
            v["ts"] = json!(format!("2026-07-21T01:2{i}:01.322"));
            v["error_type"] = json!("Infrastructure");
            v["error_msg"] = json!(msg);
            events.push(ev(v));
        }
        // Not counted in scope device: a test result, and a job without device id.
        events.push(ev(json!({"kind": "test_result", "runtime": "lava-test",
                              "device_type": "board", "device_id": "board-01", "result": "pass"})));
        events.push(ev(result("lava-test", "board", Some(""), "pass", false)));
        let rules = AnomalyRules {
            threshold: 1.0,
            min_total: 3,
            scope: AnomalyScope::Device,
        };
        let found = result_anomalies(&events, &rules);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_json(),
            json!({"runtime": "lava-test", "lab": "lava-test", "device_type": "board",
                   "device_id": "board-01", "total": 3, "pass": 0, "fail": 0,
                   "incomplete": 3, "skip": 0, "infra_error": 3, "infra_rate": 1.0,
                   "fail_rate": 1.0, "constant_failure": true, "constant_infra_failure": true,
                   "last_seen": "2026-07-21T01:22:01.322000",
                   "latest_error_type": "Infrastructure",
                   "latest_error_msg": "bootloader-commands timed out after 180 seconds"})
        );
        // Scope device_type counts the test result and the job without a device id.
        let rules = AnomalyRules {
            scope: AnomalyScope::DeviceType,
            threshold: 0.5,
            ..rules
        };
        let found = result_anomalies(&events, &rules);
        assert_eq!(found.len(), 1);
        let v = found[0].to_json();
        assert_eq!((&v["total"], &v["infra_rate"]), (&json!(5), &json!(0.6)));
        assert_eq!(v["constant_failure"], false);
        assert!(v.get("device_id").is_none());
    }

    #[test]
    fn anomalies_threshold_min_total_and_order() {
        let mut events = Vec::new();
        for _ in 0..3 {
            events.push(ev(result("a", "x", None, "fail", false)));
            events.push(ev(result("b", "y", None, "pass", true)));
            events.push(ev(result("c", "z", None, "pass", false)));
        }
        events.push(ev(result("d", "w", None, "fail", true)));
        let rules = AnomalyRules {
            threshold: 0.5,
            min_total: 3,
            scope: AnomalyScope::DeviceType,
        };
        let found = result_anomalies(&events, &rules);
        let names: Vec<&str> = found.iter().map(|a| a.runtime.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert!(found[1].constant_failure());
        assert!(!found[0].constant_failure());
        assert!(found[0].constant_infra_failure());
        let rules = AnomalyRules {
            min_total: 1,
            ..rules
        };
        let names: Vec<String> = result_anomalies(&events, &rules)
            .into_iter()
            .map(|a| a.runtime)
            .collect();
        assert_eq!(names, ["d", "b", "a"]);
    }

    #[test]
    fn error_anomalies_count_runtime_errors_and_skips() {
        let mut events = Vec::new();
        for kind in ["runtime_error", "job_skip", "runtime_error", "job_result"] {
            events.push(ev(
                json!({"kind": kind, "runtime": "lava-x", "error_type": "online_check"}),
            ));
        }
        events.push(ev(json!({"kind": "runtime_error", "runtime": "lava-y"})));
        let found: Vec<Value> = error_anomalies(&events, 1)
            .iter()
            .map(ErrorAnomaly::to_json)
            .collect();
        assert_eq!(
            found,
            vec![
                json!({"runtime": "lava-x", "error_type": "online_check", "count": 3}),
                json!({"runtime": "lava-y", "error_type": null, "count": 1}),
            ]
        );
        assert_eq!(error_anomalies(&events, 4), vec![]);
    }
}
