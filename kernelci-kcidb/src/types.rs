//! Typed KCIDB I/O objects of the latest major version (v5.x; every field of v5.3).
//!
//! Serialization gives exactly the JSON KCIDB expects: the schema's property names, absent
//! optional properties omitted (never `null`), `misc` kept as free-form JSON in its original
//! key order. Date-times, URLs and ids stay strings as submitted (see
//! [`crate::formats::parse_date_time`] to read a date-time).
//!
//! Deserializing a [`Submission`] (with serde or [`Submission::from_value`]) validates it and
//! upgrades older versions; the individual object types derive a plain serde
//! `Deserialize` and do not validate on their own (call [`Submission::validate`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{Problem, Reason, Rejection};
use crate::version::SchemaVersion;

/// Free-form extra data (`misc`): any JSON object.
pub type Misc = Map<String, Value>;

/// A test or build status, listed from the highest priority to the lowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Completed and found the code faulty.
    Fail,
    /// The test (or build tooling) itself failed; the code status is unknown.
    Error,
    /// The harness failed, so the test did not run.
    Miss,
    /// Completed and found the code correct.
    Pass,
    /// Completed with a result (e.g. a measurement) but no verdict on the code.
    Done,
    /// Not applicable, did not run.
    Skip,
}

impl Status {
    /// Every status, highest priority first.
    pub const ALL: [Status; 6] = [
        Status::Fail,
        Status::Error,
        Status::Miss,
        Status::Pass,
        Status::Done,
        Status::Skip,
    ];

    /// The wire name (`"FAIL"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Miss => "MISS",
            Status::Pass => "PASS",
            Status::Done => "DONE",
            Status::Skip => "SKIP",
        }
    }

    /// The priority for summaries: 0 for FAIL (highest) to 5 for SKIP.
    pub fn priority_rank(self) -> u8 {
        match self {
            Status::Fail => 0,
            Status::Error => 1,
            Status::Miss => 2,
            Status::Pass => 3,
            Status::Done => 4,
            Status::Skip => 5,
        }
    }

    /// The summary status of several results: the one with the highest priority, `None`
    /// when there is none (no result yet).
    pub fn summary(statuses: impl IntoIterator<Item = Status>) -> Option<Status> {
        statuses.into_iter().min_by_key(|s| s.priority_rank())
    }
}

/// How to scale a test number for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberPrefix {
    /// Powers of 1000: K, M, G, ...
    Metric,
    /// Powers of 1024: Ki, Mi, Gi, ...
    Binary,
}

/// A named remote file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// A plain file name (no `/`).
    pub name: String,
    /// Where to download it (an absolute URI).
    pub url: String,
}

/// A source checkout: a commit of a repository, possibly with patches applied.
///
/// `Default` (empty `id` and `origin`, which never validate) is for building one in code
/// with `..Default::default()`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    /// Object id, `<origin>:<local id>`.
    pub id: String,
    /// The submitting CI system.
    pub origin: String,
    /// Last database update (metadata: ignored on submission).
    #[serde(rename = "_timestamp", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The tree name, e.g. `mainline`, `net-next`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_name: Option<String>,
    /// The https URL of the repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_repository_url: Option<String>,
    /// The full commit hash (40 lower-case hex digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit_hash: Option<String>,
    /// `git describe` output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit_name: Option<String>,
    /// Annotated tags pointing at the commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit_tags: Option<Vec<String>>,
    /// The full commit message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit_message: Option<String>,
    /// The branch checked out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_repository_branch: Option<String>,
    /// Whether the commit was the branch tip at `start_time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_repository_branch_tip: Option<bool>,
    /// Patches applied, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patchset_files: Option<Vec<Resource>>,
    /// sha256 over the patches' sha256 sums, `""` for no patches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patchset_hash: Option<String>,
    /// Message-ID of the e-mail introducing the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Human-readable comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When the checkout started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the origin finished all builds it planned (v5.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_builds_finish_time: Option<String>,
    /// When the origin finished all tests it planned (v5.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_tests_finish_time: Option<String>,
    /// The checkout log (e.g. `git am` output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// The most relevant part of the log (at most 16384 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_excerpt: Option<String>,
    /// Whether the checkout succeeded (patches applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// Free-form extra data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misc: Option<Misc>,
}

/// A build of a checkout.
///
/// `Default` (empty `id` and `origin`, which never validate) is for building one in code
/// with `..Default::default()`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Object id, `<origin>:<local id>`.
    pub id: String,
    /// The submitting CI system.
    pub origin: String,
    /// The checkout built.
    pub checkout_id: String,
    /// Last database update (metadata: ignored on submission).
    #[serde(rename = "_timestamp", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Human-readable comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When the build started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Seconds it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Target architecture (`[a-z0-9_]*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The full build command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Compiler name and version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiler: Option<String>,
    /// Input files (e.g. the configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_files: Option<Vec<Resource>>,
    /// Output files (images, packages, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_files: Option<Vec<Resource>>,
    /// Configuration name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_name: Option<String>,
    /// Configuration file URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_url: Option<String>,
    /// Plain-text build log URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// The most relevant part of the log (at most 16384 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_excerpt: Option<String>,
    /// Build status (absent: still running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Free-form extra data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misc: Option<Misc>,
}

