//! The KCIDB I/O schema, v3.0 to v5.3, as data: for each object type, its properties, what
//! each must hold, and in which versions it exists.
//!
//! Written from specs/kcidb.md §3 (and checked against the exported schemas in the shared
//! fixtures by the tests); the upstream JSON schema files are not needed at run time.

use crate::error::{Format, Rule};
use crate::version::SchemaVersion;

/// What a property's value must be. Some kinds depend on the version ([`Kind::rule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `^[a-z0-9_]+$`
    Origin,
    /// An object id (`origin:local`).
    ObjectId,
    /// A v3 revision id (commit hash, optionally `+patchset hash`).
    RevisionId,
    /// Free text (no NUL since v5).
    Text,
    /// Free text of at most 16384 code points.
    LogExcerpt,
    /// Format `uri`.
    Uri,
    /// Format `date-time`.
    DateTime,
    /// Format `email`.
    Email,
    /// Format `uri` and an https (v5) or https/git (v3, v4) URL.
    GitRepositoryUrl,
    /// A 40-digit commit hash.
    CommitHash,
    /// Empty or a 64-digit sha256.
    PatchsetHash,
    /// `^[a-z0-9_]*$`
    Architecture,
    /// A test path (v5 path rule, or the looser v3/v4 one).
    TestPath,
    /// A v5 path (issue categories).
    Path,
    /// A device-tree compatible string.
    Compatible,
    /// A resource file name.
    ResourceName,
    /// `true` or `false`.
    Bool,
    /// Any number.
    Number,
    /// An integer of at least 0 (issue versions).
    Count,
    /// The status enum (MISS since v4.2).
    Status,
    /// The test number prefix enum: `metric` or `binary`.
    Prefix,
    /// A free-form object.
    Misc,
    /// An array of items of one kind.
    List(&'static Kind),
    /// A nested object with its own properties.
    Object(ObjectType),
}

impl Kind {
    /// The pattern a string of this kind must match in version `v`, if any.
    pub(crate) fn rule(self, v: SchemaVersion) -> Option<Rule> {
        let v5 = v.major() >= 5;
        let pick = |new: Rule, legacy: Rule| Some(if v5 { new } else { legacy });
        match self {
            Kind::Origin => Some(Rule::Origin),
            Kind::ObjectId => pick(Rule::ObjectId, Rule::LegacyObjectId),
            Kind::RevisionId => Some(Rule::RevisionId),
            Kind::Text | Kind::LogExcerpt => v5.then_some(Rule::NoNul),
            Kind::GitRepositoryUrl => pick(Rule::HttpsUrl, Rule::LegacyGitUrl),
            Kind::CommitHash => Some(Rule::CommitHash),
            Kind::PatchsetHash => Some(Rule::PatchsetHash),
            Kind::Architecture => Some(Rule::Architecture),
            Kind::TestPath => pick(Rule::Path, Rule::LegacyTestPath),
            Kind::Path => Some(Rule::Path),
            Kind::Compatible => pick(Rule::Compatible, Rule::LegacyCompatible),
            Kind::ResourceName => pick(Rule::ResourceName, Rule::LegacyResourceName),
            _ => None,
        }
    }

    /// The format a string of this kind must have, if any.
    pub(crate) fn format(self) -> Option<Format> {
        match self {
            Kind::Uri | Kind::GitRepositoryUrl => Some(Format::Uri),
            Kind::DateTime => Some(Format::DateTime),
            Kind::Email => Some(Format::Email),
            _ => None,
        }
    }

    /// Whether values of this kind are strings checked by [`Kind::rule`]/[`Kind::format`].
    pub(crate) fn is_string(self) -> bool {
        !matches!(
            self,
            Kind::Bool
                | Kind::Number
                | Kind::Count
                | Kind::Status
                | Kind::Prefix
                | Kind::Misc
                | Kind::List(_)
                | Kind::Object(_)
        )
    }
}

const RESOURCES: Kind = Kind::List(&Kind::Object(ObjectType::Resource));
const TEXTS: Kind = Kind::List(&Kind::Text);

