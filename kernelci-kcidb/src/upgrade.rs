//! Upgrading (kcidb-io "inheriting") valid v3.0 and v4.x documents to v5.3.
//!
//! Works on the JSON tree, like kcidb-io, because the older shapes differ (revisions, build
//! `valid`, test `waived`, ...). The rules are those of specs/kcidb.md §3.11:
//!
//! * v3 → v4: `revisions` become `checkouts` with id `_:<origin>:<old id>` and
//!   `patchset_hash` (the part of the old id after `+`, or `""`), `patch_mboxes` →
//!   `patchset_files`, `discovery_time` → `start_time`, `description` → `comment`,
//!   `publishing_time` dropped; builds get `checkout_id = _:<origin>:<revision_id>`; every
//!   `description` (also a test environment's) becomes `comment`.
//! * v4 → v5: checkout `contacts` dropped and a non-https `git_repository_url` refused; build
//!   `valid` → `status` PASS/FAIL; test paths must be valid v5 paths; `waived: true` becomes
//!   the issue `_:waived` (once) and one incident per waived test; issue `build_valid` and
//!   `test_status` dropped; a NUL character in any string outside `misc` is refused.
//! * Minor versions: only the version number changes.
//!
//! Where kcidb-io stops at the first impossible conversion, every one is reported.

use serde_json::{Map, Value, json};

use crate::error::{Problem, Reason, Rejection, excerpt};
use crate::patterns::is_v5_path;
use crate::pointer::{join, push_escaped};
use crate::validate::validate_exactly;
use crate::version::SchemaVersion;

/// Upgrades `doc`, a valid document of version `from`, to [`SchemaVersion::LATEST`].
///
/// The input must have passed [`crate::validate()`] with the result `from`; anything else is
/// reported as problems, never a panic. The output is checked against the v5.3 schema.
pub fn upgrade(doc: Value, from: SchemaVersion) -> Result<Value, Rejection> {
    let Value::Object(mut map) = doc else {
        return Err(internal(from, "the document is not an object"));
    };
    let mut problems = Vec::new();
    if from.major() < 4 {
        v3_to_v4(&mut map, &mut problems);
    }
    if from.major() < 5 {
        v4_to_v5(&mut map, &mut problems);
    }
    if !problems.is_empty() {
        return Err(Rejection::Upgrade { from, problems });
    }
    map.insert("version".to_string(), SchemaVersion::LATEST.to_value());
    let upgraded = Value::Object(map);
    if from != SchemaVersion::LATEST {
        let problems = validate_exactly(&upgraded, SchemaVersion::LATEST);
        if !problems.is_empty() {
            return Err(Rejection::Upgrade { from, problems });
        }
    }
    Ok(upgraded)
}

fn internal(from: SchemaVersion, what: &str) -> Rejection {
    Rejection::Upgrade {
        from,
        problems: vec![Problem {
            pointer: String::new(),
            reason: Reason::Internal(format!("{what} (validate before upgrading)")),
        }],
    }
}

/// Renames `old` to `new` (moved to the end, as Python's `d[new] = d.pop(old)`).
fn rename(obj: &mut Map<String, Value>, old: &str, new: &str) {
    if let Some(value) = obj.shift_remove(old) {
        obj.insert(new.to_string(), value);
    }
}

