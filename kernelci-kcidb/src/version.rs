//! KCIDB I/O schema versions: which ones exist, which we read, and how a document says which
//! one it follows.

use std::fmt;

use serde_json::Value;

/// A KCIDB I/O schema version we can validate: v3.0, v4.0 to v4.5, v5.0 to v5.3.
///
/// Only these values can be constructed ([`SchemaVersion::known`], [`SchemaVersion::LATEST`]
/// and the constants), so a `SchemaVersion` always names a schema this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaVersion {
    major: u8,
    minor: u8,
}

impl SchemaVersion {
    /// v3.0: `revisions`, builds, tests.
    pub const V3_0: SchemaVersion = SchemaVersion { major: 3, minor: 0 };
    /// v4.0: revisions become checkouts.
    pub const V4_0: SchemaVersion = SchemaVersion { major: 4, minor: 0 };
    /// v4.1: issues and incidents.
    pub const V4_1: SchemaVersion = SchemaVersion { major: 4, minor: 1 };
    /// v4.2: the MISS status.
    pub const V4_2: SchemaVersion = SchemaVersion { major: 4, minor: 2 };
    /// v4.3: `_timestamp` on every object.
    pub const V4_3: SchemaVersion = SchemaVersion { major: 4, minor: 3 };
    /// v4.4: test `environment.compatible` and `number`.
    pub const V4_4: SchemaVersion = SchemaVersion { major: 4, minor: 4 };
    /// v4.5: checkout `git_commit_tags`, `git_commit_message`, `git_repository_branch_tip`.
    pub const V4_5: SchemaVersion = SchemaVersion { major: 4, minor: 5 };
    /// v5.0: build status, no waived/contacts/build_valid/test_status, stricter strings.
    pub const V5_0: SchemaVersion = SchemaVersion { major: 5, minor: 0 };
    /// v5.1: checkout `origin_builds_finish_time`, `origin_tests_finish_time`.
    pub const V5_1: SchemaVersion = SchemaVersion { major: 5, minor: 1 };
    /// v5.2: issue `categories`.
    pub const V5_2: SchemaVersion = SchemaVersion { major: 5, minor: 2 };
    /// v5.3: test `input_files`.
    pub const V5_3: SchemaVersion = SchemaVersion { major: 5, minor: 3 };
    /// The latest version, which [`crate::Submission`] models.
    pub const LATEST: SchemaVersion = SchemaVersion::V5_3;

    /// Every version we read, oldest first.
    pub const ALL: [SchemaVersion; 11] = [
        SchemaVersion::V3_0,
        SchemaVersion::V4_0,
        SchemaVersion::V4_1,
        SchemaVersion::V4_2,
        SchemaVersion::V4_3,
        SchemaVersion::V4_4,
        SchemaVersion::V4_5,
        SchemaVersion::V5_0,
        SchemaVersion::V5_1,
        SchemaVersion::V5_2,
        SchemaVersion::V5_3,
    ];

    /// The list of known versions, for messages.
    pub(crate) const KNOWN_TEXT: &'static str = "3.0, 4.0 to 4.5 and 5.0 to 5.3";

    /// The version `major.minor`, if we know it.
    pub fn known(major: u64, minor: u64) -> Option<SchemaVersion> {
        SchemaVersion::ALL
            .into_iter()
            .find(|v| u64::from(v.major) == major && u64::from(v.minor) == minor)
    }

    /// The major number.
    pub fn major(self) -> u8 {
        self.major
    }

    /// The minor number.
    pub fn minor(self) -> u8 {
        self.minor
    }

    /// Whether this version is at least `major.minor`.
    pub(crate) fn at_least(self, major: u8, minor: u8) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// The `version` member of a document of this version.
    pub fn to_value(self) -> Value {
        serde_json::json!({"major": self.major, "minor": self.minor})
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

/// What a document's `version` member declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// A version we implement.
    Known(SchemaVersion),
    /// v1.1 or v2.0: known to kcidb-io, obsolete, not supported here.
    Obsolete {
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
    },
    /// Anything else: missing, malformed or a version that does not exist. Such documents
    /// are validated against the latest schema (as kcidb-io does), which fails.
    Unknown,
}

/// Reads the version a document declares, as kcidb-io does (without validating).
///
/// `{"major": M, "minor": m}` with non-negative integers (a missing minor is 0); other keys
/// are ignored here and reported by validation. A string `"1"` or `"1.1"` is the v1.1 form.
pub fn declared_version(doc: &Value) -> Declared {
    let Some(version) = doc.as_object().and_then(|d| d.get("version")) else {
        return Declared::Unknown;
    };
    let (major, minor) = match version {
        Value::Object(v) => {
            let Some(major) = v.get("major").and_then(Value::as_u64) else {
                return Declared::Unknown;
            };
            let minor = match v.get("minor") {
                None => 0,
                Some(m) => match m.as_u64() {
                    Some(m) => m,
                    None => return Declared::Unknown,
                },
            };
            (major, minor)
        }
        // kcidb-io v1.1 reads "M" or "M.m" (a missing minor meaning 1); only 1.1 matches.
        Value::String(s) => {
            let (major, minor) = s.split_once('.').unwrap_or((s, "1"));
            let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
            if !digits(major) || !digits(minor) {
                return Declared::Unknown;
            }
            match (major.parse::<u64>(), minor.parse::<u64>()) {
                (Ok(1), Ok(1)) => return Declared::Obsolete { major: 1, minor: 1 },
                _ => return Declared::Unknown,
            }
        }
        _ => return Declared::Unknown,
    };
    match SchemaVersion::known(major, minor) {
        Some(v) => Declared::Known(v),
        None if (major, minor) == (1, 1) || (major, minor) == (2, 0) => {
            Declared::Obsolete { major, minor }
        }
        None => Declared::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detection() {
        let d = |v: Value| declared_version(&json!({ "version": v }));
        assert_eq!(
            d(json!({"major": 5, "minor": 3})),
            Declared::Known(SchemaVersion::V5_3)
        );
        assert_eq!(d(json!({"major": 5})), Declared::Known(SchemaVersion::V5_0));
        assert_eq!(
            d(json!({"major": 4, "minor": 5})),
            Declared::Known(SchemaVersion::V4_5)
        );
        assert_eq!(
            d(json!({"major": 3, "minor": 0})),
            Declared::Known(SchemaVersion::V3_0)
        );
        assert_eq!(d(json!({"major": 5, "minor": 4})), Declared::Unknown);
        assert_eq!(d(json!({"major": 6})), Declared::Unknown);
        assert_eq!(d(json!({"major": 5.0, "minor": 3})), Declared::Unknown);
        assert_eq!(d(json!({"major": true})), Declared::Unknown);
        assert_eq!(d(json!("5.3")), Declared::Unknown);
        assert_eq!(d(json!("1")), Declared::Obsolete { major: 1, minor: 1 });
        assert_eq!(
            d(json!({"major": 2})),
            Declared::Obsolete { major: 2, minor: 0 }
        );
        assert_eq!(declared_version(&json!([])), Declared::Unknown);
        assert_eq!(declared_version(&json!({})), Declared::Unknown);
    }

    #[test]
    fn ordering() {
        assert!(SchemaVersion::V4_5 < SchemaVersion::V5_0);
        assert!(SchemaVersion::V5_3.at_least(5, 2));
        assert!(!SchemaVersion::V4_3.at_least(4, 4));
        assert_eq!(SchemaVersion::LATEST.to_string(), "v5.3");
    }
}