/// The object types of the schema, including the nested ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectType {
    /// v3 `revisions[]`.
    Revision,
    /// `checkouts[]` (v4+).
    Checkout,
    /// `builds[]`.
    Build,
    /// `tests[]`.
    Test,
    /// `issues[]` (v4.1+).
    Issue,
    /// `incidents[]` (v4.1+).
    Incident,
    /// `{name, url}` in resource lists.
    Resource,
    /// Test `environment`.
    Environment,
    /// Test `number` (v4.4+).
    TestNumber,
    /// Issue `culprit`.
    Culprit,
}

/// One property of an object type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// The property name.
    pub(crate) name: &'static str,
    /// What it holds.
    pub(crate) kind: Kind,
    /// Whether it must be present.
    pub(crate) required: bool,
    /// The first version with this property.
    since: (u8, u8),
    /// The first version without it again, if it was removed.
    until: Option<(u8, u8)>,
}

impl Field {
    /// Whether the property exists in version `v`.
    pub(crate) fn exists_in(&self, v: SchemaVersion) -> bool {
        v.at_least(self.since.0, self.since.1)
            && self
                .until
                .is_none_or(|(major, minor)| !v.at_least(major, minor))
    }
}

const ALWAYS: (u8, u8) = (0, 0);

const fn f(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
        since: ALWAYS,
        until: None,
    }
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
        since: ALWAYS,
        until: None,
    }
}

const fn since(field: Field, major: u8, minor: u8) -> Field {
    Field {
        since: (major, minor),
        ..field
    }
}

const fn until(field: Field, major: u8, minor: u8) -> Field {
    Field {
        until: Some((major, minor)),
        ..field
    }
}

use Kind::*;

const REVISION: &[Field] = &[
    req("id", RevisionId),
    req("origin", Origin),
    f("tree_name", Text),
    f("git_repository_url", GitRepositoryUrl),
    f("git_commit_hash", CommitHash),
    f("git_commit_name", Text),
    f("git_repository_branch", Text),
    f("patch_mboxes", RESOURCES),
    f("message_id", Email),
    f("description", Text),
    f("publishing_time", DateTime),
    f("discovery_time", DateTime),
    f("contacts", TEXTS),
    f("log_url", Uri),
    f("valid", Bool),
    f("misc", Misc),
];

const CHECKOUT: &[Field] = &[
    since(f("_timestamp", DateTime), 4, 3),
    req("id", ObjectId),
    req("origin", Origin),
    f("tree_name", Text),
    f("git_repository_url", GitRepositoryUrl),
    f("git_commit_hash", CommitHash),
    f("git_commit_name", Text),
    since(f("git_commit_tags", TEXTS), 4, 5),
    since(f("git_commit_message", Text), 4, 5),
    f("git_repository_branch", Text),
    since(f("git_repository_branch_tip", Bool), 4, 5),
    f("patchset_files", RESOURCES),
    f("patchset_hash", PatchsetHash),
    f("message_id", Email),
    f("comment", Text),
    f("start_time", DateTime),
    since(f("origin_builds_finish_time", DateTime), 5, 1),
    since(f("origin_tests_finish_time", DateTime), 5, 1),
    f("log_url", Uri),
    f("log_excerpt", LogExcerpt),
    f("valid", Bool),
    f("misc", Misc),
    until(f("contacts", TEXTS), 5, 0),
];

const BUILD: &[Field] = &[
    since(f("_timestamp", DateTime), 4, 3),
    until(req("revision_id", RevisionId), 4, 0),
    since(req("checkout_id", ObjectId), 4, 0),
    req("id", ObjectId),
    req("origin", Origin),
    until(f("description", Text), 4, 0),
    since(f("comment", Text), 4, 0),
    f("start_time", DateTime),
    f("duration", Number),
    f("architecture", Architecture),
    f("command", Text),
    f("compiler", Text),
    f("input_files", RESOURCES),
    f("output_files", RESOURCES),
    f("config_name", Text),
    f("config_url", Uri),
    f("log_url", Uri),
    since(f("log_excerpt", LogExcerpt), 4, 0),
    until(f("valid", Bool), 5, 0),
    since(f("status", Status), 5, 0),
    f("misc", Misc),
];

