//! KCIDB I/O: typed objects, validation, version upgrades and merge rules.
//!
//! A KCIDB submission is a JSON document in the KCIDB I/O schema (checkouts, builds, tests,
//! issues, incidents; latest version v5.3). This crate reads one the way the KCIDB
//! ingesters do, in stages, and explains every reason for refusing it:
//!
//! 1. [`parse()`]: UTF-8, one strict JSON value ([`ParseError`]);
//! 2. [`validate()`]: the schema of the version the document declares (v3.0, v4.0-4.5,
//!    v5.0-5.3), every problem with its JSON pointer ([`Problem`]);
//! 3. [`upgrade()`]: older versions converted to v5.3 (specs/kcidb.md §3.11);
//! 4. [`Submission`]: the typed v5.3 document, serialized back to exactly KCIDB's JSON.
//!
//! [`load`] does all four; [`check`] gives the verdict without building the typed value.
//! Both first try a fast path that validates while parsing (no JSON tree) and only ever
//! confirms a valid v5.x document; anything else takes the stages above, which explain.
//! Same-object resubmissions merge deterministically ([`merge()`], [`Submission::dedup`]).
//!
//! Pure by default: no network, no database, no async runtime ([`stream`] reads from any
//! `io::Read`; the store and the client are the optional features `db` and `client`). The
//! verdicts match the reference validator (the `kcidb-io` Python package) except where it
//! accepts harmful input; each such deliberate
//! difference is listed in `NOTES.md` and flagged by [`Reason::stricter_than_kcidb_io`].
//!
//! ```
//! let bytes = br#"{"version": {"major": 4, "minor": 5},
//!     "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1", "valid": true}]}"#;
//! let submission = kernelci_kcidb::load(bytes).unwrap();
//! assert_eq!(submission.version, kernelci_kcidb::SchemaVersion::LATEST);
//! assert_eq!(submission.builds[0].status, Some(kernelci_kcidb::Status::Pass));
//!
//! let bad = br#"{"version": {"major": 5, "minor": 3},
//!     "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1",
//!                 "status": "pass", "start_time": "yesterday"}]}"#;
//! let rejection = kernelci_kcidb::load(bad).unwrap_err();
//! let pointers: Vec<_> = rejection.problems().iter().map(|p| p.pointer.as_str()).collect();
//! assert_eq!(pointers, ["/builds/0/status", "/builds/0/start_time"]);
//! ```

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "db")]
pub mod db;
pub mod error;
mod fast_path;
pub mod formats;
pub mod maestro;
pub mod merge;
pub mod parse;
pub mod patterns;
mod pointer;
#[cfg(feature = "db")]
pub mod query;
pub mod regress;
mod schema;
pub mod stream;
pub mod types;
pub mod upgrade;
pub mod validate;
pub mod version;

use serde_json::Value;

pub use error::{
    Format, JsonType, MergeError, ParseError, Problem, Reason, Rejection, Rule, Stage,
};
pub use merge::{KcidbObject, dedup, merge};
pub use parse::parse_json as parse;
pub use types::{
    Build, Checkout, Culprit, Environment, Incident, Issue, Misc, NumberPrefix, Resource, Status,
    Submission, Test, TestNumber,
};
pub use upgrade::upgrade;
pub use validate::validate;
pub use version::{Declared, SchemaVersion, declared_version};

/// Parses, validates and upgrades a submission's bytes into the typed v5.3 [`Submission`].
pub fn load(bytes: &[u8]) -> Result<Submission, Rejection> {
    if let Some(text) = fast_text(bytes)
        && fast_path::fast_check(text).is_some()
        && let Some(submission) = Submission::from_valid_text(text)
    {
        return Ok(submission);
    }
    Submission::from_value(parse(bytes)?)
}

/// The verdict on a submission's bytes, as the ingesters would reach it (parse, validate,
/// upgrade), without building the typed value. Returns the version the document declares.
pub fn check(bytes: &[u8]) -> Result<SchemaVersion, Rejection> {
    if let Some(version) = fast_text(bytes).and_then(fast_path::fast_check) {
        return Ok(version);
    }
    check_value(parse(bytes)?)
}

/// The text for the fast path (which only ever confirms a valid document; everything else
/// goes through [`parse`] and [`validate`], which explain).
fn fast_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.starts_with('\u{feff}')).then_some(text)
}

/// [`check`] for an already parsed document.
pub fn check_value(doc: Value) -> Result<SchemaVersion, Rejection> {
    let version = validate(&doc)?;
    // Minor upgrades cannot fail; only older majors need the conversion to be tried.
    if version.major() < SchemaVersion::LATEST.major() {
        upgrade(doc, version)?;
    }
    Ok(version)
}

/// The number of objects in a document's top-level lists (whatever its version), e.g. for
/// throughput figures.
pub fn count_objects(doc: &Value) -> usize {
    doc.as_object()
        .map(|map| {
            map.iter()
                .filter(|(key, _)| key.as_str() != "version")
                .filter_map(|(_, list)| list.as_array().map(Vec::len))
                .sum()
        })
        .unwrap_or(0)
}
