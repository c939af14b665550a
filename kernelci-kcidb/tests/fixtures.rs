//! Data-driven tests over the shared KCIDB fixtures (`shared/fixtures/kcidb`): every file's
//! verdict, stage and error pointers as its README states, and the exact upgrade set.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{json_eq, json_files, json_path_to_pointer, kcidb_fixtures, read_json, read_jsonl};
use kernelci_kcidb::{
    ParseError, Reason, Rejection, SchemaVersion, Stage, Submission, check, load, parse, upgrade,
    validate,
};
use serde_json::Value;

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn pointers(rejection: &Rejection) -> Vec<String> {
    rejection
        .problems()
        .iter()
        .map(|p| p.pointer.clone())
        .collect()
}

/// `check`/`load` take a fast path for valid documents; it must agree with the full path.
#[test]
fn fast_and_full_paths_agree_on_every_fixture() {
    let Some(root) = kcidb_fixtures() else { return };
    for folder in [
        "small",
        "mixed",
        "invalid",
        "invalid/base",
        "edge-valid",
        "upgrade",
    ] {
        for file in json_files(&root.join(folder)) {
            let bytes = read(&file);
            let full = parse(&bytes)
                .map_err(Rejection::from)
                .and_then(kernelci_kcidb::check_value);
            assert_eq!(check(&bytes), full, "{}", file.display());
            let full = parse(&bytes)
                .map_err(Rejection::from)
                .and_then(Submission::from_value);
            assert_eq!(load(&bytes), full, "{}", file.display());
        }
    }
}

#[test]
fn json_paths_convert() {
    assert_eq!(json_path_to_pointer("$"), "");
    assert_eq!(json_path_to_pointer("$.builds[0].id"), "/builds/0/id");
    assert_eq!(
        json_path_to_pointer("$.tests[0].environment.compatible[12]"),
        "/tests/0/environment/compatible/12"
    );
}