const TEST: &[Field] = &[
    since(f("_timestamp", DateTime), 4, 3),
    req("build_id", ObjectId),
    req("id", ObjectId),
    req("origin", Origin),
    f("environment", Object(ObjectType::Environment)),
    f("path", TestPath),
    until(f("description", Text), 4, 0),
    since(f("comment", Text), 4, 0),
    since(f("log_url", Uri), 4, 0),
    since(f("log_excerpt", LogExcerpt), 4, 0),
    f("status", Status),
    until(f("waived", Bool), 5, 0),
    since(f("number", Object(ObjectType::TestNumber)), 4, 4),
    f("start_time", DateTime),
    f("duration", Number),
    since(f("input_files", RESOURCES), 5, 3),
    f("output_files", RESOURCES),
    f("misc", Misc),
];

const ISSUE: &[Field] = &[
    since(f("_timestamp", DateTime), 4, 3),
    req("id", ObjectId),
    req("version", Count),
    req("origin", Origin),
    since(f("categories", List(&Path)), 5, 2),
    f("report_url", Uri),
    f("report_subject", Text),
    f("culprit", Object(ObjectType::Culprit)),
    until(f("build_valid", Bool), 5, 0),
    until(f("test_status", Status), 5, 0),
    f("comment", Text),
    f("misc", Misc),
];

const INCIDENT: &[Field] = &[
    since(f("_timestamp", DateTime), 4, 3),
    req("id", ObjectId),
    req("origin", Origin),
    req("issue_id", ObjectId),
    req("issue_version", Count),
    f("build_id", ObjectId),
    f("test_id", ObjectId),
    f("present", Bool),
    f("comment", Text),
    f("misc", Misc),
];

const RESOURCE: &[Field] = &[req("name", ResourceName), req("url", Uri)];

const ENVIRONMENT: &[Field] = &[
    until(f("description", Text), 4, 0),
    since(f("comment", Text), 4, 0),
    since(f("compatible", List(&Compatible)), 4, 4),
    f("misc", Misc),
];

const TEST_NUMBER: &[Field] = &[req("value", Number), f("unit", Text), f("prefix", Prefix)];

const CULPRIT: &[Field] = &[f("code", Bool), f("tool", Bool), f("harness", Bool)];

impl ObjectType {
    /// Every property the type has in some version (filter with [`Field::exists_in`]).
    pub(crate) fn fields(self) -> &'static [Field] {
        match self {
            ObjectType::Revision => REVISION,
            ObjectType::Checkout => CHECKOUT,
            ObjectType::Build => BUILD,
            ObjectType::Test => TEST,
            ObjectType::Issue => ISSUE,
            ObjectType::Incident => INCIDENT,
            ObjectType::Resource => RESOURCE,
            ObjectType::Environment => ENVIRONMENT,
            ObjectType::TestNumber => TEST_NUMBER,
            ObjectType::Culprit => CULPRIT,
        }
    }

    /// The property `name` in version `v`, if it exists there.
    pub(crate) fn field(self, name: &str, v: SchemaVersion) -> Option<&'static Field> {
        self.field_index(name, v).map(|i| &self.fields()[i])
    }

    /// The position of property `name` of version `v` in [`ObjectType::fields`].
    pub(crate) fn field_index(self, name: &str, v: SchemaVersion) -> Option<usize> {
        // Length, first and last byte first: most candidates differ there, without a call
        // to memcmp.
        let (first, last) = (name.as_bytes().first(), name.as_bytes().last());
        self.fields().iter().position(|f| {
            f.name.len() == name.len()
                && f.name.as_bytes().first() == first
                && f.name.as_bytes().last() == last
                && f.name == name
                && f.exists_in(v)
        })
    }
}

