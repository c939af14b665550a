//! Errors: why a document was rejected, at which stage, and every problem found.
//!
//! A submission goes through the stages of the KCIDB ingesters (see `NOTES.md`): bytes are
//! decoded as UTF-8 ([`Stage::Decode`]), parsed as JSON ([`Stage::Json`]), validated against
//! the schema of the version they declare ([`Stage::Schema`]) and upgraded to v5.3
//! ([`Stage::Upgrade`]). The first two stages stop at the first error (there is no document to
//! look at after a syntax error); the last two report every [`Problem`], each with the JSON
//! pointer of the offending value.

use std::fmt;

use crate::version::SchemaVersion;

/// The processing stage at which a document was rejected, in processing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// The bytes are not UTF-8 text.
    Decode,
    /// The text is not a single JSON value (or uses JSON we refuse, see [`ParseError`]).
    Json,
    /// The JSON does not satisfy the schema of the version it declares.
    Schema,
    /// The (valid) document of an older version cannot be converted to v5.3.
    Upgrade,
}

impl Stage {
    /// The stage name used by the KCIDB fixtures (`decode`, `json`, `schema`, `upgrade`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Json => "json",
            Stage::Schema => "schema",
            Stage::Upgrade => "upgrade",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes could not be turned into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input has no bytes at all (the ingesters delete such spool files unprocessed).
    #[error("empty document (0 bytes)")]
    Empty,
    /// The input is not valid UTF-8.
    #[error("invalid UTF-8 at byte offset {offset}")]
    InvalidUtf8 {
        /// Offset of the first byte that is not part of a valid UTF-8 sequence.
        offset: usize,
    },
    /// The input starts with a UTF-8 byte-order mark, which JSON (RFC 8259 §8.1) forbids.
    #[error("unexpected UTF-8 byte-order mark at the start of the document")]
    ByteOrderMark,
    /// The same key appears twice in one JSON object. Python keeps the last value, other
    /// parsers the first: we refuse to guess (stricter than kcidb-io, see `NOTES.md`).
    #[error("duplicate key {key:?} at line {line} column {column}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// Anything else: not JSON (syntax, trailing data, NaN, numbers out of the f64 range,
    /// lone surrogates, nesting deeper than 128 levels, ...).
    #[error("{message} at line {line} column {column}")]
    Syntax {
        /// What is wrong (serde_json's wording, without the position).
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
}

impl ParseError {
    /// The stage this error belongs to: [`Stage::Decode`] for invalid UTF-8, else
    /// [`Stage::Json`].
    pub fn stage(&self) -> Stage {
        match self {
            ParseError::InvalidUtf8 { .. } => Stage::Decode,
            _ => Stage::Json,
        }
    }
}

/// The string rules of the schema (each a Python regular expression upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `^[a-z0-9_]+$`
    Origin,
    /// `^[a-z0-9_]+:[^\0]*$` (v5)
    ObjectId,
    /// `^[a-z0-9_]+:.*$` (v3, v4: the part after the colon has no line feed)
    LegacyObjectId,
    /// `^[0-9a-f]{40}(\+[0-9a-f]{64})?$` (v3 revision ids)
    RevisionId,
    /// `^[^\0]*$`: free text without NUL characters (v5)
    NoNul,
    /// `^[0-9a-f]{40}$`
    CommitHash,
    /// `^$|^[0-9a-f]{64}$`
    PatchsetHash,
    /// `^[a-z0-9_]*$`
    Architecture,
    /// `^([a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*)?$` (v5 test paths and issue categories)
    Path,
    /// `^[.a-zA-Z0-9_-]*$` (v3, v4 test paths)
    LegacyTestPath,
    /// `^[^ \0]+(,[^ \0]+)*$` (v5 device-tree compatible entries)
    Compatible,
    /// `^[^ ]+(,[^ ]+)*$` (v4.4, v4.5)
    LegacyCompatible,
    /// `^[^/\0]+$` (v5 resource names)
    ResourceName,
    /// `^[^/]+$` (v3, v4 resource names)
    LegacyResourceName,
    /// `^https://[^\0]*$` (v5 `git_repository_url`)
    HttpsUrl,
    /// `^(https|git)://.*$` (v3, v4 `git_repository_url`)
    LegacyGitUrl,
}

