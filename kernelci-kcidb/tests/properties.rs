//! Property tests: random JSON, random bytes and mutated fixture documents never make the
//! crate panic; whatever loads serializes stably; merging is associative and idempotent.

mod common;

use std::sync::OnceLock;

use kernelci_kcidb::{
    Build, Environment, SchemaVersion, Status, Submission, Test, TestNumber, check, check_value,
    load, merge, parse, upgrade, validate,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const KEYS: &[&str] = &[
    "version",
    "major",
    "minor",
    "checkouts",
    "builds",
    "tests",
    "issues",
    "incidents",
    "revisions",
    "id",
    "origin",
    "checkout_id",
    "build_id",
    "revision_id",
    "misc",
    "environment",
    "compatible",
    "number",
    "value",
    "unit",
    "prefix",
    "culprit",
    "code",
    "path",
    "status",
    "log_url",
    "log_excerpt",
    "start_time",
    "output_files",
    "input_files",
    "patch_mboxes",
    "name",
    "url",
    "waived",
    "valid",
    "description",
    "comment",
    "git_repository_url",
    "git_commit_hash",
    "patchset_hash",
    "categories",
    "_timestamp",
    "issue_id",
    "issue_version",
    "duration",
    "architecture",
    "contacts",
    "build_valid",
    "test_status",
];

const STRINGS: &[&str] = &[
    "",
    "a:b",
    "maestro",
    "maestro\n",
    "https://example.com/x",
    "git://h/r.git",
    "2025-01-01T00:00:00Z",
    "\n",
    "\u{0}",
    "PASS",
    "MISS",
    "pass",
    "ltp..x",
    "boot",
    "dece60d47ed1b024262a162b174a3ccfde5cecd9",
    "metric",
    "a b",
    "x/y",
    "_:a:b",
    "\u{1F600}",
];

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(STRINGS).prop_map(str::to_string),
        "[a-z0-9_:./ \n-]{0,12}",
        "\\PC{0,10}",
        any::<String>(),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![4 => proptest::sample::select(KEYS).prop_map(str::to_string), 1 => arb_string()]
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..8).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        arb_string().prop_map(Value::String),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Documents shaped like submissions: a version and lists of objects with schema keys.
fn arb_document() -> impl Strategy<Value = Value> {
    let version = prop_oneof![
        (0u64..7, 0u64..7).prop_map(|(major, minor)| json!({"major": major, "minor": minor})),
        arb_json(),
    ];
    let object = prop::collection::vec((arb_key(), arb_json()), 0..8)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()));
    let lists = prop::collection::vec(
        (
            proptest::sample::select(&KEYS[3..9]),
            prop::collection::vec(object, 0..4),
        ),
        0..4,
    );
    (version, lists).prop_map(|(version, lists)| {
        let mut doc = Map::new();
        doc.insert("version".to_string(), version);
        for (name, items) in lists {
            doc.insert(name.to_string(), Value::Array(items));
        }
        Value::Object(doc)
    })
}

/// Everything the crate offers on a document must return, never panic.
fn exercise(doc: &Value) {
    let bytes = serde_json::to_vec(doc).expect("serializable");
    same_verdict_on_both_paths(&bytes);
    if let Ok(version) = validate(doc) {
        upgrade(doc.clone(), version).map(|_| ()).unwrap_or(());
    }
    for version in SchemaVersion::ALL {
        let _ = upgrade(doc.clone(), version);
    }
    if let Ok(sub) = load(&bytes) {
        assert_stable(&sub);
    }
}

/// `check` and `load` try the fast path first; the full path must agree with them.
fn same_verdict_on_both_paths(bytes: &[u8]) {
    let fast = check(bytes).ok();
    let full = parse(bytes).ok().and_then(|doc| check_value(doc).ok());
    assert_eq!(fast, full, "{}", String::from_utf8_lossy(bytes));
    let loaded = load(bytes).ok();
    let full = parse(bytes)
        .ok()
        .and_then(|doc| Submission::from_value(doc).ok());
    assert_eq!(loaded, full, "{}", String::from_utf8_lossy(bytes));
}

/// What loads is valid v5.3 and serializes stably: load(to_json(x)) == x, same text.
fn assert_stable(sub: &Submission) {
    assert_eq!(sub.version, SchemaVersion::LATEST);
    assert!(sub.validate().is_ok(), "{}", sub.to_json());
    let text = sub.to_json();
    let again = load(text.as_bytes()).expect("our own output loads");
    assert_eq!(&again, sub);
    assert_eq!(again.to_json(), text);
}

fn fixture_documents() -> &'static [String] {
    static DOCS: OnceLock<Vec<String>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut docs = vec![
            json!({"version": {"major": 5, "minor": 3},
                "builds": [{"id": "a:b", "origin": "a", "checkout_id": "a:c", "status": "PASS"}],
                "tests": [{"id": "a:t", "origin": "a", "build_id": "a:b", "path": "boot",
                    "environment": {"compatible": ["x,y"], "misc": {"p": 1}}}]})
            .to_string(),
        ];
        let Some(root) = common::kcidb_fixtures() else {
            return docs;
        };
        for folder in ["edge-valid", "upgrade", "invalid/base", "small"] {
            for file in common::json_files(&root.join(folder)).into_iter().take(8) {
                docs.push(std::fs::read_to_string(file).expect("fixture text"));
            }
        }
        docs
    })
}

/// One change to a parsed document: at the `at`-th node (in document order), replace the
/// value, remove the member, or add a member.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    Add(usize, String, Value),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), arb_json()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), arb_key(), arb_json()).prop_map(|(at, k, v)| Mutation::Add(at, k, v)),
    ]
}

fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let p = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

