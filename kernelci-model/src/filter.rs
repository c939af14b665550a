//! The node query language of `/nodes`, `/nodes/fast` and `/count`: query-string pairs such
//! as `kind=kbuild&data.kernel_revision.tree=mainline&created__gte=2024-11-01`, parsed once
//! into a [`NodeFilter`] that stores render to SQL per dialect and that [`NodeFilter::matches`]
//! evaluates in memory (the reference semantics the SQL renderings are tested against).
//!
//! Semantics follow upstream (MongoDB) with these deliberate fixes, documented in README:
//! - `parent=null` finds root nodes, and operators on `parent` work (upstream: no match / 500);
//! - operators on `retry_counter` work (upstream: 500);
//! - `re` values stay strings (upstream turns `name__re=123` into an int and fails with 500);
//! - digit-only operator values stay strings for the text fields with their own column
//!   (`name__ne=123`); on `data.*` and other document paths they become integers as upstream;
//! - an unknown operator (`name__foo=x`) is a 400 instead of a silent non-match;
//! - `true`/`false` are booleans for `processed_by_kcidb_bridge` with or without operator.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::id::ObjectId;
use crate::node::Node;
use crate::time::{self, Timestamp};

/// A top-level scalar node field that stores keep in a column of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// `id`.
    Id,
    /// `kind`.
    Kind,
    /// `name`.
    Name,
    /// `group`.
    Group,
    /// `parent`.
    Parent,
    /// `state`.
    State,
    /// `result`.
    Result,
    /// `owner`.
    Owner,
    /// `submitter`.
    Submitter,
    /// `treeid`.
    Treeid,
    /// `created`.
    Created,
    /// `updated`.
    Updated,
    /// `timeout`.
    Timeout,
    /// `holdoff`.
    Holdoff,
    /// `retry_counter`.
    RetryCounter,
    /// `processed_by_kcidb_bridge`.
    ProcessedByKcidbBridge,
}

/// The storage type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (nullable).
    Text,
    /// A timestamp (stored as microseconds since the epoch).
    Time,
    /// A 64-bit integer.
    Int,
    /// A boolean.
    Bool,
}

impl Column {
    /// Every column.
    pub const ALL: [Column; 16] = [
        Column::Id,
        Column::Kind,
        Column::Name,
        Column::Group,
        Column::Parent,
        Column::State,
        Column::Result,
        Column::Owner,
        Column::Submitter,
        Column::Treeid,
        Column::Created,
        Column::Updated,
        Column::Timeout,
        Column::Holdoff,
        Column::RetryCounter,
        Column::ProcessedByKcidbBridge,
    ];

    /// The node field name (also the SQL column name, except `group` -> `grp`).
    pub fn field(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::Kind => "kind",
            Column::Name => "name",
            Column::Group => "group",
            Column::Parent => "parent",
            Column::State => "state",
            Column::Result => "result",
            Column::Owner => "owner",
            Column::Submitter => "submitter",
            Column::Treeid => "treeid",
            Column::Created => "created",
            Column::Updated => "updated",
            Column::Timeout => "timeout",
            Column::Holdoff => "holdoff",
            Column::RetryCounter => "retry_counter",
            Column::ProcessedByKcidbBridge => "processed_by_kcidb_bridge",
        }
    }

    /// The SQL column name.
    pub fn sql_name(self) -> &'static str {
        match self {
            Column::Group => "grp",
            Column::ProcessedByKcidbBridge => "kcidb_flag",
            c => c.field(),
        }
    }

    /// The storage type.
    pub fn column_type(self) -> ColumnType {
        match self {
            Column::Created | Column::Updated | Column::Timeout | Column::Holdoff => {
                ColumnType::Time
            }
            Column::RetryCounter => ColumnType::Int,
            Column::ProcessedByKcidbBridge => ColumnType::Bool,
            _ => ColumnType::Text,
        }
    }

    fn from_field(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.field() == name)
    }
}

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// A column.
    Column(Column),
    /// A path inside the stored node document (`["data", "kernel_revision", "tree"]`).
    Doc(Vec<String>),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal (for arrays: any element equal; `null` also matches a missing field).
    Eq,
    /// Not equal (the negation of `Eq`).
    Ne,
    /// Less than (same type only).
    Lt,
    /// Less or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Gte,
    /// Unanchored regular expression on strings.
    Re,
    /// One of a comma-separated list.
    In,
    /// None of a comma-separated list.
    Nin,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "ne" => Op::Ne,
            "re" => Op::Re,
            "in" => Op::In,
            "nin" => Op::Nin,
            _ => return None,
        })
    }
}