impl Rule {
    /// The upstream pattern, as written in the KCIDB schema.
    pub fn pattern(self) -> &'static str {
        match self {
            Rule::Origin => r"^[a-z0-9_]+$",
            Rule::ObjectId => r"^[a-z0-9_]+:[^\0]*$",
            Rule::LegacyObjectId => r"^[a-z0-9_]+:.*$",
            Rule::RevisionId => r"^[0-9a-f]{40}(\+[0-9a-f]{64})?$",
            Rule::NoNul => r"^[^\0]*$",
            Rule::CommitHash => r"^[0-9a-f]{40}$",
            Rule::PatchsetHash => r"^$|^[0-9a-f]{64}$",
            Rule::Architecture => r"^[a-z0-9_]*$",
            Rule::Path => r"^([a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*)?$",
            Rule::LegacyTestPath => r"^[.a-zA-Z0-9_-]*$",
            Rule::Compatible => r"^[^ \0]+(,[^ \0]+)*$",
            Rule::LegacyCompatible => r"^[^ ]+(,[^ ]+)*$",
            Rule::ResourceName => r"^[^/\0]+$",
            Rule::LegacyResourceName => r"^[^/]+$",
            Rule::HttpsUrl => r"^https://[^\0]*$",
            Rule::LegacyGitUrl => r"^(https|git)://.*$",
        }
    }

    /// What the rule means, in words.
    pub fn meaning(self) -> &'static str {
        match self {
            Rule::Origin => "an origin: one or more of a-z, 0-9, _",
            Rule::ObjectId | Rule::LegacyObjectId => {
                "an object id: \"<origin>:<local id>\", the origin one or more of a-z, 0-9, _"
            }
            Rule::RevisionId => "a revision id: a 40-digit commit hash, optionally +<sha256>",
            Rule::NoNul => "text without NUL characters",
            Rule::CommitHash => "a full 40-digit lower-case hexadecimal commit hash",
            Rule::PatchsetHash => "empty or a 64-digit lower-case hexadecimal sha256",
            Rule::Architecture => "an architecture: zero or more of a-z, 0-9, _",
            Rule::Path | Rule::LegacyTestPath => {
                "a dot-separated path of non-empty segments of a-z, A-Z, 0-9, _, -"
            }
            Rule::Compatible | Rule::LegacyCompatible => {
                "a device-tree compatible: non-empty, without spaces"
            }
            Rule::ResourceName | Rule::LegacyResourceName => "a file name: non-empty, without '/'",
            Rule::HttpsUrl => "an https:// URL",
            Rule::LegacyGitUrl => "an https:// or git:// URL",
        }
    }
}

/// The string formats the schema checks (`format` in JSON Schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// An absolute URI (RFC 3986), as the Python `rfc3987` package's `URI` rule.
    Uri,
    /// An RFC 3339 date-time with a time zone, as the Python `rfc3339-validator` package.
    DateTime,
    /// An e-mail address; like Python's `jsonschema`, only an `@` is required.
    Email,
}

impl Format {
    /// The JSON Schema format name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Uri => "uri",
            Format::DateTime => "date-time",
            Format::Email => "email",
        }
    }
}

