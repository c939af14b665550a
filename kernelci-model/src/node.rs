//! The node: one record in the tree checkout -> kbuild -> job/test, with the 23 keys every
//! upstream response carries, its kinds, states, results and the rules for writing it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{FieldError, InputError, Loc};
use crate::id::ObjectId;
use crate::time::{self, Timestamp};

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A git checkout of a tree at one commit (the root of a tree).
    Checkout,
    /// A kernel build.
    Kbuild,
    /// A test case or suite result.
    Test,
    /// A scheduled job (boot, test plan) whose children are tests.
    Job,
    /// A post-processing step (e.g. coverage reports).
    Process,
    /// A regression between a passing and a failing node.
    Regression,
}

impl Kind {
    /// All kinds, in documentation order.
    pub const ALL: [Kind; 6] = [
        Kind::Checkout,
        Kind::Kbuild,
        Kind::Test,
        Kind::Job,
        Kind::Process,
        Kind::Regression,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Checkout => "checkout",
            Kind::Kbuild => "kbuild",
            Kind::Test => "test",
            Kind::Job => "job",
            Kind::Process => "process",
            Kind::Regression => "regression",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Scheduled, no result yet.
    Running,
    /// Succeeded; children may be created.
    Available,
    /// Holdoff expired; waiting for children.
    Closing,
    /// Final.
    Done,
}

impl State {
    /// All states.
    pub const ALL: [State; 4] = [
        State::Running,
        State::Available,
        State::Closing,
        State::Done,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Available => "available",
            State::Closing => "closing",
            State::Done => "done",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether PUT/PATCH may move a node from `self` to `next` (same state is always allowed).
    pub fn can_transition_to(self, next: State) -> bool {
        use State::*;
        self == next
            || matches!(
                (self, next),
                (Running, Available | Closing | Done)
                    | (Available, Closing | Done)
                    | (Closing, Done)
            )
    }
}

/// The outcome of a node, when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeResult {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Skipped.
    Skip,
    /// Did not complete (infrastructure error, timeout...).
    Incomplete,
}

impl NodeResult {
    /// All results.
    pub const ALL: [NodeResult; 4] = [
        NodeResult::Pass,
        NodeResult::Fail,
        NodeResult::Skip,
        NodeResult::Incomplete,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeResult::Pass => "pass",
            NodeResult::Fail => "fail",
            NodeResult::Skip => "skip",
            NodeResult::Incomplete => "incomplete",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<NodeResult> {
        NodeResult::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How long a new node may stay unfinished before the pipeline times it out.
pub const DEFAULT_TIMEOUT_HOURS: i64 = 6;

/// A stored node. Serializes to exactly the 23 upstream keys, in upstream order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Identifier.
    pub id: ObjectId,
    /// Kind.
    pub kind: Kind,
    /// Name (e.g. `baseline-arm64`).
    pub name: String,
    /// Names from the root down to this node.
    pub path: Vec<String>,
    /// Grouping label (test suite).
    pub group: Option<String>,
    /// Parent node.
    pub parent: Option<ObjectId>,
    /// Life-cycle state.
    pub state: State,
    /// Outcome.
    pub result: Option<NodeResult>,
    /// Named artifact URLs.
    pub artifacts: Option<BTreeMap<String, String>>,
    /// Kind-specific data, stored as sent.
    pub data: Option<Value>,
    /// Free-form debug data.
    pub debug: Option<Value>,
    /// Jobs the scheduler may create under this node.
    pub jobfilter: Option<Vec<String>>,
    /// Platforms tests may run on.
    pub platform_filter: Option<Vec<String>>,
    /// Creation time.
    #[serde(with = "ts")]
    pub created: Timestamp,
    /// Last update time.
    #[serde(with = "ts")]
    pub updated: Timestamp,
    /// Deadline.
    #[serde(with = "ts")]
    pub timeout: Timestamp,
    /// Minimum time to stay available.
    #[serde(with = "ts_opt")]
    pub holdoff: Option<Timestamp>,
    /// Owning username.
    pub owner: Option<String>,
    /// Submitter label.
    pub submitter: Option<String>,
    /// Identifier shared by every node of one checkout tree.
    pub treeid: Option<String>,
    /// Groups granted edit rights.
    pub user_groups: Vec<String>,
    /// KCIDB bridge bookkeeping.
    pub processed_by_kcidb_bridge: bool,
    /// Number of retries.
    pub retry_counter: i64,
}

mod ts {
    use super::*;
    pub fn serialize<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time::format(t))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        time::parse_iso(&s).map_err(serde::de::Error::custom)
    }
}

mod ts_opt {
    use super::*;
    pub fn serialize<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&time::format(t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| time::parse_iso(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The fields a client may send for a node (POST body or PUT body), after body validation
/// and with defaults applied for omitted fields, exactly as upstream's pydantic model does.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInput {
    /// An `id`/`_id` in the body (refused on create; PUT takes the id from the path).
    pub id_in_body: Option<String>,
    /// Kind as sent (`None` for the default `node`, which no write accepts).
    pub kind: Option<Kind>,
    /// The raw kind text, for error messages.
    pub kind_text: String,
    /// Name.
    pub name: String,
    /// Path.
    pub path: Vec<String>,
    /// Group.
    pub group: Option<String>,
    /// Parent.
    pub parent: Option<ObjectId>,
    /// State.
    pub state: State,
    /// Result.
    pub result: Option<NodeResult>,
    /// Artifacts (normalized URLs).
    pub artifacts: Option<BTreeMap<String, String>>,
    /// Data.
    pub data: Option<Value>,
    /// Debug.
    pub debug: Option<Value>,
    /// Jobfilter.
    pub jobfilter: Option<Vec<String>>,
    /// Platform filter.
    pub platform_filter: Option<Vec<String>>,
    /// Created.
    pub created: Timestamp,
    /// Timeout.
    pub timeout: Timestamp,
    /// Holdoff.
    pub holdoff: Option<Timestamp>,
    /// Owner as sent (create forces the caller).
    pub owner: Option<String>,
    /// Submitter.
    pub submitter: Option<String>,
    /// Tree id.
    pub treeid: Option<String>,
    /// User groups.
    pub user_groups: Vec<String>,
    /// KCIDB flag.
    pub processed_by_kcidb_bridge: bool,
    /// Retry counter.
    pub retry_counter: i64,
}

/// A field reader that collects every problem instead of stopping at the first.
pub(crate) struct Fields<'a> {
    pub(crate) obj: &'a Map<String, Value>,
    pub(crate) loc: Vec<String>,
    pub(crate) errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(obj: &'a Map<String, Value>, loc: &[&str]) -> Self {
        Fields {
            obj,
            loc: loc.iter().map(|s| s.to_string()).collect(),
            errors: Vec::new(),
        }
    }

    fn err(&mut self, key: &str, kind: &str, msg: &str, input: &Value) {
        self.err_at(vec![Loc::Key(key.to_string())], kind, msg, input);
    }

    fn err_at(&mut self, suffix: Vec<Loc>, kind: &str, msg: &str, input: &Value) {
        let mut loc: Vec<Loc> = self.loc.iter().cloned().map(Loc::Key).collect();
        loc.extend(suffix);
        self.errors
            .push(FieldError::at(kind, loc, msg, input.clone()));
    }

    pub(crate) fn required_str(&mut self, key: &str) -> String {
        match self.obj.get(key) {
            None => {
                let obj = Value::Object(self.obj.clone());
                self.err(key, "missing", "Field required", &obj);
                String::new()
            }
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                self.err(key, "string_type", "Input should be a valid string", v);
                String::new()
            }
        }
    }