/// A typed comparison value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A timestamp (time columns only).
    Time(Timestamp),
    /// A list (for `In`/`Nin`), each item typed like a single value.
    List(Vec<Value>),
}

/// One condition; a filter is their conjunction.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// What is compared.
    pub field: Field,
    /// How.
    pub op: Op,
    /// With what.
    pub value: Value,
}

/// A parsed node query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeFilter {
    /// All must hold.
    pub conditions: Vec<Condition>,
}

/// Why a query string was refused (HTTP 400; the text is the `detail`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A bad timestamp.
    #[error(transparent)]
    Time(#[from] time::InvalidIsoFormat),
    /// A bad id.
    #[error(transparent)]
    Id(#[from] crate::id::InvalidObjectId),
    /// A bad integer.
    #[error("invalid literal for int() with base 10: '{0}'")]
    Int(String),
    /// An integer that does not fit in 64 bits.
    #[error("Integer out of range (64-bit): '{0}'")]
    IntRange(String),
    /// A bad boolean.
    #[error("Invalid boolean value for {field}: '{value}', use 'true' or 'false'")]
    Bool {
        /// The field.
        field: String,
        /// The value.
        value: String,
    },
    /// A bad regular expression.
    #[error("Invalid regular expression '{pattern}': {reason}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// An operator we do not know.
    #[error("Unsupported filter operator '{op}' in '{key}'")]
    Operator {
        /// The operator.
        op: String,
        /// The whole key.
        key: String,
    },
    /// A regular expression on a field that is not text.
    #[error("Regular expressions apply to text fields only, not to '{0}'")]
    RegexField(String),
    /// A field name that cannot be a document path.
    #[error("Invalid filter field name: '{0}'")]
    FieldName(String),
}

/// Regex patterns longer than this are refused (they are user input run on the server).
pub const MAX_REGEX_LEN: usize = 1000;

impl NodeFilter {
    /// Parse query-string pairs (already URL-decoded). For a repeated key the last value wins.
    /// The caller removes the paging keys (`limit`, `offset`) first.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, FilterError> {
        let mut last: Vec<(&str, &str)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (k, v) in pairs {
            match index.get(k) {
                Some(&i) => last[i].1 = v,
                None => {
                    index.insert(k, last.len());
                    last.push((k, v));
                }
            }
        }
        let mut conditions = Vec::with_capacity(last.len());
        for (key, raw) in last {
            conditions.push(parse_pair(key, raw)?);
        }
        Ok(NodeFilter { conditions })
    }

    /// Evaluate on a node (the reference semantics).
    pub fn matches(&self, node: &Node) -> bool {
        let doc = serde_json::to_value(node).unwrap_or(Json::Null);
        self.matches_doc(node, &doc)
    }

    /// Evaluate on a node whose JSON form is already at hand.
    pub fn matches_doc(&self, node: &Node, doc: &Json) -> bool {
        self.conditions.iter().all(|c| c.matches(node, doc))
    }
}

fn parse_pair(key: &str, raw: &str) -> Result<Condition, FilterError> {
    let (name, op_text) = match key.matches("__").count() {
        1 => {
            let (a, b) = key.split_once("__").unwrap_or((key, ""));
            (a, Some(b))
        }
        _ => (key, None),
    };
    let field = parse_field(name)?;
    let (op, int_op) = match op_text {
        None => (Op::Eq, false),
        Some("int") => (Op::Eq, true),
        Some(o) => match Op::parse(o) {
            Some(op) => (op, false),
            None => {
                return Err(FilterError::Operator {
                    op: o.into(),
                    key: key.into(),
                });
            }
        },
    };
    let value = if int_op {
        Value::Int(
            raw.trim()
                .parse()
                .map_err(|_| FilterError::Int(raw.into()))?,
        )
    } else {
        typed_value(&field, op, op_text.is_some(), raw)?
    };
    if let (Op::Re, Value::Str(p)) = (op, &value) {
        check_regex(p)?;
    }
    Ok(Condition { field, op, value })
}