/// JSON value types, for type errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonType {
    /// `null`
    Null,
    /// `true` / `false`
    Boolean,
    /// A number with no fractional part.
    Integer,
    /// Any number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonType {
    /// The type of a JSON value (numbers are reported as `Number`).
    pub fn of(value: &serde_json::Value) -> JsonType {
        use serde_json::Value;
        match value {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    /// The JSON Schema type name.
    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Array => "array",
            JsonType::Object => "object",
        }
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value is wrong.
///
/// Variants documented as *stricter than kcidb-io* reject input that the reference
/// validator accepts, deliberately (see `NOTES.md`); [`Reason::stricter_than_kcidb_io`]
/// tells them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// A required property is absent (the pointer is the object's).
    #[error("required property {property:?} is missing")]
    Missing {
        /// The missing property.
        property: &'static str,
    },
    /// A property the schema does not define (the pointer is the property's own).
    #[error("property {property:?} is not defined by I/O schema {version}")]
    Unknown {
        /// The unexpected property.
        property: String,
        /// The schema version whose rules were applied.
        version: SchemaVersion,
    },
    /// `null` where a value is expected (KCIDB never allows null outside `misc`).
    #[error("null is not allowed (omit the property instead), expected {expected}")]
    Null {
        /// The expected type.
        expected: JsonType,
    },
    /// A value of the wrong type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// The expected type.
        expected: JsonType,
        /// The type found.
        found: JsonType,
    },
    /// A string that does not match its pattern.
    #[error("{value:?} is not {} (pattern {})", rule.meaning(), rule.pattern())]
    Pattern {
        /// The rule broken.
        rule: Rule,
        /// The offending value, cut to 100 characters.
        value: String,
    },
    /// A string that is not of its format.
    #[error("{value:?} is not a valid {}", format.as_str())]
    Format {
        /// The format.
        format: Format,
        /// The offending value, cut to 100 characters.
        value: String,
    },
    /// A string longer than allowed (counted in Unicode code points).
    #[error("{length} characters is longer than the maximum of {max}")]
    TooLong {
        /// The limit.
        max: usize,
        /// The length found.
        length: usize,
    },
    /// A string that is not one of the allowed values.
    #[error("{value:?} is not one of {allowed:?}")]
    NotInEnum {
        /// The offending value, cut to 100 characters.
        value: String,
        /// The allowed values.
        allowed: &'static [&'static str],
    },
    /// A number below its minimum.
    #[error("{value} is less than the minimum of {minimum}")]
    BelowMinimum {
        /// The offending value, as written.
        value: String,
        /// The minimum.
        minimum: i64,
    },
    /// A number above its maximum.
    #[error("{value} is greater than the maximum of {maximum}")]
    AboveMaximum {
        /// The offending value, as written.
        value: String,
        /// The maximum.
        maximum: u64,
    },
    /// A value that must be one constant (`version.major`).
    #[error("{value} is not {expected}: the known versions are {known}")]
    NotConst {
        /// The offending value, as written.
        value: String,
        /// The only allowed value.
        expected: u64,
        /// The known versions, for the message.
        known: &'static str,
    },
    /// I/O versions 1.x and 2.x (2020, before `origin:` ids): kcidb-io still reads them, we
    /// do not. Stricter than kcidb-io.
    #[error("I/O schema v{major}.{minor} is obsolete and not supported: submit v5.3 (or v3/v4)")]
    ObsoleteVersion {
        /// Declared major version.
        major: u64,
        /// Declared minor version.
        minor: u64,
    },
    /// The value would match its pattern without a final line feed: Python's `$` also
    /// matches before a trailing `\n`, so kcidb-io accepts it; we do not (an origin
    /// `"maestro\n"` is not the origin `"maestro"`). Stricter than kcidb-io.
    #[error("{value:?} ends with a line feed; without it the value would be valid")]
    TrailingNewline {
        /// The offending value, cut to 100 characters.
        value: String,
    },
    /// A NUL character in a `misc` string or key. kcidb-io does not look into `misc`, but
    /// PostgreSQL `jsonb` cannot store `\u0000`. Stricter than kcidb-io.
    #[error("NUL character inside misc (PostgreSQL jsonb cannot store \\u0000)")]
    NulInMisc,
    /// An integer that does not fit the database (`INTEGER`, at most 2^31-1). Python and the
    /// schema accept any size. Stricter than kcidb-io.
    #[error("{value} is too large: issue versions must be at most {max} (database INTEGER)")]
    IntegerTooLarge {
        /// The offending value, as written.
        value: String,
        /// The maximum.
        max: i64,
    },
    /// Upgrade: a v3/v4 `git_repository_url` that is not https (v5 requires https).
    #[error(
        "{url:?} is not an https:// URL and cannot be inherited by v5: replace it with the \
             https URL of the repository"
    )]
    NotHttpsRepository {
        /// The URL, cut to 100 characters.
        url: String,
    },
    /// Upgrade: a v3/v4 test path that is not a valid v5 path (empty segments).
    #[error("test path {path:?} is invalid, ambiguous and cannot be inherited by v5: correct it")]
    AmbiguousTestPath {
        /// The path, cut to 100 characters.
        path: String,
    },
    /// Upgrade: a NUL character in a string outside `misc` (banned since v5.0).
    #[error("{value:?} contains a NUL character, which v5 does not allow")]
    NulCharacter {
        /// The offending value, cut to 100 characters.
        value: String,
    },
    /// Internal: a converted document does not fit the typed model (a bug, never expected).
    #[error("internal error: {0}")]
    Internal(String),
    /// A streamed document ([`crate::stream`]) has more problems than are listed.
    #[error("more problems follow; only the first {shown} are listed")]
    TooManyProblems {
        /// How many are listed before this one.
        shown: usize,
    },
}

impl Reason {
    /// Whether this rejects something the reference validator (kcidb-io) accepts.
    pub fn stricter_than_kcidb_io(&self) -> bool {
        matches!(
            self,
            Reason::ObsoleteVersion { .. }
                | Reason::TrailingNewline { .. }
                | Reason::NulInMisc
                | Reason::IntegerTooLarge { .. }
        )
    }
}

