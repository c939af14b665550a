//! Input errors: the two families upstream distinguishes on the wire.

use serde::Serialize;
use serde_json::Value;

/// One problem with a request body, in FastAPI's 422 shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Machine-readable error type (`missing`, `string_type`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where: `["body", "name"]`.
    pub loc: Vec<String>,
    /// Human-readable message.
    pub msg: String,
    /// The offending input.
    pub input: Value,
}

impl FieldError {
    /// Build one.
    pub fn new(kind: &str, loc: Vec<String>, msg: &str, input: Value) -> Self {
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
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.loc.join("."), e.msg)).collect::<Vec<_>>().join("; "))]
    Body(Vec<FieldError>),
    /// The body is well-formed but not acceptable (HTTP 400 with this text as `detail`).
    #[error("{0}")]
    Invalid(String),
}