fn parse_field(name: &str) -> Result<Field, FilterError> {
    if let Some(c) = Column::from_field(name) {
        return Ok(Field::Column(c));
    }
    let segments: Vec<String> = name.split('.').map(str::to_string).collect();
    let bad =
        |s: &String| s.is_empty() || s.chars().any(|c| c == '"' || c == '\\' || c.is_control());
    if segments.iter().any(bad) {
        return Err(FilterError::FieldName(name.into()));
    }
    Ok(Field::Doc(segments))
}

fn check_regex(p: &str) -> Result<(), FilterError> {
    if p.len() > MAX_REGEX_LEN {
        return Err(FilterError::Regex {
            pattern: p.chars().take(40).collect(),
            reason: "pattern too long".into(),
        });
    }
    regex::Regex::new(p).map_err(|e| FilterError::Regex {
        pattern: p.into(),
        reason: e.to_string().lines().last().unwrap_or("").trim().into(),
    })?;
    crate::regex_filter::postgres_pattern(p)
        .map(|_| ())
        .map_err(|reason| FilterError::Regex {
            pattern: p.into(),
            reason,
        })
}

fn typed_value(field: &Field, op: Op, has_op: bool, raw: &str) -> Result<Value, FilterError> {
    if matches!(op, Op::In | Op::Nin) {
        let items = raw
            .split(',')
            .map(|item| single_value(field, op, has_op, item, true));
        return Ok(Value::List(items.collect::<Result<_, _>>()?));
    }
    single_value(field, op, has_op, raw, false)
}

fn single_value(
    field: &Field,
    op: Op,
    has_op: bool,
    raw: &str,
    in_list: bool,
) -> Result<Value, FilterError> {
    if raw == "null" && !in_list && op != Op::Re {
        return Ok(Value::Null);
    }
    match field {
        Field::Column(c) if op == Op::Re && c.column_type() != ColumnType::Text => {
            Err(FilterError::RegexField(c.field().into()))
        }
        Field::Column(c) => match c.column_type() {
            ColumnType::Time => Ok(Value::Time(time::parse_iso(raw)?)),
            ColumnType::Int => Ok(Value::Int(
                raw.trim()
                    .parse()
                    .map_err(|_| FilterError::Int(raw.into()))?,
            )),
            ColumnType::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(FilterError::Bool {
                    field: c.field().into(),
                    value: raw.into(),
                }),
            },
            ColumnType::Text if matches!(c, Column::Parent | Column::Id) && op != Op::Re => {
                Ok(Value::Str(ObjectId::parse(raw)?.to_string()))
            }
            ColumnType::Text => Ok(Value::Str(raw.into())),
        },
        Field::Doc(_) => {
            if op == Op::Re || in_list {
                Ok(Value::Str(raw.into()))
            } else if !has_op && raw.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if !has_op && raw.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else if has_op && !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
                raw.parse()
                    .map(Value::Int)
                    .map_err(|_| FilterError::IntRange(raw.into()))
            } else {
                Ok(Value::Str(raw.into()))
            }
        }
    }
}

/// A scalar seen by the evaluator.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Str(&'a str),
    Int(f64),
    Bool(bool),
    Time(Timestamp),
    Other,
}