/// The objects of top-level list `name`, with their pointers.
fn objects_mut<'a>(
    doc: &'a mut Map<String, Value>,
    name: &'a str,
) -> impl Iterator<Item = (String, &'a mut Map<String, Value>)> + 'a {
    doc.get_mut(name)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|items| items.iter_mut().enumerate())
        .filter_map(move |(i, item)| item.as_object_mut().map(|o| (format!("/{name}/{i}"), o)))
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn missing(pointer: String, property: &'static str, problems: &mut Vec<Problem>) {
    problems.push(Problem {
        pointer,
        reason: Reason::Missing { property },
    });
}

fn v3_to_v4(doc: &mut Map<String, Value>, problems: &mut Vec<Problem>) {
    if let Some(mut revisions) = doc.shift_remove("revisions") {
        for (i, revision) in revisions.as_array_mut().into_iter().flatten().enumerate() {
            let Some(revision) = revision.as_object_mut() else {
                continue;
            };
            let (Some(origin), Some(id)) =
                (str_field(revision, "origin"), str_field(revision, "id"))
            else {
                missing(format!("/revisions/{i}"), "id", problems);
                continue;
            };
            let id = format!("_:{origin}:{id}");
            let patchset_hash = id.split('+').nth(1).unwrap_or("").to_string();
            revision.insert("id".to_string(), Value::String(id));
            rename(revision, "patch_mboxes", "patchset_files");
            revision.insert("patchset_hash".to_string(), Value::String(patchset_hash));
            rename(revision, "discovery_time", "start_time");
            rename(revision, "description", "comment");
            revision.shift_remove("publishing_time");
        }
        doc.insert("checkouts".to_string(), revisions);
    }
    for (pointer, build) in objects_mut(doc, "builds") {
        let origin = str_field(build, "origin").map(str::to_owned);
        match (origin, build.shift_remove("revision_id")) {
            (Some(origin), Some(Value::String(revision))) => {
                let checkout_id = format!("_:{origin}:{revision}");
                build.insert("checkout_id".to_string(), Value::String(checkout_id));
            }
            _ => missing(pointer, "revision_id", problems),
        }
        rename(build, "description", "comment");
    }
    for (_, test) in objects_mut(doc, "tests") {
        rename(test, "description", "comment");
        if let Some(environment) = test.get_mut("environment").and_then(Value::as_object_mut) {
            rename(environment, "description", "comment");
        }
    }
}

fn v4_to_v5(doc: &mut Map<String, Value>, problems: &mut Vec<Problem>) {
    for (pointer, checkout) in objects_mut(doc, "checkouts") {
        checkout.shift_remove("contacts");
        if let Some(url) = str_field(checkout, "git_repository_url")
            && !url.starts_with("https://")
        {
            problems.push(Problem {
                pointer: join(&pointer, "git_repository_url"),
                reason: Reason::NotHttpsRepository { url: excerpt(url) },
            });
        }
    }
    for (_, build) in objects_mut(doc, "builds") {
        if let Some(valid) = build.shift_remove("valid") {
            let status = if valid.as_bool() == Some(true) {
                "PASS"
            } else {
                "FAIL"
            };
            build.insert("status".to_string(), Value::String(status.to_string()));
        }
    }
    let mut waived_tests = Vec::new();
    for (pointer, test) in objects_mut(doc, "tests") {
        if let Some(path) = str_field(test, "path")
            && !is_v5_path(path)
        {
            problems.push(Problem {
                pointer: join(&pointer, "path"),
                reason: Reason::AmbiguousTestPath {
                    path: excerpt(path),
                },
            });
        }
        let waived = test
            .shift_remove("waived")
            .and_then(|w| w.as_bool())
            .unwrap_or(false);
        if waived {
            match str_field(test, "id") {
                Some(id) => waived_tests.push(id.to_string()),
                None => missing(pointer, "id", problems),
            }
        }
    }
    for (_, issue) in objects_mut(doc, "issues") {
        issue.shift_remove("build_valid");
        issue.shift_remove("test_status");
    }
    // Checked before the waived objects are added, so each NUL is reported once, where the
    // submitter wrote it.
    for (key, value) in doc.iter() {
        if key != "misc" {
            find_nul(value, &join("", key), problems);
        }
    }
    if !waived_tests.is_empty() {
        add_waived(doc, &waived_tests);
    }
}

/// The v4 → v5 conversion of `waived: true` tests: one shared issue and one incident each.
fn add_waived(doc: &mut Map<String, Value>, test_ids: &[String]) {
    const ISSUE_ID: &str = "_:waived";
    const ISSUE_VERSION: u32 = 1;
    let issue = json!({
        "id": ISSUE_ID,
        "origin": "_",
        "version": ISSUE_VERSION,
        "comment": "Test waived as unreliable",
    });
    push_to_list(doc, "issues", issue);
    for test_id in test_ids {
        let incident = json!({
            "id": format!("{ISSUE_ID}:{ISSUE_VERSION}:{test_id}"),
            "origin": "_",
            "issue_id": ISSUE_ID,
            "issue_version": ISSUE_VERSION,
            "test_id": test_id,
            "present": true,
        });
        push_to_list(doc, "incidents", incident);
    }
}

fn push_to_list(doc: &mut Map<String, Value>, name: &str, item: Value) {
    let list = doc.entry(name).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = list {
        items.push(item);
    }
}

/// Reports every string containing NUL, except inside `misc` objects.
fn find_nul(value: &Value, pointer: &str, problems: &mut Vec<Problem>) {
    match value {
        Value::String(s) if s.contains('\0') => problems.push(Problem {
            pointer: pointer.to_string(),
            reason: Reason::NulCharacter { value: excerpt(s) },
        }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_nul(item, &format!("{pointer}/{i}"), problems);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                if key != "misc" {
                    let mut child = String::from(pointer);
                    child.push('/');
                    push_escaped(&mut child, key);
                    find_nul(item, &child, problems);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(doc: Value) -> Result<Value, Vec<(String, Reason)>> {
        let from = crate::validate(&doc).expect("valid input");
        upgrade(doc, from).map_err(|r| {
            r.problems()
                .iter()
                .map(|p| (p.pointer.clone(), p.reason.clone()))
                .collect()
        })
    }

    #[test]
    fn v4_waived_and_valid() {
        let doc = json!({"version": {"major": 4, "minor": 5},
            "checkouts": [{"id": "a:c", "origin": "a", "contacts": ["x@y"]}],
            "builds": [{"id": "a:b", "origin": "a", "checkout_id": "a:c", "valid": false}],
            "tests": [
                {"id": "a:t1", "origin": "a", "build_id": "a:b", "waived": true},
                {"id": "a:t2", "origin": "a", "build_id": "a:b", "waived": false},
                {"id": "a:t3", "origin": "a", "build_id": "a:b", "waived": true}],
            "issues": [{"id": "a:i", "origin": "a", "version": 1, "build_valid": true,
                "test_status": "FAIL"}]});
        let out = up(doc).unwrap();
        assert_eq!(out["version"], json!({"major": 5, "minor": 3}));
        assert_eq!(out["checkouts"][0], json!({"id": "a:c", "origin": "a"}));
        assert_eq!(out["builds"][0]["status"], "FAIL");
        assert!(out["tests"][0].get("waived").is_none());
        assert_eq!(
            out["issues"][0],
            json!({"id": "a:i", "origin": "a", "version": 1})
        );
        assert_eq!(out["issues"][1]["id"], "_:waived");
        let incidents: Vec<_> = out["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        assert_eq!(
            incidents,
            [json!("_:waived:1:a:t1"), json!("_:waived:1:a:t3")]
        );
    }

    #[test]
    fn v4_impossible_conversions_are_all_reported() {
        let doc = json!({"version": {"major": 4, "minor": 0},
            "checkouts": [{"id": "a:c", "origin": "a", "git_repository_url": "git://h/r.git"}],
            "tests": [
                {"id": "a:t1", "origin": "a", "build_id": "a:b", "path": "ltp..x"},
                {"id": "a:t2", "origin": "a", "build_id": "a:b", "comment": "n\u{0}l",
                 "misc": {"ok": "x"}}]});
        let problems = up(doc).unwrap_err();
        let pointers: Vec<_> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/checkouts/0/git_repository_url",
                "/tests/0/path",
                "/tests/1/comment"
            ]
        );
    }

    #[test]
    fn v3_revisions_become_checkouts() {
        let sha1 = "f00af9d68ed146b47fdbfe91134fcf04c36e6d78";
        let sha256 = "903638c087335b10293663c682b9aa0076f9f7be478a8e7828bc22e12d301b42";
        let doc = json!({"version": {"major": 3, "minor": 0},
            "revisions": [{"id": format!("{sha1}+{sha256}"), "origin": "o",
                "discovery_time": "2023-01-27T08:27:50+00:00", "publishing_time":
                "2023-01-27T08:27:50+00:00", "description": "d", "patch_mboxes": []}],
            "builds": [{"id": "o:b", "origin": "o", "revision_id": sha1, "description": "x"}],
            "tests": [{"id": "o:t", "origin": "o", "build_id": "o:b",
                "environment": {"description": "e"}}]});
        let out = up(doc).unwrap();
        assert_eq!(
            out["checkouts"][0],
            json!({"id": format!("_:o:{sha1}+{sha256}"), "origin": "o", "patchset_files": [],
                "patchset_hash": sha256, "start_time": "2023-01-27T08:27:50+00:00",
                "comment": "d"})
        );
        assert_eq!(out["builds"][0]["checkout_id"], format!("_:o:{sha1}"));
        assert_eq!(out["builds"][0]["comment"], "x");
        assert_eq!(out["tests"][0]["environment"], json!({"comment": "e"}));
    }

    #[test]
    fn nul_search_skips_misc() {
        let mut problems = Vec::new();
        let doc = json!({"a": ["\u{0}", {"misc": {"b": "\u{0}"}, "c/d": "\u{0}"}]});
        find_nul(&doc, "", &mut problems);
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/a/0", "/a/1/c~1d"]);
    }

    #[test]
    fn never_panics_on_unvalidated_input() {
        let from = SchemaVersion::V3_0;
        assert!(upgrade(json!([]), from).is_err());
        assert!(upgrade(json!({"revisions": [{}], "builds": [1, {}]}), from).is_err());
        assert!(upgrade(json!({"revisions": 3, "tests": {}}), from).is_err());
    }
}