fn apply(doc: &mut Value, mutation: &Mutation) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let pick = |at: usize| all[at % all.len()].clone();
    match mutation {
        Mutation::Replace(at, value) => {
            if let Some(target) = doc.pointer_mut(&pick(*at)) {
                *target = value.clone();
            }
        }
        Mutation::Remove(at) => {
            let p = pick(*at);
            let (parent, key) = p.rsplit_once('/').unwrap_or(("", ""));
            match doc.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.shift_remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = key.parse::<usize>() {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
        Mutation::Add(at, key, value) => {
            if let Some(Value::Object(map)) = doc.pointer_mut(&pick(*at)) {
                map.insert(key.clone(), value.clone());
            }
        }
    }
}

fn arb_text() -> impl Strategy<Value = String> {
    "\\PC{0,16}"
}

fn arb_misc() -> impl Strategy<Value = Option<Map<String, Value>>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        arb_text().prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Value::Array)
    });
    proptest::option::of(
        prop::collection::vec(("[a-z_]{1,6}", value), 0..4).prop_map(|m| m.into_iter().collect()),
    )
}

fn arb_test() -> impl Strategy<Value = Test> {
    let status = proptest::option::of(proptest::sample::select(Status::ALL.to_vec()));
    let duration = proptest::option::of(any::<f64>().prop_filter("finite", |f| f.is_finite()));
    let number = proptest::option::of((-1e12f64..1e12).prop_map(|value| TestNumber {
        value,
        unit: None,
        prefix: None,
    }));
    let environment = proptest::option::of(
        (
            proptest::option::of(arb_text()),
            proptest::option::of(prop::collection::vec("[a-z,]{1,8}", 0..3)),
            arb_misc(),
        )
            .prop_map(|(comment, compatible, misc)| Environment {
                comment,
                compatible,
                misc,
            }),
    );
    (
        proptest::option::of(arb_text()),
        status,
        duration,
        number,
        environment,
        arb_misc(),
        proptest::option::of("[a-z0-9_-]{1,5}(\\.[a-z0-9_-]{1,5}){0,2}"),
    )
        .prop_map(
            |(comment, status, duration, number, environment, misc, path)| Test {
                id: "lab:t1".to_string(),
                origin: "lab".to_string(),
                build_id: "lab:b1".to_string(),
                timestamp: None,
                environment,
                path,
                comment,
                log_url: None,
                log_excerpt: None,
                status,
                number,
                start_time: None,
                duration,
                input_files: None,
                output_files: None,
                misc,
            },
        )
}

fn arb_build() -> impl Strategy<Value = Build> {
    ("[a-z0-9_]{1,8}", "\\PC{0,20}", arb_text(), arb_misc()).prop_map(
        |(origin, local, comment, misc)| Build {
            id: format!("{origin}:{local}"),
            origin: origin.clone(),
            checkout_id: format!("{origin}:c"),
            timestamp: None,
            comment: Some(comment),
            start_time: Some("2025-01-01T00:00:00.123456+00:00".to_string()),
            duration: Some(1.5),
            architecture: Some("x86_64".to_string()),
            command: None,
            compiler: None,
            input_files: None,
            output_files: None,
            config_name: None,
            config_url: None,
            log_url: Some("https://example.com/build.log".to_string()),
            log_excerpt: None,
            status: Some(Status::Pass),
            misc,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_json_never_panics(doc in arb_json()) {
        exercise(&doc);
    }

    #[test]
    fn random_submission_shapes_never_panic(doc in arb_document()) {
        exercise(&doc);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes);
        same_verdict_on_both_paths(&bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        index in any::<usize>(),
        mutations in prop::collection::vec(arb_mutation(), 1..4),
    ) {
        let docs = fixture_documents();
        let text = &docs[index % docs.len()];
        let mut doc: Value = serde_json::from_str(text).expect("fixture json");
        for mutation in &mutations {
            apply(&mut doc, mutation);
        }
        exercise(&doc);
    }

    #[test]
    fn byte_mutated_fixtures_never_panic(
        index in any::<usize>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let docs = fixture_documents();
        let mut bytes = docs[index % docs.len()].as_bytes().to_vec();
        for (at, byte, op) in edits {
            let at = at % (bytes.len() + 1);
            match op {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => bytes[at] = byte,
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => {}
            }
        }
        same_verdict_on_both_paths(&bytes);
        if let Ok(sub) = load(&bytes) {
            assert_stable(&sub);
        }
    }

    #[test]
    fn generated_submissions_are_valid_and_round_trip(
        tests in prop::collection::vec(arb_test(), 0..4),
        builds in prop::collection::vec(arb_build(), 0..3),
    ) {
        let mut sub = Submission::new();
        sub.tests = tests;
        sub.builds = builds;
        prop_assert!(sub.validate().is_ok(), "{}", sub.to_json());
        let again = load(sub.to_json().as_bytes()).expect("loads");
        prop_assert_eq!(&again, &sub);
        assert_stable(&again);
    }

    #[test]
    fn merge_is_associative_and_idempotent(a in arb_test(), b in arb_test(), c in arb_test()) {
        let left = merge(merge(a.clone(), b.clone()).expect("same id"), c.clone()).expect("same id");
        let right = merge(a.clone(), merge(b.clone(), c).expect("same id")).expect("same id");
        prop_assert_eq!(left, right);
        prop_assert_eq!(merge(a.clone(), a.clone()).expect("same id"), a.clone());
        // Merging never loses a field present in either side.
        let merged = merge(a.clone(), b.clone()).expect("same id");
        prop_assert_eq!(merged.status.is_some(), a.status.is_some() || b.status.is_some());
        prop_assert_eq!(merged.duration.is_some(), a.duration.is_some() || b.duration.is_some());
    }
}