    pub(crate) fn opt_str(&mut self, key: &str) -> Option<String> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                self.err(key, "string_type", "Input should be a valid string", v);
                None
            }
        }
    }

    pub(crate) fn str_list(&mut self, key: &str, required: bool) -> Option<Vec<String>> {
        match self.obj.get(key) {
            None if required => {
                let obj = Value::Object(self.obj.clone());
                self.err(key, "missing", "Field required", &obj);
                None
            }
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        v => {
                            let at = vec![Loc::Key(key.to_string()), Loc::Index(i)];
                            self.err_at(at, "string_type", "Input should be a valid string", v);
                        }
                    }
                }
                Some(out)
            }
            Some(v) => {
                self.err(key, "list_type", "Input should be a valid list", v);
                None
            }
        }
    }

    pub(crate) fn opt_object(&mut self, key: &str) -> Option<Value> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(v) => {
                self.err(key, "dict_type", "Input should be a valid dictionary", v);
                None
            }
        }
    }

    pub(crate) fn opt_bool(&mut self, key: &str) -> Option<bool> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.err(key, "bool_type", "Input should be a valid boolean", v);
                None
            }
        }
    }

    pub(crate) fn strict_int(&mut self, key: &str) -> Option<i64> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
            Some(v) => {
                self.err(key, "int_type", "Input should be a valid integer", v);
                None
            }
        }
    }

    pub(crate) fn opt_time(&mut self, key: &str) -> Option<Timestamp> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match time::parse_iso(s) {
                Ok(t) => Some(t),
                Err(_) => {
                    let v = Value::String(s.clone());
                    self.err(
                        key,
                        "datetime_from_date_parsing",
                        "Input should be a valid datetime",
                        &v,
                    );
                    None
                }
            },
            Some(v) => {
                self.err(key, "datetime_type", "Input should be a valid datetime", v);
                None
            }
        }
    }

    pub(crate) fn opt_object_id(&mut self, key: &str) -> Option<ObjectId> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match ObjectId::parse(s) {
                Ok(id) => Some(id),
                Err(e) => {
                    let v = Value::String(s.clone());
                    self.err(key, "value_error", &e.to_string(), &v);
                    None
                }
            },
            Some(v) => {
                self.err(
                    key,
                    "string_type",
                    "Input should be a valid ObjectId string",
                    v,
                );
                None
            }
        }
    }

    pub(crate) fn opt_enum<T>(
        &mut self,
        key: &str,
        parse: fn(&str) -> Option<T>,
        names: &str,
    ) -> Option<T> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match parse(s) {
                Some(v) => Some(v),
                None => {
                    let v = Value::String(s.clone());
                    self.err(key, "enum", &format!("Input should be {names}"), &v);
                    None
                }
            },
            Some(v) => {
                self.err(key, "enum", &format!("Input should be {names}"), v);
                None
            }
        }
    }

    pub(crate) fn artifacts(&mut self, key: &str) -> Option<BTreeMap<String, String>> {
        match self.obj.get(key) {
            None => Some(BTreeMap::new()),
            Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let mut out = BTreeMap::new();
                for (name, v) in m {
                    let at = || vec![Loc::Key(key.to_string()), Loc::Key(name.clone())];
                    match v.as_str().map(normalize_http_url) {
                        Some(Ok(u)) => {
                            out.insert(name.clone(), u);
                        }
                        Some(Err(msg)) => self.err_at(at(), "url_parsing", &msg, v),
                        None => {
                            let msg = "URL input should be a string or URL";
                            self.err_at(at(), "url_type", msg, v)
                        }
                    }
                }
                Some(out)
            }
            Some(v) => {
                self.err(key, "dict_type", "Input should be a valid dictionary", v);
                None
            }
        }
    }
}

