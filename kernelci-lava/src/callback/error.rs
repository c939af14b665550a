//! Why a callback body is refused. Each message names the field, because the HTTP layer
//! answers 400 with it and a lab admin reads it.

/// A callback body that cannot be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The body is not JSON.
    #[error("callback: not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("callback: not a JSON object")]
    NotObject,
    /// A required field is absent or null.
    #[error("callback: {0}: missing")]
    Missing(&'static str),
    /// `id` or `status` is not an integer (nor a string of digits).
    #[error("callback: {key}: not an integer: {value}")]
    NotInteger {
        /// The field.
        key: &'static str,
        /// The value found (JSON, cut at 100 characters).
        value: String,
    },
    /// A field that must be a string (or absent) is something else.
    #[error("callback: {0}: not a string")]
    NotString(&'static str),
    /// `results` is not an object.
    #[error("callback: results: not an object")]
    ResultsNotObject,
    /// A suite of `results` is not a YAML list.
    #[error("callback: results.{suite}: not a YAML list: {problem}")]
    Suite {
        /// The suite name.
        suite: String,
        /// The parser's message.
        problem: String,
    },
    /// `log` is not a YAML list.
    #[error("callback: log: not a YAML list: {0}")]
    Log(String),
    /// `definition` does not parse as YAML.
    #[error("callback: definition: not YAML: {0}")]
    Definition(String),
}