/// One problem: where (a JSON pointer, RFC 6901, `""` for the document) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer of the offending value, e.g. `/builds/5/start_time`. For a missing
    /// property it is the object's pointer.
    pub pointer: String,
    /// What is wrong.
    pub reason: Reason,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "(document)"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.reason)
    }
}

impl std::error::Error for Problem {}

/// Why a submission was rejected: the first failing stage and what failed there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// Not UTF-8, or not JSON.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The document breaks the schema of its version.
    #[error("invalid against I/O schema {version}: {}", summary(problems))]
    Schema {
        /// The schema version whose rules were applied (the latest for an unknown version).
        version: SchemaVersion,
        /// Every problem found, in document order.
        problems: Vec<Problem>,
    },
    /// A valid older document cannot be upgraded to the latest version.
    #[error("cannot upgrade from I/O schema {from}: {}", summary(problems))]
    Upgrade {
        /// The version of the document.
        from: SchemaVersion,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

impl Rejection {
    /// The stage at which the document was rejected.
    pub fn stage(&self) -> Stage {
        match self {
            Rejection::Parse(e) => e.stage(),
            Rejection::Schema { .. } => Stage::Schema,
            Rejection::Upgrade { .. } => Stage::Upgrade,
        }
    }

    /// The problems found (empty for parse errors, which have no pointer).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Rejection::Parse(_) => &[],
            Rejection::Schema { problems, .. } | Rejection::Upgrade { problems, .. } => problems,
        }
    }

    /// Whether kcidb-io would have accepted the document, i.e. every problem is one of our
    /// documented stricter checks. Parse errors count as not stricter (see `NOTES.md` for the
    /// JSON that Python's parser accepts and we do not).
    pub fn only_stricter_than_kcidb_io(&self) -> bool {
        let problems = self.problems();
        !problems.is_empty() && problems.iter().all(|p| p.reason.stricter_than_kcidb_io())
    }
}

/// `{"pointer": "/builds/0/status", "message": "...", "stricter_than_kcidb_io": false}`, the
/// shape for API responses.
impl serde::Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Problem", 3)?;
        s.serialize_field("pointer", &self.pointer)?;
        s.serialize_field("message", &self.reason.to_string())?;
        s.serialize_field(
            "stricter_than_kcidb_io",
            &self.reason.stricter_than_kcidb_io(),
        )?;
        s.end()
    }
}

/// `{"stage": "schema", "message": "...", "problems": [...]}`, the shape for API responses
/// (`problems` is empty for decode and JSON errors, whose message has the position).
impl serde::Serialize for Rejection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Rejection", 3)?;
        s.serialize_field("stage", self.stage().as_str())?;
        s.serialize_field("message", &self.to_string())?;
        s.serialize_field("problems", self.problems())?;
        s.end()
    }
}

fn summary(problems: &[Problem]) -> String {
    match problems {
        [] => "no details".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// Merging two objects that are not the same object (different ids, or issue versions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot merge {kind} {earlier:?} with {later:?}: not the same object")]
pub struct MergeError {
    /// The object type (`checkout`, `build`, ...).
    pub kind: &'static str,
    /// The key of the earlier object.
    pub earlier: String,
    /// The key of the later object.
    pub later: String,
}

/// Cuts a value for an error message to 100 characters.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((i, _)) => format!("{}...", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_serialize_for_apis() {
        let rejection = Rejection::Schema {
            version: SchemaVersion::LATEST,
            problems: vec![
                Problem {
                    pointer: "/builds/0/status".to_string(),
                    reason: Reason::NotInEnum {
                        value: "pass".to_string(),
                        allowed: &["PASS"],
                    },
                },
                Problem {
                    pointer: "/tests/0/misc/x".to_string(),
                    reason: Reason::NulInMisc,
                },
            ],
        };
        let json = serde_json::to_value(&rejection).unwrap();
        assert_eq!(json["stage"], "schema");
        assert_eq!(json["problems"][0]["pointer"], "/builds/0/status");
        assert_eq!(
            json["problems"][0]["message"],
            r#""pass" is not one of ["PASS"]"#
        );
        assert_eq!(json["problems"][1]["stricter_than_kcidb_io"], true);
        assert!(json["message"].as_str().unwrap().contains("(and 1 more)"));
        let parse = Rejection::Parse(ParseError::Empty);
        assert_eq!(serde_json::to_value(&parse).unwrap()["stage"], "json");
    }
}