/// Check and normalize an http(s) URL the way pydantic's `HttpUrl` does.
pub fn normalize_http_url(s: &str) -> Result<String, String> {
    let u = url::Url::parse(s).map_err(|e| format!("Input should be a valid URL, {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err("URL scheme should be 'http' or 'https'".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("Input should be a valid URL, empty host".into());
    }
    Ok(u.to_string())
}

impl NodeInput {
    /// Validate a request body as upstream's generic `Node` model (errors become HTTP 422),
    /// applying the defaults for omitted fields. `now` is the server time.
    pub fn from_json(body: &Value, now: Timestamp) -> Result<NodeInput, InputError> {
        let Value::Object(obj) = body else {
            return Err(InputError::Body(vec![FieldError::new(
                "model_attributes_type",
                vec!["body".into()],
                "Input should be a valid dictionary or object to extract fields from",
                body.clone(),
            )]));
        };
        let mut f = Fields::new(obj, &["body"]);
        let id_in_body = ["_id", "id"].iter().find_map(|k| match obj.get(*k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(v.to_string()),
        });
        let kind_text = match obj.get("kind") {
            None | Some(Value::Null) => "node".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                f.err("kind", "string_type", "Input should be a valid string", v);
                String::new()
            }
        };
        let name = f.required_str("name");
        let path = f.str_list("path", true).unwrap_or_default();
        let group = f.opt_str("group");
        let parent = f.opt_object_id("parent");
        let state = f
            .opt_enum(
                "state",
                State::parse,
                "'running', 'available', 'closing' or 'done'",
            )
            .unwrap_or(State::Running);
        let result = f.opt_enum(
            "result",
            NodeResult::parse,
            "'pass', 'fail', 'skip' or 'incomplete'",
        );
        let artifacts = f.artifacts("artifacts");
        let data = if obj.get("data").is_none() {
            Some(empty())
        } else {
            f.opt_object("data")
        };
        let debug = if obj.get("debug").is_none() {
            Some(empty())
        } else {
            f.opt_object("debug")
        };
        let jobfilter = f.str_list("jobfilter", false);
        let platform_filter = if obj.contains_key("platform_filter") {
            f.str_list("platform_filter", false)
        } else {
            Some(Vec::new())
        };
        let created = f.opt_time("created").unwrap_or(now);
        let timeout = f
            .opt_time("timeout")
            .unwrap_or(now + chrono::TimeDelta::hours(DEFAULT_TIMEOUT_HOURS));
        let holdoff = f.opt_time("holdoff");
        let owner = f.opt_str("owner");
        let submitter = f.opt_str("submitter");
        let treeid = f.opt_str("treeid");
        let user_groups = f.str_list("user_groups", false).unwrap_or_default();
        let processed_by_kcidb_bridge = f.opt_bool("processed_by_kcidb_bridge").unwrap_or(false);
        let retry_counter = f.strict_int("retry_counter").unwrap_or(0);
        let mut seen = std::collections::HashSet::new();
        if user_groups.iter().any(|g| !seen.insert(g)) {
            let v = obj.get("user_groups").cloned().unwrap_or(Value::Null);
            f.err(
                "user_groups",
                "value_error",
                "Value error, Groups must be unique",
                &v,
            );
        }
        if !f.errors.is_empty() {
            return Err(InputError::Body(f.errors));
        }
        let mut data = data;
        if let Some(d) = data.as_mut() {
            cast_version_strings(d);
        }
        Ok(NodeInput {
            id_in_body,
            kind: Kind::parse(&kind_text),
            kind_text,
            name,
            path,
            group,
            parent,
            state,
            result,
            artifacts,
            data,
            debug,
            jobfilter,
            platform_filter,
            created,
            timeout,
            holdoff,
            owner,
            submitter,
            treeid,
            user_groups,
            processed_by_kcidb_bridge,
            retry_counter,
        })
    }

    /// The kind, or the upstream 400 `Unsupported node kind: X`.
    pub fn require_kind(&self) -> Result<Kind, InputError> {
        self.kind.ok_or_else(|| {
            InputError::Invalid(format!("Unsupported node kind: {}", self.kind_text))
        })
    }

    /// Build the node stored by POST: the caller becomes the owner.
    pub fn into_new_node(self, owner: &str, now: Timestamp) -> Result<Node, InputError> {
        let kind = self.require_kind()?;
        if let Some(id) = &self.id_in_body {
            return Err(InputError::Invalid(format!(
                "Object cannot be created with id: {id}"
            )));
        }
        let (submitter, user_groups) = (self.submitter.clone(), self.user_groups.clone());
        let node = self.into_node(
            kind,
            ObjectId::generate(),
            Some(owner.to_string()),
            submitter,
            user_groups,
            now,
        );
        crate::data::validate_node_data(&node)?;
        Ok(node)
    }

    /// Apply a PUT body over a stored node with upstream's rules: every field but `owner`,
    /// `submitter` and `user_groups` is replaced (omitted fields take their defaults), the
    /// state transition is checked, and the KCIDB flag follows the reset rules.
    pub fn apply_put(self, stored: &Node, now: Timestamp) -> Result<Node, InputError> {
        let kind = self.require_kind()?;
        if self.parent == Some(stored.id) {
            return Err(InputError::Invalid(
                "Parent cannot be the same as the object".into(),
            ));
        }
        let node = self.into_node(
            kind,
            stored.id,
            stored.owner.clone(),
            stored.submitter.clone(),
            stored.user_groups.clone(),
            now,
        );
        finish_update(stored, node, true)
    }

    /// The node these fields describe, with the given identity and bookkeeping fields
    /// (`updated` = `now`). No validation: callers validate what applies to them.
    pub fn into_node(
        self,
        kind: Kind,
        id: ObjectId,
        owner: Option<String>,
        submitter: Option<String>,
        user_groups: Vec<String>,
        now: Timestamp,
    ) -> Node {
        Node {
            id,
            kind,
            name: self.name,
            path: self.path,
            group: self.group,
            parent: self.parent,
            state: self.state,
            result: self.result,
            artifacts: self.artifacts,
            data: self.data,
            debug: self.debug,
            jobfilter: self.jobfilter,
            platform_filter: self.platform_filter,
            created: self.created,
            updated: now,
            timeout: self.timeout,
            holdoff: self.holdoff,
            owner,
            submitter,
            treeid: self.treeid,
            user_groups,
            processed_by_kcidb_bridge: self.processed_by_kcidb_bridge,
            retry_counter: self.retry_counter,
        }
    }
}

