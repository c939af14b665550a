//! Shared helpers of the integration tests: where the fixtures are, and JSON comparison.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Whether we run under CI, where nothing may be skipped for a missing fixture or peer.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// The shared fixtures folder: `$KERNELCI_FIXTURES`, else `../../shared/fixtures` from this
/// crate.
pub fn fixtures_root() -> PathBuf {
    match std::env::var_os("KERNELCI_FIXTURES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    }
}

/// The `kcidb` fixtures folder, or `None` (with a message) when it is missing outside CI.
/// Under CI a missing folder fails the test.
pub fn kcidb_fixtures() -> Option<PathBuf> {
    let dir = fixtures_root().join("kcidb");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "KCIDB fixtures not found at {} (set KERNELCI_FIXTURES)",
        dir.display()
    );
    eprintln!(
        "skipping: KCIDB fixtures not found at {} (set KERNELCI_FIXTURES)",
        dir.display()
    );
    None
}

/// The `*.json` files directly in `dir`, sorted.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Reads a JSON file with serde_json (for expected values and manifests).
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a JSON-lines file.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// JSON equality where numbers compare by value (`5` equals `5.0`), objects ignore key order
/// and arrays keep their order.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Converts a jsonschema JSON path (`$.builds[0].id`) to a JSON pointer (`/builds/0/id`).
pub fn json_path_to_pointer(path: &str) -> String {
    let rest = path.strip_prefix('$').unwrap_or(path);
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => out.push('/'),
            '[' => {
                out.push('/');
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    out.push(d);
                }
            }
            c => out.push(c),
        }
    }
    out
}
