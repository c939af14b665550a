//! Shared helpers for the integration tests: where the shared fixtures are, and JSON diffs.

#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

/// The logspec fixtures folder, or `None` (with a message) when it is missing outside CI.
/// Under CI (`CI` set and not `false`) a missing folder is a failure.
pub fn logspec_fixtures() -> Option<PathBuf> {
    let root = std::env::var_os("KERNELCI_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    let dir = root.join("logspec");
    if dir.is_dir() {
        return Some(dir);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        !in_ci,
        "logspec fixtures not found at {} (set KERNELCI_FIXTURES)",
        dir.display()
    );
    eprintln!(
        "SKIPPED: logspec fixtures not found at {} (set KERNELCI_FIXTURES to run these tests)",
        dir.display()
    );
    None
}

/// Every `<name>.log` with a `<name>.expected.json` beside it, sorted.
pub fn fixture_logs(dir: &PathBuf) -> Vec<PathBuf> {
    let mut logs = Vec::new();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read fixtures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for folder in folders {
        let mut here: Vec<PathBuf> = std::fs::read_dir(&folder)
            .expect("read fixture folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .filter(|p| p.with_extension("expected.json").exists())
            .collect();
        here.sort();
        logs.extend(here);
    }
    logs
}

/// Up to `limit` differences between two JSON values, as `path: expected vs actual`.
pub fn json_diff(expected: &Value, actual: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    walk("", expected, actual, &mut out, limit);
    out
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        format!(
            "{}...({} chars)",
            s.chars().take(300).collect::<String>(),
            s.chars().count()
        )
    } else {
        s
    }
}

fn walk(path: &str, e: &Value, a: &Value, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || e == a {
        return;
    }
    match (e, a) {
        (Value::Object(eo), Value::Object(ao)) => {
            for (k, ev) in eo {
                match ao.get(k) {
                    Some(av) => walk(&format!("{path}.{k}"), ev, av, out, limit),
                    None => out.push(format!("{path}.{k}: missing (expected {})", short(ev))),
                }
            }
            for k in ao.keys().filter(|k| !eo.contains_key(*k)) {
                out.push(format!("{path}.{k}: unexpected {}", short(&ao[k])));
            }
        }
        (Value::Array(ea), Value::Array(aa)) if ea.len() == aa.len() => {
            for (i, (ev, av)) in ea.iter().zip(aa).enumerate() {
                walk(&format!("{path}[{i}]"), ev, av, out, limit);
            }
        }
        _ => out.push(format!("{path}: expected {} got {}", short(e), short(a))),
    }
}