/// Common tail of PUT and PATCH: kind validation, transition check, KCIDB flag rule.
/// `flag_sent` tells whether the request carried `processed_by_kcidb_bridge`.
fn finish_update(stored: &Node, mut node: Node, flag_sent: bool) -> Result<Node, InputError> {
    crate::data::validate_node_data(&node)?;
    if !stored.state.can_transition_to(node.state) {
        return Err(InputError::Invalid(format!(
            "Transition not allowed with state: {}",
            node.state.as_str()
        )));
    }
    let flips = flag_sent && node.processed_by_kcidb_bridge != stored.processed_by_kcidb_bridge;
    if node.state != stored.state || !flips {
        node.processed_by_kcidb_bridge = false;
    }
    Ok(node)
}

/// Apply a PATCH body (only the keys present are applied; unknown keys are ignored).
pub fn apply_patch(stored: &Node, body: &Value, now: Timestamp) -> Result<Node, InputError> {
    let Value::Object(obj) = body else {
        return Err(InputError::Body(vec![FieldError::new(
            "model_attributes_type",
            vec!["body".into()],
            "Input should be a valid dictionary or object to extract fields from",
            body.clone(),
        )]));
    };
    const KEYS: [&str; 11] = [
        "state",
        "result",
        "artifacts",
        "data",
        "debug",
        "jobfilter",
        "platform_filter",
        "timeout",
        "holdoff",
        "processed_by_kcidb_bridge",
        "retry_counter",
    ];
    let mut f = Fields::new(obj, &["body"]);
    let mut node = stored.clone();
    let mut any = false;
    for key in KEYS {
        if !obj.contains_key(key) {
            continue;
        }
        any = true;
        match key {
            "state" => {
                let names = "'running', 'available', 'closing' or 'done'";
                match f.opt_enum("state", State::parse, names) {
                    Some(s) => node.state = s,
                    None if obj.get("state") == Some(&Value::Null) => f.err(
                        "state",
                        "enum",
                        &format!("Input should be {names}"),
                        &Value::Null,
                    ),
                    None => {}
                }
            }
            "result" => {
                node.result = f.opt_enum(
                    "result",
                    NodeResult::parse,
                    "'pass', 'fail', 'skip' or 'incomplete'",
                )
            }
            "artifacts" => node.artifacts = f.artifacts("artifacts"),
            "data" => node.data = f.opt_object("data"),
            "debug" => node.debug = f.opt_object("debug"),
            "jobfilter" => node.jobfilter = f.str_list("jobfilter", false),
            "platform_filter" => node.platform_filter = f.str_list("platform_filter", false),
            "timeout" => {
                if let Some(t) = f.opt_time("timeout") {
                    node.timeout = t;
                }
            }
            "holdoff" => node.holdoff = f.opt_time("holdoff"),
            "processed_by_kcidb_bridge" => {
                node.processed_by_kcidb_bridge =
                    f.opt_bool("processed_by_kcidb_bridge").unwrap_or(false)
            }
            "retry_counter" => node.retry_counter = f.strict_int("retry_counter").unwrap_or(0),
            _ => {}
        }
    }
    if !f.errors.is_empty() {
        return Err(InputError::Body(f.errors));
    }
    if !any {
        return Err(InputError::Invalid("No fields to update".into()));
    }
    node.updated = now;
    finish_update(stored, node, obj.contains_key("processed_by_kcidb_bridge"))
}