/// Where a test ran.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Human-readable comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The device tree's root `compatible` values, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatible: Option<Vec<String>>,
    /// Free-form extra data (e.g. `platform`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misc: Option<Misc>,
}

/// A numerical test output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestNumber {
    /// The value.
    pub value: f64,
    /// Unit symbol(s), e.g. `s`, `MiB`, `B/s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Display scaling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<NumberPrefix>,
}

/// A test run against a build.
///
/// `Default` (empty `id` and `origin`, which never validate) is for building one in code
/// with `..Default::default()`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    /// Object id, `<origin>:<local id>`.
    pub id: String,
    /// The submitting CI system.
    pub origin: String,
    /// The build tested.
    pub build_id: String,
    /// Last database update (metadata: ignored on submission).
    #[serde(rename = "_timestamp", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Where it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Dot-separated test path (`""` is the root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Human-readable comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Plain-text test log URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// The most relevant part of the log (at most 16384 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_excerpt: Option<String>,
    /// Test status (absent: scheduled or running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Numerical output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<TestNumber>,
    /// When the test started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Seconds it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Input files: rootfs, initramfs, ... (v5.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_files: Option<Vec<Resource>>,
    /// Output files, except the one at `log_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_files: Option<Vec<Resource>>,
    /// Free-form extra data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misc: Option<Misc>,
}

/// Which layers are responsible for an issue (a missing one means unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Culprit {
    /// The built or tested code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<bool>,
    /// The tool: compiler, test, static analyser, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<bool>,
    /// The harness controlling the build or test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub harness: Option<bool>,
}

/// An issue found in reports; identified by `(id, version)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issue {
    /// Object id, `<origin>:<local id>`.
    pub id: String,
    /// Modification version; only the highest is used for triage (at most 2^31-1).
    #[serde(deserialize_with = "integer")]
    pub version: u32,
    /// The submitting CI system.
    pub origin: String,
    /// Last database update (metadata: ignored on submission).
    #[serde(rename = "_timestamp", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Category paths, e.g. `build.error` (v5.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// URL of a report describing the issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
    /// Subject of that report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_subject: Option<String>,
    /// Responsible layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub culprit: Option<Culprit>,
    /// Human-readable comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Free-form extra data (e.g. `logspec`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misc: Option<Misc>,
}

/// An occurrence (or absence) of an issue in a build or test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// Object id, `<origin>:<local id>`.
    pub id: String,
    /// The submitting CI system.
    pub origin: String,
    /// The issue.
    pub issue_id: String,
    /// The issue version.
    #[serde(deserialize_with = "integer")]
    pub issue_version: u32,
    /// Last database update (metadata: ignored on submission).
    #[serde(rename = "_timestamp", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The build exhibiting (or missing) the issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// The test exhibiting (or missing) the issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_id: Option<String>,
    /// True: the issue occurred; false: it was absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// Human-readable comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Free-form extra data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misc: Option<Misc>,
}

/// A whole KCIDB I/O document of v5.x: the version and the five object lists.
///
/// [`Submission::from_slice`] and [`Submission::from_value`] (and serde deserialization)
/// validate the input against the version it declares and upgrade it to v5.3, so their
/// result always has [`SchemaVersion::LATEST`]. Empty lists are omitted when serializing
/// (the schema gives an empty and a missing list the same meaning).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Submission {
    /// The I/O schema version (5.0 to 5.3; the readers always give 5.3).
    pub version: SchemaVersion,
    /// Source checkouts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkouts: Vec<Checkout>,
    /// Builds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<Build>,
    /// Tests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<Test>,
    /// Issues.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<Issue>,
    /// Incidents.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<Incident>,
}

/// The serde shape of a [`Submission`], used once the document is valid v5.3.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmissionRepr {
    /// Read (a known version is required) but not kept: the readers give v5.3.
    #[serde(rename = "version")]
    _version: SchemaVersion,
    #[serde(default)]
    checkouts: Vec<Checkout>,
    #[serde(default)]
    builds: Vec<Build>,
    #[serde(default)]
    tests: Vec<Test>,
    #[serde(default)]
    issues: Vec<Issue>,
    #[serde(default)]
    incidents: Vec<Incident>,
}

impl Default for Submission {
    fn default() -> Self {
        Submission::new()
    }
}

impl Submission {
    /// An empty v5.3 submission.
    pub fn new() -> Submission {
        Submission {
            version: SchemaVersion::LATEST,
            checkouts: Vec::new(),
            builds: Vec::new(),
            tests: Vec::new(),
            issues: Vec::new(),
            incidents: Vec::new(),
        }
    }

    /// Parses, validates and (if older) upgrades a submission's bytes; see [`crate::load`].
    pub fn from_slice(bytes: &[u8]) -> Result<Submission, Rejection> {
        crate::load(bytes)
    }