impl Condition {
    fn matches(&self, node: &Node, doc: &Json) -> bool {
        match &self.field {
            Field::Column(c) => {
                let owned;
                let x: Option<Scalar> = match c {
                    Column::Created => Some(Scalar::Time(node.created)),
                    Column::Updated => Some(Scalar::Time(node.updated)),
                    Column::Timeout => Some(Scalar::Time(node.timeout)),
                    Column::Holdoff => node.holdoff.map(Scalar::Time),
                    Column::RetryCounter => Some(Scalar::Int(node.retry_counter as f64)),
                    Column::ProcessedByKcidbBridge => {
                        Some(Scalar::Bool(node.processed_by_kcidb_bridge))
                    }
                    Column::Id | Column::Parent => {
                        owned = if *c == Column::Id {
                            Some(node.id.to_string())
                        } else {
                            node.parent.map(|p| p.to_string())
                        };
                        owned.as_deref().map(Scalar::Str)
                    }
                    _ => doc.get(c.field()).and_then(Json::as_str).map(Scalar::Str),
                };
                eval(
                    self.op,
                    &self.value,
                    &x.into_iter().collect::<Vec<_>>(),
                    false,
                )
            }
            Field::Doc(path) => {
                let mut cur = Some(doc);
                for seg in path {
                    cur = cur.and_then(|v| v.as_object()).and_then(|m| m.get(seg));
                }
                match cur {
                    None | Some(Json::Null) => eval(self.op, &self.value, &[], false),
                    Some(Json::Array(items)) => {
                        let xs: Vec<Scalar> = items.iter().map(scalar).collect();
                        eval(self.op, &self.value, &xs, true)
                    }
                    Some(v) => eval(self.op, &self.value, &[scalar(v)], false),
                }
            }
        }
    }
}

fn scalar(v: &Json) -> Scalar<'_> {
    match v {
        Json::String(s) => Scalar::Str(s),
        Json::Number(n) => n.as_f64().map(Scalar::Int).unwrap_or(Scalar::Other),
        Json::Bool(b) => Scalar::Bool(*b),
        _ => Scalar::Other,
    }
}

/// `xs` holds the scalar (or the array elements); empty means null or missing.
fn eval(op: Op, value: &Value, xs: &[Scalar], is_array: bool) -> bool {
    let any = |f: &dyn Fn(&Scalar) -> bool| xs.iter().any(f);
    match op {
        Op::Eq => eq(value, xs, is_array),
        Op::Ne => !eq(value, xs, is_array),
        Op::In => match value {
            Value::List(items) => items.iter().any(|v| eq(v, xs, is_array)),
            v => eq(v, xs, is_array),
        },
        Op::Nin => match value {
            Value::List(items) => !items.iter().any(|v| eq(v, xs, is_array)),
            v => !eq(v, xs, is_array),
        },
        Op::Re => match value {
            Value::Str(p) => match regex::Regex::new(p) {
                Ok(re) => any(&|x| matches!(x, Scalar::Str(s) if re.is_match(s))),
                Err(_) => false,
            },
            _ => false,
        },
        Op::Lt | Op::Lte | Op::Gt | Op::Gte => {
            if matches!(value, Value::Null) {
                return matches!(op, Op::Lte | Op::Gte) && xs.is_empty() && !is_array;
            }
            any(&|x| match compare(x, value) {
                Some(ord) => match op {
                    Op::Lt => ord.is_lt(),
                    Op::Lte => ord.is_le(),
                    Op::Gt => ord.is_gt(),
                    _ => ord.is_ge(),
                },
                None => false,
            })
        }
    }
}

fn eq(value: &Value, xs: &[Scalar], is_array: bool) -> bool {
    match value {
        Value::Null => xs.is_empty() && !is_array,
        v => xs
            .iter()
            .any(|x| compare(x, v) == Some(std::cmp::Ordering::Equal)),
    }
}