/// The top-level lists of version `v` and the type of their items.
pub(crate) fn top_level_lists(v: SchemaVersion) -> &'static [(&'static str, ObjectType)] {
    const V3: &[(&str, ObjectType)] = &[
        ("revisions", ObjectType::Revision),
        ("builds", ObjectType::Build),
        ("tests", ObjectType::Test),
    ];
    const V4_0: &[(&str, ObjectType)] = &[
        ("checkouts", ObjectType::Checkout),
        ("builds", ObjectType::Build),
        ("tests", ObjectType::Test),
    ];
    const V4_1: &[(&str, ObjectType)] = &[
        ("checkouts", ObjectType::Checkout),
        ("builds", ObjectType::Build),
        ("tests", ObjectType::Test),
        ("issues", ObjectType::Issue),
        ("incidents", ObjectType::Incident),
    ];
    if v.major() == 3 {
        V3
    } else if v.at_least(4, 1) {
        V4_1
    } else {
        V4_0
    }
}

/// The status values of version `v`, in the order the schema lists them.
pub(crate) fn statuses(v: SchemaVersion) -> &'static [&'static str] {
    if v.major() == 3 {
        &["ERROR", "FAIL", "PASS", "DONE", "SKIP"]
    } else if v.at_least(4, 2) {
        &["FAIL", "ERROR", "MISS", "PASS", "DONE", "SKIP"]
    } else {
        &["FAIL", "ERROR", "PASS", "DONE", "SKIP"]
    }
}

/// The test number prefixes.
pub(crate) const PREFIXES: &[&str] = &["metric", "binary"];

/// The `maxLength` of `log_excerpt`, in code points.
pub(crate) const LOG_EXCERPT_MAX: usize = 16384;