    /// Validates and (if older) upgrades a JSON document.
    pub fn from_value(doc: Value) -> Result<Submission, Rejection> {
        let version = crate::validate(&doc)?;
        let upgraded = if version == SchemaVersion::LATEST {
            doc
        } else {
            crate::upgrade(doc, version)?
        };
        let repr: SubmissionRepr =
            serde_json::from_value(upgraded).map_err(|e| Rejection::Schema {
                version: SchemaVersion::LATEST,
                problems: vec![Problem {
                    pointer: String::new(),
                    reason: Reason::Internal(format!("typed conversion failed: {e}")),
                }],
            })?;
        Ok(Submission {
            version: SchemaVersion::LATEST,
            checkouts: repr.checkouts,
            builds: repr.builds,
            tests: repr.tests,
            issues: repr.issues,
            incidents: repr.incidents,
        })
    }

    /// The typed value of a text the fast path found valid (v5.x, restamped v5.3), or `None`
    /// if the typed conversion disagrees (then the caller takes the full path).
    pub(crate) fn from_valid_text(text: &str) -> Option<Submission> {
        let repr: SubmissionRepr = serde_json::from_str(text).ok()?;
        Some(Submission {
            version: SchemaVersion::LATEST,
            checkouts: repr.checkouts,
            builds: repr.builds,
            tests: repr.tests,
            issues: repr.issues,
            incidents: repr.incidents,
        })
    }

    /// The JSON document.
    pub fn to_value(&self) -> Value {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The JSON text (compact).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks the submission against the schema of its version (e.g. one built in code
    /// before sending it). A non-finite `duration` or number serializes as `null` and is
    /// reported as such.
    pub fn validate(&self) -> Result<(), Rejection> {
        crate::validate(&self.to_value()).map(|_| ())
    }

    /// The number of objects in the five lists.
    pub fn object_count(&self) -> usize {
        self.checkouts.len()
            + self.builds.len()
            + self.tests.len()
            + self.issues.len()
            + self.incidents.len()
    }
}

impl<'de> Deserialize<'de> for Submission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let doc = Value::deserialize(deserializer)?;
        Submission::from_value(doc).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SchemaVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Version", 2)?;
        s.serialize_field("major", &self.major())?;
        s.serialize_field("minor", &self.minor())?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Version {
            major: u64,
            #[serde(default)]
            minor: u64,
        }
        let v = Version::deserialize(deserializer)?;
        SchemaVersion::known(v.major, v.minor).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown I/O schema version {}.{}",
                v.major, v.minor
            ))
        })
    }
}

/// Reads a non-negative integer that may be written as a float without fraction (`1.0`),
/// as JSON Schema Draft-07 allows.
fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    use serde::de::Error;
    let n = serde_json::Number::deserialize(deserializer)?;
    if let Some(u) = n.as_u64() {
        return u32::try_from(u).map_err(|_| D::Error::custom(format!("{u} is too large")));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            // Exact: an integral value within the u32 range.
            Ok(f as u32)
        }
        _ => Err(D::Error::custom(format!(
            "{n} is not a non-negative integer"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_summary() {
        assert_eq!(
            Status::summary([Status::Pass, Status::Skip, Status::Miss]),
            Some(Status::Miss)
        );
        assert_eq!(Status::summary([]), None);
        assert_eq!(serde_json::to_value(Status::Miss).unwrap(), json!("MISS"));
    }

    #[test]
    fn optional_fields_are_omitted() {
        let build = Build {
            id: "a:1".into(),
            origin: "a".into(),
            checkout_id: "a:c".into(),
            timestamp: None,
            comment: None,
            start_time: None,
            duration: Some(1.5),
            architecture: None,
            command: None,
            compiler: None,
            input_files: None,
            output_files: Some(vec![]),
            config_name: None,
            config_url: None,
            log_url: None,
            log_excerpt: None,
            status: Some(Status::Pass),
            misc: None,
        };
        assert_eq!(
            serde_json::to_value(&build).unwrap(),
            json!({"id": "a:1", "origin": "a", "checkout_id": "a:c", "duration": 1.5,
                "output_files": [], "status": "PASS"})
        );
    }

    #[test]
    fn submission_round_trip() {
        let doc = json!({"version": {"major": 5, "minor": 3},
            "issues": [{"id": "a:i", "origin": "a", "version": 2.0, "culprit": {},
                "_timestamp": "2025-01-01T00:00:00Z"}],
            "tests": [{"id": "a:t", "origin": "a", "build_id": "a:b",
                "number": {"value": 42, "prefix": "binary"}, "misc": {"z": 1, "a": null}}]});
        let sub = Submission::from_value(doc).unwrap();
        assert_eq!(sub.issues[0].version, 2);
        assert_eq!(sub.issues[0].culprit, Some(Culprit::default()));
        let text = sub.to_json();
        assert!(text.contains(r#""misc":{"z":1,"a":null}"#), "{text}");
        let again: Submission = serde_json::from_str(&text).unwrap();
        assert_eq!(again, sub);
        assert!(sub.validate().is_ok());
        assert!(serde_json::from_str::<Submission>(r#"{"version": {"major": 9}}"#).is_err());
    }
}