fn compare(x: &Scalar, v: &Value) -> Option<std::cmp::Ordering> {
    match (x, v) {
        (Scalar::Str(a), Value::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Scalar::Int(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Scalar::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Scalar::Time(a), Value::Time(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeInput;
    use serde_json::json;

    fn f(q: &[(&str, &str)]) -> Result<NodeFilter, FilterError> {
        NodeFilter::parse(q.iter().copied())
    }

    fn node(body: Json) -> Node {
        let now = time::parse_iso("2024-06-01T00:00:00").unwrap();
        NodeInput::from_json(&body, now)
            .unwrap()
            .into_new_node("admin", now)
            .unwrap()
    }

    #[test]
    fn parses_operators_and_types() {
        let q = f(&[
            ("state__ne", "running"),
            ("data.x__gt", "5"),
            ("data.y", "5"),
            ("data.b", "TRUE"),
            ("name__in", "a,b"),
            ("created__gte", "2024-11-01"),
            ("retry_counter", "2"),
            ("data.z__int", "7"),
            ("parent", "null"),
            ("a__b__c", "x"),
        ])
        .unwrap();
        let c = &q.conditions;
        assert_eq!(
            c[0],
            Condition {
                field: Field::Column(Column::State),
                op: Op::Ne,
                value: Value::Str("running".into())
            }
        );
        assert_eq!(c[1].value, Value::Int(5));
        assert_eq!(c[2].value, Value::Str("5".into()));
        assert_eq!(c[3].value, Value::Bool(true));
        assert_eq!(
            c[4].value,
            Value::List(vec![Value::Str("a".into()), Value::Str("b".into())])
        );
        assert!(matches!(c[5].value, Value::Time(_)));
        assert_eq!(c[6].value, Value::Int(2));
        assert_eq!(
            c[7],
            Condition {
                field: Field::Doc(vec!["data".into(), "z".into()]),
                op: Op::Eq,
                value: Value::Int(7)
            }
        );
        assert_eq!(c[8].value, Value::Null);
        assert_eq!(c[9].field, Field::Doc(vec!["a__b__c".into()]));
    }

    #[test]
    fn last_duplicate_wins() {
        let q = f(&[("kind", "a"), ("kind", "b")]).unwrap();
        assert_eq!(q.conditions.len(), 1);
        assert_eq!(q.conditions[0].value, Value::Str("b".into()));
    }

    #[test]
    fn precise_errors() {
        assert_eq!(
            f(&[("created__gt", "bad")]).unwrap_err().to_string(),
            "Invalid isoformat string: 'bad'"
        );
        assert!(
            f(&[("parent", "xyz")])
                .unwrap_err()
                .to_string()
                .contains("is not a valid ObjectId")
        );
        assert_eq!(
            f(&[("name__foo", "x")]).unwrap_err().to_string(),
            "Unsupported filter operator 'foo' in 'name__foo'"
        );
        assert!(
            f(&[("name__re", "(")])
                .unwrap_err()
                .to_string()
                .starts_with("Invalid regular expression")
        );
        assert!(f(&[("data.x__int", "x")]).is_err());
        assert!(f(&[("data..x", "1")]).is_err());
        assert!(f(&[("data.x\"y", "1")]).is_err());
    }

    #[test]
    fn evaluates_like_mongo() {
        let n = node(
            json!({"kind": "kbuild", "name": "kbuild-gcc-12-x86", "path": ["checkout", "kbuild-gcc-12-x86"],
                            "data": {"arch": "x86_64", "n": 7, "flag": true}}),
        );
        let m = |q: &[(&str, &str)]| f(q).unwrap().matches(&n);
        assert!(m(&[("kind", "kbuild")]));
        assert!(m(&[("path", "checkout")]), "array fields match any element");
        assert!(!m(&[("path__ne", "checkout")]));
        assert!(m(&[("result", "null")]));
        assert!(m(&[("parent", "null")]), "root nodes");
        assert!(m(&[("data.missing", "null")]));
        assert!(!m(&[("data.arch", "null")]));
        assert!(m(&[("data.arch__ne", "null")]));
        assert!(m(&[("data.n__gt", "5")]));
        assert!(!m(&[("data.n", "7")]), "plain values stay strings");
        assert!(m(&[("data.n__int", "7")]));
        assert!(m(&[("data.flag", "true")]));
        assert!(m(&[("name__re", "gcc-1[0-9]")]));
        assert!(m(&[("data.arch__in", "arm64,x86_64")]));
        assert!(m(&[("data.arch__nin", "arm64")]));
        assert!(m(&[
            ("created__gte", "2024-06-01"),
            ("created__lt", "2024-06-02")
        ]));
        assert!(!m(&[("holdoff__lt", "2030-01-01")]));
        assert!(m(&[("retry_counter__lt", "1")]));
        assert!(m(&[("processed_by_kcidb_bridge", "false")]));
    }
}