fn empty() -> Value {
    Value::Object(Map::new())
}

/// POST/PUT cast `data.kernel_revision.version.{version,patchlevel,sublevel}` digit strings
/// to integers before kind validation, as upstream does.
fn cast_version_strings(data: &mut Value) {
    let Some(version) = data
        .get_mut("kernel_revision")
        .and_then(|r| r.get_mut("version"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for key in ["version", "patchlevel", "sublevel"] {
        if let Some(Value::String(s)) = version.get(key)
            && let Ok(n) = s.trim().parse::<i64>()
        {
            version.insert(key.to_string(), Value::from(n));
        }
    }
}

impl Node {
    /// `data.runtime` if it is a string (used by runtime-scoped edit rights).
    pub fn runtime(&self) -> Option<&str> {
        self.data.as_ref()?.get("runtime")?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        time::parse_iso("2024-02-01T09:58:28.479138").unwrap()
    }

    fn checkout() -> Value {
        json!({"kind": "checkout", "name": "checkout", "path": ["checkout"],
               "data": {"kernel_revision": {"tree": "mainline", "url": "https://git.kernel.org/x.git",
                        "branch": "master", "commit": "2a987e65",
                        "version": {"version": "6", "patchlevel": "7", "extra": "-rc4"}}}})
    }

    #[test]
    fn create_applies_defaults_and_owner() {
        let input = NodeInput::from_json(&checkout(), now()).unwrap();
        let node = input.into_new_node("admin", now()).unwrap();
        let v = serde_json::to_value(&node).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 23);
        assert_eq!(keys[0], "id");
        assert_eq!(keys[22], "retry_counter");
        assert_eq!(v["owner"], "admin");
        assert_eq!(v["platform_filter"], json!([]));
        assert_eq!(v["jobfilter"], Value::Null);
        assert_eq!(v["timeout"], "2024-02-01T15:58:28.479138");
        assert_eq!(v["data"]["kernel_revision"]["version"]["version"], 6);
    }

    #[test]
    fn body_errors_are_all_reported() {
        let body =
            json!({"kind": "checkout", "retry_counter": 1.0, "artifacts": {"log": "ftp://x"}});
        let Err(InputError::Body(errs)) = NodeInput::from_json(&body, now()) else {
            panic!("expected body errors")
        };
        let locs: Vec<String> = errs.iter().map(|e| crate::error::dotted(&e.loc)).collect();
        assert!(locs.contains(&"body.name".to_string()), "{locs:?}");
        assert!(locs.contains(&"body.path".to_string()));
        assert!(locs.contains(&"body.retry_counter".to_string()));
        assert!(locs.contains(&"body.artifacts.log".to_string()));
    }

    #[test]
    fn unsupported_kind_and_id_in_body() {
        let mut body = checkout();
        body["kind"] = json!("node");
        let e = NodeInput::from_json(&body, now())
            .unwrap()
            .into_new_node("a", now())
            .unwrap_err();
        assert_eq!(e.to_string(), "Unsupported node kind: node");
        let mut body = checkout();
        body["id"] = json!("65a1355ee98651d0fe81e500");
        let e = NodeInput::from_json(&body, now())
            .unwrap()
            .into_new_node("a", now())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Object cannot be created with id: 65a1355ee98651d0fe81e500"
        );
    }

    #[test]
    fn transitions() {
        use State::*;
        assert!(Running.can_transition_to(Done));
        assert!(Available.can_transition_to(Closing));
        assert!(!Done.can_transition_to(Running));
        assert!(!Closing.can_transition_to(Available));
        assert!(Done.can_transition_to(Done));
    }

    #[test]
    fn patch_rules() {
        let stored = NodeInput::from_json(&checkout(), now())
            .unwrap()
            .into_new_node("a", now())
            .unwrap();
        let e = apply_patch(&stored, &json!({"foo": 1}), now()).unwrap_err();
        assert_eq!(e.to_string(), "No fields to update");
        let n = apply_patch(&stored, &json!({"state": "done", "result": "pass"}), now()).unwrap();
        assert_eq!(n.state, State::Done);
        let e = apply_patch(&n, &json!({"state": "running"}), now()).unwrap_err();
        assert_eq!(e.to_string(), "Transition not allowed with state: running");
        let n2 = apply_patch(&n, &json!({"processed_by_kcidb_bridge": true}), now()).unwrap();
        assert!(n2.processed_by_kcidb_bridge);
        let n3 = apply_patch(&n2, &json!({"debug": {"x": 1}}), now()).unwrap();
        assert!(
            !n3.processed_by_kcidb_bridge,
            "flag resets unless the patch sets it"
        );
    }

    #[test]
    fn put_keeps_owner_and_resets_omitted_fields() {
        let stored = NodeInput::from_json(&checkout(), now())
            .unwrap()
            .into_new_node("alice", now())
            .unwrap();
        let later = now() + chrono::TimeDelta::hours(1);
        let body = json!({"kind": "checkout", "name": "checkout", "path": ["checkout"], "owner": "mallory", "state": "available"});
        let n = NodeInput::from_json(&body, later)
            .unwrap()
            .apply_put(&stored, later)
            .unwrap();
        assert_eq!(n.owner.as_deref(), Some("alice"));
        assert_eq!(n.created, later);
        assert_eq!(n.data, Some(json!({})));
        assert_eq!(n.state, State::Available);
    }
}
