//! Input errors: the two families upstream distinguishes on the wire.

use serde::Serialize;
use serde_json::Value;

/// One step of an error location: an object key or a list index (FastAPI renders indexes
/// as numbers: `["body", "path", 1]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Loc {
    /// An object key.
    Key(String),
    /// A list index.
    Index(usize),
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loc::Key(k) => f.write_str(k),
            Loc::Index(i) => write!(f, "{i}"),
        }
    }
}

/// Render a location as `body.path.1`.
pub fn dotted(loc: &[Loc]) -> String {
    loc.iter().map(Loc::to_string).collect::<Vec<_>>().join(".")
}

/// One problem with a request body, in FastAPI's 422 shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Machine-readable error type (`missing`, `string_type`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where: `["body", "name"]`.
    pub loc: Vec<Loc>,
    /// Human-readable message.
    pub msg: String,
    /// The offending input.
    pub input: Value,
}

impl FieldError {
    /// Build one whose location is made of object keys only.
    pub fn new(kind: &str, loc: Vec<String>, msg: &str, input: Value) -> Self {
        FieldError::at(kind, loc.into_iter().map(Loc::Key).collect(), msg, input)
    }

    /// Build one with any location.
    pub fn at(kind: &str, loc: Vec<Loc>, msg: &str, input: Value) -> Self {
        FieldError {
            kind: kind.into(),
            loc,
            msg: msg.into(),
            input,
        }
    }
}

/// Why a node body or query was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// The body does not have the generic shape (HTTP 422, a list of every problem).
    #[error("{}", .0.iter().map(|e| format!("{}: {}", dotted(&e.loc), e.msg)).collect::<Vec<_>>().join("; "))]
    Body(Vec<FieldError>),
    /// The body is well-formed but not acceptable (HTTP 400 with this text as `detail`).
    #[error("{0}")]
    Invalid(String),
}