/// The largest issue version we accept (PostgreSQL `INTEGER`).
pub(crate) const MAX_ISSUE_VERSION: i64 = i32::MAX as i64;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn gating() {
        let v = SchemaVersion::V4_5;
        assert!(ObjectType::Build.field("valid", v).is_some());
        assert!(ObjectType::Build.field("status", v).is_none());
        assert!(
            ObjectType::Build
                .field("status", SchemaVersion::V5_0)
                .is_some()
        );
        assert!(
            ObjectType::Test
                .field("input_files", SchemaVersion::V5_2)
                .is_none()
        );
        assert!(
            ObjectType::Test
                .field("input_files", SchemaVersion::V5_3)
                .is_some()
        );
        assert!(
            ObjectType::Build
                .field("revision_id", SchemaVersion::V3_0)
                .is_some()
        );
        assert!(
            ObjectType::Build
                .field("checkout_id", SchemaVersion::V3_0)
                .is_none()
        );
        assert!(
            ObjectType::Checkout
                .field("_timestamp", SchemaVersion::V4_2)
                .is_none()
        );
        assert!(
            ObjectType::Checkout
                .field("_timestamp", SchemaVersion::V4_3)
                .is_some()
        );
    }

    /// Cross-checks these tables against the JSON schemas kcidb-io exports (test data in
    /// the shared fixtures; the crate itself does not need them): same properties, same
    /// required ones, and for each the same type, pattern, format, enum and limits.
    #[test]
    fn tables_match_the_exported_schemas() {
        let root = match std::env::var_os("KERNELCI_FIXTURES") {
            Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
            _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
        };
        let dir = root.join("kcidb/schema");
        if !dir.is_dir() {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(!ci, "schema fixtures missing at {}", dir.display());
            eprintln!("skipping: schema fixtures missing at {}", dir.display());
            return;
        }
        let mut failures = Vec::new();
        for v in SchemaVersion::ALL {
            let path = dir.join(format!("v{}.{}.schema.json", v.major(), v.minor()));
            let text = std::fs::read_to_string(&path).expect("schema file");
            let schema: Value = serde_json::from_str(&text).expect("schema json");
            let defs = &schema["$defs"];
            // Top level.
            let props = schema["properties"].as_object().expect("properties");
            let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
            names.sort_unstable();
            let mut ours: Vec<&str> = top_level_lists(v).iter().map(|(n, _)| *n).collect();
            ours.push("version");
            ours.sort_unstable();
            if names != ours {
                failures.push(format!("{v} top level: {names:?} != {ours:?}"));
            }
            for (name, ty) in top_level_lists(v) {
                let items = resolve(defs, &props[*name]["items"]);
                compare_object(defs, *ty, items, v, name, &mut failures);
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn resolve<'a>(defs: &'a Value, node: &'a Value) -> &'a Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => &defs[r.trim_start_matches("#/$defs/")],
            None => node,
        }
    }

    fn compare_object(
        defs: &Value,
        ty: ObjectType,
        node: &Value,
        v: SchemaVersion,
        at: &str,
        failures: &mut Vec<String>,
    ) {
        if node["type"] != "object" || node["additionalProperties"] != json!(false) {
            failures.push(format!("{v} {at}: not a closed object"));
        }
        let props = node["properties"].as_object().expect("properties");
        let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut ours: Vec<&str> = ty
            .fields()
            .iter()
            .filter(|f| f.exists_in(v))
            .map(|f| f.name)
            .collect();
        ours.sort_unstable();
        if names != ours {
            failures.push(format!("{v} {at}: properties {names:?} != {ours:?}"));
            return;
        }
        let mut required: Vec<&str> = node["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        required.sort_unstable();
        let mut ours: Vec<&str> = ty
            .fields()
            .iter()
            .filter(|f| f.exists_in(v) && f.required)
            .map(|f| f.name)
            .collect();
        ours.sort_unstable();
        if required != ours {
            failures.push(format!("{v} {at}: required {required:?} != {ours:?}"));
        }
        for field in ty.fields().iter().filter(|f| f.exists_in(v)) {
            let prop = resolve(defs, &props[field.name]);
            compare_kind(
                defs,
                field.kind,
                prop,
                v,
                &format!("{at}.{}", field.name),
                failures,
            );
        }
    }

    fn compare_kind(
        defs: &Value,
        kind: Kind,
        node: &Value,
        v: SchemaVersion,
        at: &str,
        failures: &mut Vec<String>,
    ) {
        let mut fail = |what: &str| failures.push(format!("{v} {at}: {what}: {node}"));
        let ty = node["type"].as_str().unwrap_or_default();
        let expected_type = match kind {
            Kind::Bool => "boolean",
            Kind::Number => "number",
            Kind::Count => "integer",
            Kind::Misc | Kind::Object(_) => "object",
            Kind::List(_) => "array",
            _ => "string",
        };
        if ty != expected_type {
            fail("type");
        }
        let pattern = node.get("pattern").and_then(Value::as_str);
        if pattern != kind.rule(v).map(Rule::pattern) {
            fail("pattern");
        }
        let format = node.get("format").and_then(Value::as_str);
        if format != kind.format().map(Format::as_str) {
            fail("format");
        }
        let max_length = node.get("maxLength").and_then(Value::as_u64);
        let ours = (kind == Kind::LogExcerpt).then_some(LOG_EXCERPT_MAX as u64);
        if max_length != ours {
            fail("maxLength");
        }
        let minimum = node.get("minimum").and_then(Value::as_u64);
        if minimum != (kind == Kind::Count).then_some(0) {
            fail("minimum");
        }
        let values: Option<Vec<&str>> = node
            .get("enum")
            .and_then(Value::as_array)
            .map(|e| e.iter().filter_map(Value::as_str).collect());
        let ours = match kind {
            Kind::Status => Some(statuses(v).to_vec()),
            Kind::Prefix => Some(PREFIXES.to_vec()),
            _ => None,
        };
        if values != ours {
            fail("enum");
        }
        match kind {
            Kind::List(item) => {
                let items = resolve(defs, &node["items"]);
                compare_kind(defs, *item, items, v, &format!("{at}[]"), failures);
            }
            Kind::Object(ty) => compare_object(defs, ty, node, v, at, failures),
            _ => {}
        }
    }
}