#[test]
fn small_is_valid_and_matches_its_manifest() {
    let Some(root) = kcidb_fixtures() else { return };
    let manifest = read_json(&root.join("small.manifest.json"));
    let files = json_files(&root.join("small"));
    assert_eq!(files.len(), 5);
    let mut all = Submission::new();
    for (file, expected) in files
        .iter()
        .zip(manifest["files"].as_array().expect("files"))
    {
        assert_eq!(expected["file"], name(file).as_str());
        let sub = load(&read(file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(sub.version, SchemaVersion::LATEST);
        let counts = &expected["counts"];
        assert_eq!(sub.checkouts.len() as u64, counts["checkouts"]);
        assert_eq!(sub.builds.len() as u64, counts["builds"]);
        assert_eq!(sub.tests.len() as u64, counts["tests"]);
        assert_eq!(sub.issues.len() as u64, counts["issues"]);
        assert_eq!(sub.incidents.len() as u64, counts["incidents"]);
        assert_eq!(sub.object_count() as u64, expected["objects"]);
        all.checkouts.extend(sub.checkouts);
        all.builds.extend(sub.builds);
        all.tests.extend(sub.tests);
        all.issues.extend(sub.issues);
        all.incidents.extend(sub.incidents);
    }
    assert_eq!(all.object_count() as u64, manifest["object_entries_total"]);
    // Merging resubmissions gives the distinct objects, each complete.
    all.dedup();
    let unique = &manifest["unique_objects"];
    assert_eq!(all.tests.len() as u64, unique["tests"]);
    assert_eq!(all.issues.len() as u64, unique["issues"]);
    assert_eq!(all.object_count() as u64, manifest["unique_objects_total"]);
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for test in &all.tests {
        let key = test.status.map_or("(none)", |s| s.as_str()).to_string();
        *statuses.entry(key).or_default() += 1;
    }
    let expected: BTreeMap<String, u64> =
        serde_json::from_value(manifest["status_counts"]["tests"].clone()).expect("counts");
    assert_eq!(statuses, expected);
    for resubmitted in manifest["resubmitted_tests"].as_array().expect("list") {
        let test = all
            .tests
            .iter()
            .find(|t| t.id == resubmitted["id"])
            .expect("test");
        for field in resubmitted["partial_omits"].as_array().expect("fields") {
            let value = serde_json::to_value(test).expect("json");
            assert!(
                value.get(field.as_str().expect("name")).is_some(),
                "{} {field}",
                test.id
            );
        }
    }
}

#[test]
fn mixed_rejects_exactly_the_invalid_objects() {
    let Some(root) = kcidb_fixtures() else { return };
    let manifest = read_json(&root.join("mixed.manifest.json"));
    let invalid = manifest["invalid_objects"]
        .as_array()
        .expect("invalid_objects");
    for expected in manifest["files"].as_array().expect("files") {
        let file_name = expected["file"].as_str().expect("file");
        let bytes = read(&root.join("mixed").join(file_name));
        let bad: Vec<(&str, usize)> = invalid
            .iter()
            .filter(|o| o["file"] == file_name)
            .map(|o| {
                (
                    o["list"].as_str().expect("list"),
                    o["index"].as_u64().expect("i") as usize,
                )
            })
            .collect();
        let result = check(&bytes);
        if expected["expect_valid"] == true {
            assert!(result.is_ok(), "{file_name}: {result:?}");
            assert!(bad.is_empty());
            continue;
        }
        let rejection = result.expect_err(file_name);
        assert_eq!(rejection.stage(), Stage::Schema, "{file_name}");
        let pointers = pointers(&rejection);
        // Every problem lies in an invalid object, and every invalid object has a problem.
        let object_of = |p: &str| -> (String, usize) {
            let mut parts = p.trim_start_matches('/').split('/');
            let list = parts.next().unwrap_or_default().to_string();
            (
                list,
                parts
                    .next()
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(usize::MAX),
            )
        };
        let flagged: BTreeSet<(String, usize)> = pointers.iter().map(|p| object_of(p)).collect();
        let wanted: BTreeSet<(String, usize)> =
            bad.iter().map(|(l, i)| (l.to_string(), *i)).collect();
        assert_eq!(flagged, wanted, "{file_name}: {pointers:?}");
        // The file is accepted once its invalid objects are removed, and each of them alone
        // is rejected.
        let mut doc = parse(&bytes).expect("json");
        let mut removed = Vec::new();
        let mut sorted = bad.clone();
        sorted.sort_by_key(|b| std::cmp::Reverse(b.1));
        for (list, index) in sorted {
            let items = doc[list].as_array_mut().expect("list");
            removed.push((list, items.remove(index)));
        }
        assert_eq!(
            validate(&doc),
            Ok(SchemaVersion::V5_3),
            "{file_name} without its bad objects"
        );
        for (list, object) in removed {
            let alone = serde_json::json!({"version": {"major": 5, "minor": 3}, list: [object]});
            assert!(validate(&alone).is_err(), "{file_name}: {object}");
        }
    }
}

/// What we do with the bad inputs kcidb-io accepts (see NOTES.md): the stage at which we
/// reject them.
fn deliberate_difference(file: &str) -> Option<Stage> {
    match file {
        // NaN, 1e400 and a lone surrogate are not JSON; duplicate keys are ambiguous.
        "12_nan_literal.json"
        | "13_duplicate_key.json"
        | "16_huge_float_duration.json"
        | "18_lone_surrogate_escape.json" => Some(Stage::Json),
        // NUL in misc (jsonb cannot store it); issue version 2^64 (INTEGER column).
        "14_nul_in_misc.json" | "15_huge_integer_version.json" => Some(Stage::Schema),
        _ => None,
    }
}

#[test]
fn invalid_corpus_gives_kcidb_io_verdicts_and_paths() {
    let Some(root) = kcidb_fixtures() else { return };
    let dir = root.join("invalid");
    let cases = read_jsonl(&dir.join("cases.jsonl"));
    assert_eq!(cases.len(), 57);
    assert_eq!(json_files(&dir).len(), 57);
    let mut failures = Vec::new();
    for case in &cases {
        let file = case["file"].as_str().expect("file");
        let reference = &case["kcidb_io"];
        let result = check(&read(&dir.join(file)));
        let Err(rejection) = result else {
            failures.push(format!("{file}: accepted"));
            continue;
        };
        if let Some(stage) = deliberate_difference(file) {
            assert_eq!(reference["verdict"], "accepted", "{file}");
            if rejection.stage() != stage {
                failures.push(format!(
                    "{file}: rejected at {} not {stage}",
                    rejection.stage()
                ));
            }
            if stage == Stage::Schema && !rejection.only_stricter_than_kcidb_io() {
                failures.push(format!("{file}: not flagged as a deliberate difference"));
            }
            continue;
        }
        assert_eq!(reference["verdict"], "rejected", "{file}");
        let stage = reference["stage"].as_str().expect("stage");
        if rejection.stage().as_str() != stage {
            failures.push(format!(
                "{file}: stage {} not {stage}: {rejection}",
                rejection.stage()
            ));
            continue;
        }
        if let Some(path) = reference["path"].as_str() {
            let mut expected = json_path_to_pointer(path);
            // jsonschema reports an unexpected property at its object; we point at it.
            let message = reference["message"].as_str().unwrap_or_default();
            if let Some(rest) = message.strip_prefix("Additional properties are not allowed ('") {
                let property = rest.split('\'').next().unwrap_or_default();
                expected = format!("{expected}/{property}");
            }
            let got = pointers(&rejection);
            if !got.contains(&expected) {
                failures.push(format!(
                    "{file}: expected a problem at {expected:?}, got {got:?}"
                ));
            }
            if got.len() != 1 {
                failures.push(format!("{file}: one problem expected, got {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_corpus_specific_errors() {
    let Some(root) = kcidb_fixtures() else { return };
    let dir = root.join("invalid");
    let err = |file: &str| check(&read(&dir.join(file))).expect_err(file);
    assert_eq!(
        err("04_empty_file.json"),
        Rejection::Parse(ParseError::Empty)
    );
    assert!(matches!(
        err("02_non_utf8_bytes.json"),
        Rejection::Parse(ParseError::InvalidUtf8 { offset: 4314 })
    ));
    assert_eq!(
        err("03_utf8_bom.json"),
        Rejection::Parse(ParseError::ByteOrderMark)
    );
    assert!(matches!(
        err("13_duplicate_key.json"),
        Rejection::Parse(ParseError::DuplicateKey { ref key, .. }) if key == "status"
    ));
    let nul = err("14_nul_in_misc.json");
    assert!(matches!(nul.problems()[0].reason, Reason::NulInMisc));
    let big = err("15_huge_integer_version.json");
    assert_eq!(pointers(&big), ["/issues/0/version"]);
    assert!(matches!(
        big.problems()[0].reason,
        Reason::IntegerTooLarge { .. }
    ));
    let upgrade = err("57_v4_bad_path_upgrade.json");
    assert!(matches!(
        upgrade.problems()[0].reason,
        Reason::AmbiguousTestPath { .. }
    ));
    // The base of the corpus is valid.
    assert_eq!(
        check(&read(&dir.join("base/base.json"))),
        Ok(SchemaVersion::V5_3)
    );
}

#[test]
fn edge_valid_corpus_is_accepted() {
    let Some(root) = kcidb_fixtures() else { return };
    let dir = root.join("edge-valid");
    let cases = read_jsonl(&dir.join("cases.jsonl"));
    assert_eq!(cases.len(), 21);
    let mut failures = Vec::new();
    for case in &cases {
        let file = case["file"].as_str().expect("file");
        assert_eq!(case["kcidb_io"]["verdict"], "accepted");
        if let Err(e) = load(&read(&dir.join(file))) {
            failures.push(format!("{file}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Spot checks of what the README says about some of them.
    let version = |f: &str| validate(&parse(&read(&dir.join(f))).expect("json")).expect(f);
    assert_eq!(
        version("e03_version_without_minor.json"),
        SchemaVersion::V5_0
    );
    assert_eq!(version("e04_logspec_worker_v4_5.json"), SchemaVersion::V4_5);
    let logspec = load(&read(&dir.join("e04_logspec_worker_v4_5.json"))).expect("e04");
    assert!(!logspec.issues.is_empty());
    let mut dup = load(&read(&dir.join("e12_duplicate_object_ids.json"))).expect("e12");
    let before = dup.tests.len();
    dup.dedup();
    assert_eq!(dup.tests.len(), before - 1);
    let same = |a: &str, b: &str| {
        let x = load(&read(&dir.join(a))).expect(a);
        let y = load(&read(&dir.join(b))).expect(b);
        assert_eq!(x, y, "{a} and {b} hold the same data");
    };
    same("e19_compact_json.json", "e20_crlf_and_tabs.json");
    same("e14_unicode_text.json", "e21_ascii_escaped.json");
}

#[test]
fn upgrade_set_gives_exactly_the_upgraded_files() {
    let Some(root) = kcidb_fixtures() else { return };
    let dir = root.join("upgrade");
    let mut seen = 0;
    for file in json_files(&dir) {
        let file_name = name(&file);
        if file_name.ends_with(".upgraded.json") {
            continue;
        }
        seen += 1;
        let stem = file_name.trim_end_matches(".json").trim_start_matches('v');
        let (major, minor) = stem.split_once('.').expect("vM.m");
        let declared =
            SchemaVersion::known(major.parse().expect("major"), minor.parse().expect("minor"))
                .expect("known version");
        let doc = parse(&read(&file)).expect("json");
        assert_eq!(validate(&doc), Ok(declared), "{file_name}");
        let upgraded = upgrade(doc.clone(), declared).expect(&file_name);
        let expected_path = dir.join(format!("v{stem}.upgraded.json"));
        let expected = if declared == SchemaVersion::LATEST {
            assert!(!expected_path.exists());
            doc
        } else {
            read_json(&expected_path)
        };
        assert_eq!(upgraded, expected, "{file_name}");
        // The typed value serializes back to the same document.
        let typed = Submission::from_value(upgraded.clone()).expect(&file_name);
        let back = typed.to_value();
        assert!(
            json_eq(&back, &expected),
            "{file_name}:\n{back}\n!=\n{expected}"
        );
        assert_eq!(load(&read(&file)).expect(&file_name), typed);
    }
    assert_eq!(seen, 10);
}

#[test]
fn every_fixture_submission_round_trips() {
    let Some(root) = kcidb_fixtures() else { return };
    for folder in ["small", "edge-valid", "upgrade"] {
        for file in json_files(&root.join(folder)) {
            let Ok(sub) = load(&read(&file)) else {
                continue;
            };
            let text = sub.to_json();
            let again = load(text.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!(again, sub, "{}", file.display());
            assert_eq!(again.to_json(), text);
            let original: Value = parse(&read(&file)).expect("json");
            if original["version"] == serde_json::json!({"major": 5, "minor": 3}) {
                // Nothing but empty lists and number spellings may change.
                let mut expected = original.clone();
                if let Some(map) = expected.as_object_mut() {
                    map.retain(|_, v| v.as_array().is_none_or(|a| !a.is_empty()));
                }
                assert!(json_eq(&sub.to_value(), &expected), "{}", file.display());
            }
        }
    }
}
