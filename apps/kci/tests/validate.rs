//! Runs the real `kci validate`: valid v5.3, v4 (upgraded), invalid and unreadable files,
//! text and JSON output, exit codes 0 / 1 / 2.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kci"))
        .args(args)
        .output()
        .expect("run kci")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const VALID_V5: &str = r#"{"version": {"major": 5, "minor": 3},
  "checkouts": [{"id": "lab:c1", "origin": "lab", "tree_name": "mainline",
                 "git_commit_hash": "0123456789abcdef0123456789abcdef01234567"}],
  "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1", "status": "PASS"}],
  "tests": [{"id": "lab:t1", "origin": "lab", "build_id": "lab:b1", "path": "boot",
             "status": "FAIL"}]}"#;

const VALID_V4: &str = r#"{"version": {"major": 4, "minor": 5},
  "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1", "valid": true}]}"#;

const INVALID: &str = r#"{"version": {"major": 5, "minor": 3},
  "builds": [{"id": "lab:b0", "origin": "lab", "checkout_id": "lab:c1"},
             {"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1",
              "status": "pass", "start_time": "yesterday"}]}"#;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn valid_files_exit_0_with_object_counts() {
    let dir = tempfile::tempdir().unwrap();
    let v5 = write(dir.path(), "v5.json", VALID_V5);
    let v4 = write(dir.path(), "v4.json", VALID_V4);
    let out = kci(&["validate", s(&v5), s(&v4)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("v5.json: OK (3 objects)\n"), "{stdout}");
    assert!(
        stdout.contains("v4.json: OK (1 objects, v4.5 upgraded to v5.3)\n"),
        "{stdout}"
    );
}

#[test]
fn invalid_file_exits_1_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.json", VALID_V5);
    let bad = write(dir.path(), "bad.json", INVALID);
    let out = kci(&["validate", s(&good), s(&bad)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("good.json: OK (3 objects)"), "{stdout}");
    assert!(stdout.contains("bad.json: INVALID (schema)"), "{stdout}");
    assert!(stdout.contains("\n  /builds/1/status: "), "{stdout}");
    assert!(stdout.contains("\n  /builds/1/start_time: "), "{stdout}");
    assert!(stdout.contains("yesterday"), "{stdout}");
}

#[test]
fn not_json_exits_1_with_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "trunc.json", r#"{"version": {"major": 5"#);
    let out = kci(&["validate", s(&bad)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("{}: INVALID (", bad.display())),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
}

#[test]
fn json_output_is_an_array_of_results() {
    let dir = tempfile::tempdir().unwrap();
    let v5 = write(dir.path(), "v5.json", VALID_V5);
    let v4 = write(dir.path(), "v4.json", VALID_V4);
    let bad = write(dir.path(), "bad.json", INVALID);
    let out = kci(&["validate", "--json", s(&v5), s(&v4), s(&bad)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["file"], s(&v5));
    assert_eq!(results[0]["valid"], true);
    assert_eq!(results[0]["objects"], 3);
    assert_eq!(results[0]["version"], "v5.3");
    assert_eq!(results[1]["version"], "v4.5");
    assert_eq!(results[2]["valid"], false);
    assert_eq!(results[2]["rejection"]["stage"], "schema");
    let pointers: Vec<&str> = results[2]["rejection"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/builds/1/status", "/builds/1/start_time"]);
}

#[test]
fn unreadable_file_exits_2_even_with_invalid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.json", INVALID);
    let missing = dir.path().join("missing.json");
    let out = kci(&["validate", s(&bad), s(&missing)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("missing.json: ERROR cannot read"),
        "{stdout}"
    );
    assert!(stdout.contains("bad.json: INVALID"), "{stdout}");

    let out = kci(&["validate", "--json", s(&missing)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        results[0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot read")
    );
}

#[test]
fn no_file_is_a_usage_error() {
    let out = kci(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
