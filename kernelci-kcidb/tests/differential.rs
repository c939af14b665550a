//! Differential test against the reference validator, the `kcidb-io` Python package.
//!
//! Runs kcidb-io (`tests/kcidb_io_verdicts.py`: read, `json.loads`, `LATEST.validate`,
//! `LATEST.upgrade`) over every fixture file plus a set of probe documents (one-field
//! mutations of `invalid/base/base.json` around the tricky rules: URIs, date-times,
//! patterns, versions, numbers), in one Python process, and compares verdicts, stages and
//! error pointers with ours. Every disagreement is listed; the test fails on any that is not
//! a documented deliberate difference (NOTES.md).
//!
//! Python: `$KCIDB_IO_PYTHON`, else `/tmp/kernelci-ci/kcidb-venv/bin/python` (made with
//! `python3 -m venv /tmp/kernelci-ci/kcidb-venv && /tmp/kernelci-ci/kcidb-venv/bin/pip
//! install kcidb-io`). Without it the test is skipped, except under CI where it fails.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{in_ci, json_eq, json_files, json_path_to_pointer, kcidb_fixtures};
use kernelci_kcidb::{check, parse, upgrade, validate};
use serde_json::{Value, json};

const DEFAULT_PYTHON: &str = "/tmp/kernelci-ci/kcidb-venv/bin/python";

/// The Python interpreter with kcidb-io, or `None` (skip) outside CI.
fn kcidb_io_python() -> Option<PathBuf> {
    let python = std::env::var_os("KCIDB_IO_PYTHON")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PYTHON), PathBuf::from);
    let works = Command::new(&python)
        .args(["-c", "import kcidb_io, jsonschema"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Some(python);
    }
    let msg = format!(
        "kcidb-io not available with {} (python3 -m venv /tmp/kernelci-ci/kcidb-venv && \
         /tmp/kernelci-ci/kcidb-venv/bin/pip install kcidb-io, or set KCIDB_IO_PYTHON)",
        python.display()
    );
    assert!(!in_ci(), "{msg}");
    eprintln!("skipping: {msg}");
    None
}

/// kcidb-io's verdict on one file.
#[derive(Debug)]
struct Reference {
    stage: String,
    path: Option<String>,
    message: String,
    /// The v5.3 document, for accepted documents of an older major version.
    upgraded: Option<Value>,
}

fn run_kcidb_io(python: &Path, files: &[PathBuf]) -> BTreeMap<PathBuf, Reference> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kcidb_io_verdicts.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for file in files {
            writeln!(stdin, "{}", file.display()).expect("write file list");
        }
    }
    let output = child.wait_with_output().expect("python output");
    assert!(output.status.success(), "kcidb_io_verdicts.py failed");
    let text = String::from_utf8(output.stdout).expect("utf-8 output");
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("verdict line");
            let file = PathBuf::from(v["file"].as_str().expect("file"));
            let reference = Reference {
                stage: v["stage"].as_str().expect("stage").to_string(),
                path: v["path"].as_str().map(str::to_string),
                message: v["message"].as_str().unwrap_or_default().to_string(),
                upgraded: v.get("upgraded").cloned(),
            };
            (file, reference)
        })
        .collect()
}

/// A generated document and, when we deliberately disagree with kcidb-io on it, why.
struct Probe {
    name: String,
    text: Vec<u8>,
    deliberate: Option<&'static str>,
}

fn put(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = doc.pointer_mut(parent).expect("parent exists");
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
        _ => panic!("{pointer}"),
    }
}

const URIS: &[&str] = &[
    "https://example.com/a/b?c=d&e=f#g",
    "http://a b",
    "https://example.com/\u{fc}",
    "HTTPS://EXAMPLE.COM/",
    "a:",
    "a:b",
    "https://[::1]/",
    "https://[::1/",
    "https://[v1.x]/",
    "https://[vz.x]/",
    "https://host:80x/",
    "https://host:/",
    "//host/path",
    "https://h/%41",
    "https://h/%4",
    "https://h/%zz",
    "mailto:x@y",
    "urn:a:b",
    "https://h/p#f#g",
    "x+y-z.w://h",
    "https://user:pw@host/",
    "https://@host/",
    "https:///path",
    "https://a@b@c/",
    "https://h/\u{7f}",
    "https://h/ ",
    "https://h/{x}",
    "https://h/|",
    "https://h/^",
    "https://h/`",
    "https://h/\"",
    "https://h/<",
    "https://h/\\",
    "https://1.2.3.256/",
    "https://[1:2:3:4:5:6:7:8]/",
    "https://[1:2:3:4:5:6:7:8:9]/",
    "https://[::ffff:1.2.3.4]/",
    "https://[::ffff:1.2.3.400]/",
    "https://[1::2::3]/",
    "https://h/a\nb",
    "https://h/\n",
    "https://h/a?b?c/d",
    "https://h/a#b?c/d",
    "",
    "1a:b",
    "a_b:c",
    "https://h/[x]",
    "https://h?x=[y]",
    "https://h/;a=b,c!$&'()*+",
    "file:///tmp/x",
    "s3://bucket/key",
];

const DATE_TIMES: &[&str] = &[
    "2025-01-01T00:00:00Z",
    "2025-01-01t00:00:00z",
    "2025-01-01T00:00:00+00:00\n",
    "2025-1-01T00:00:00Z",
    "2025-01-01T00:00Z",
    "2025-01-01T00:00:00.123+0100",
    "2025-01-01T00:00:00+01",
    "2025-01-01T00:00:00 +01:00",
    "2025-01-01 00:00:00Z",
    "20250101T000000Z",
    "2025-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999999Z",
    "2025-01-01T24:00:00Z",
    "2025-01-01T23:59:60Z",
    "2025-01-01T00:00:00.Z",
    "2025-01-01T00:00:00+23:59",
    "2025-01-01T00:00:00-24:00",
    "2025-01-01T00:00:00\u{ff3a}",
    "2025-01-01T00:00:00.\u{661}Z",
];

const ORIGINS: &[&str] = &[
    "maestro\n",
    "m",
    "",
    "a-b",
    "\u{1d5ba}",
    "_",
    "MAESTRO",
    "m\n\n",
];

const IDS: &[&str] = &[
    "m:", "m:x\ny", "m\n:x", ":x", "m:x\n", "m:\u{0}", "m:a:b", "m", "M:x", "m :x",
];

const PATHS: &[&str] = &[
    "", ".", "a..b", "a.b\n", "a-b_c.D9", "a b", "\u{fc}", "a.", "\n",
];

const SHORT_STRINGS: &[(&str, &str)] = &[
    (
        "/checkouts/0/git_commit_hash",
        "dece60d47ed1b024262a162b174a3ccfde5cecd9\n",
    ),
    (
        "/checkouts/0/git_commit_hash",
        "DECE60D47ED1B024262A162B174A3CCFDE5CECD9",
    ),
    ("/checkouts/0/patchset_hash", "\n"),
    ("/checkouts/0/patchset_hash", "a"),
    ("/checkouts/0/message_id", "@"),
    ("/checkouts/0/message_id", ""),
    ("/checkouts/0/git_repository_url", "https://h/x\n"),
    (
        "/checkouts/0/git_repository_url",
        "http://git.kernel.org/x.git",
    ),
    ("/checkouts/0/git_repository_url", "https:x"),
    ("/checkouts/0/tree_name", "a\nb\u{0}"),
    ("/builds/0/architecture", ""),
    ("/builds/0/architecture", "X86"),
    ("/builds/0/architecture", "x86\n"),
    ("/builds/0/status", "MISS"),
    ("/builds/0/status", "miss"),
    ("/builds/0/output_files/0/name", "\n"),
    ("/builds/0/output_files/0/name", "a\\b"),
    ("/tests/0/environment/compatible/0", ","),
    ("/tests/0/environment/compatible/0", "a,,b"),
    ("/tests/0/environment/compatible/0", "a\tb"),
    ("/tests/0/environment/compatible/0", "a\n"),
    ("/tests/0/number/prefix", "Metric"),
    ("/issues/0/categories/0", "a..b"),
    ("/issues/0/categories/0", ""),
];

fn probes(base: &Value) -> Vec<Probe> {
    let mut out = Vec::new();
    let mut set = |name: String, pointer: &str, value: Value| {
        let mut doc = base.clone();
        put(&mut doc, pointer, value);
        let text = serde_json::to_vec(&doc).expect("json");
        out.push(Probe {
            name,
            text,
            deliberate: None,
        });
    };
    for (i, s) in URIS.iter().enumerate() {
        set(format!("uri-{i:02}"), "/builds/0/log_url", json!(s));
    }
    for (i, s) in DATE_TIMES.iter().enumerate() {
        set(format!("date-time-{i:02}"), "/tests/0/start_time", json!(s));
    }
    for (i, s) in ORIGINS.iter().enumerate() {
        set(format!("origin-{i:02}"), "/checkouts/0/origin", json!(s));
    }
    for (i, s) in IDS.iter().enumerate() {
        set(format!("id-{i:02}"), "/tests/1/build_id", json!(s));
    }
    for (i, s) in PATHS.iter().enumerate() {
        set(format!("path-{i:02}"), "/tests/1/path", json!(s));
    }
    for (i, (pointer, s)) in SHORT_STRINGS.iter().enumerate() {
        set(format!("string-{i:02}"), pointer, json!(s));
    }
    let values = [
        ("/issues/0/version", json!(0)),
        ("/issues/0/version", json!(1.0)),
        ("/issues/0/version", json!(-0.0)),
        ("/issues/0/version", json!(100.5)),
        ("/issues/0/version", json!(2147483647)),
        ("/issues/0/version", json!(2147483648u64)),
        ("/issues/0/version", json!("1")),
        ("/incidents/0/issue_version", json!(true)),
        ("/builds/0/duration", json!(-1)),
        ("/builds/0/duration", json!(1e308)),
        ("/builds/0/duration", json!(18446744073709551615u64)),
        ("/builds/0/duration", json!("1")),
        ("/builds/0/duration", json!(null)),
        ("/tests/0/number", json!({"value": -0.0})),
        ("/tests/0/number", json!({"unit": "s"})),
        ("/tests/0/number", json!({"value": 1, "extra": 1})),
        ("/checkouts/0/valid", json!(0)),
        ("/checkouts/0/git_commit_tags", json!(["a", 1])),
        ("/checkouts/0/git_commit_tags", json!("a")),
        ("/checkouts/0/misc", json!([])),
        (
            "/checkouts/0/misc",
            json!({"a": {"b": [null, 1.5, {"_c": "\n"}]}}),
        ),
        ("/issues/0/culprit", json!({})),
        ("/issues/0/culprit", json!({"code": null})),
        ("/incidents/0/present", json!(null)),
        ("/builds/0/output_files", json!([])),
        ("/builds/0/output_files", json!([{"name": "a"}])),
        (
            "/builds/0/output_files",
            json!([{"name": "a", "url": "https://h/a", "x": 1}]),
        ),
        ("/tests/0/environment", json!({})),
        ("/tests/0/environment", json!({"compatible": []})),
        ("/version", json!({"major": 5, "minor": 0})),
        ("/version", json!({"major": 5, "minor": -1})),
        ("/version", json!({"major": 4, "minor": 5})),
        ("/version", json!({"major": 5, "minor": 3, "patch": 0})),
        ("/version", json!(5)),
        ("/version", json!(null)),
        ("/builds", json!([])),
        ("/builds", json!(null)),
        ("/builds", json!([[]])),
        ("/tests/0/misc/\u{0}", json!(1)),
    ];
    for (i, (pointer, value)) in values.into_iter().enumerate() {
        set(format!("value-{i:02}"), pointer, value);
    }
    // Whole documents.
    let sha1 = "dece60d47ed1b024262a162b174a3ccfde5cecd9";
    let documents = [
        json!({"version": {"major": 4, "minor": 5},
            "checkouts": [{"id": "a:c", "origin": "a", "git_repository_url": "git://h/r.git"}]}),
        json!({"version": {"major": 4, "minor": 5},
            "checkouts": [{"id": "a:c", "origin": "a", "git_repository_url": "http://h/r.git"}]}),
        json!({"version": {"major": 4, "minor": 0},
            "tests": [{"id": "a:t", "origin": "a", "build_id": "a:b", "comment": "x\u{0}"}]}),
        json!({"version": {"major": 4, "minor": 0},
            "tests": [{"id": "a:t\u{0}", "origin": "a", "build_id": "a:b", "waived": true}]}),
        json!({"version": {"major": 4, "minor": 3},
            "tests": [{"id": "a:t", "origin": "a", "build_id": "a:b", "path": "ltp."}]}),
        json!({"version": {"major": 4, "minor": 2},
            "tests": [{"id": "a:t", "origin": "a", "build_id": "a:b", "status": "MISS",
                "waived": true}, {"id": "a:u", "origin": "a", "build_id": "a:b",
                "waived": true}]}),
        json!({"version": {"major": 4, "minor": 1},
            "tests": [{"id": "a:t", "origin": "a", "build_id": "a:b", "status": "MISS"}]}),
        json!({"version": {"major": 4, "minor": 4},
            "tests": [{"id": "a:t", "origin": "a", "build_id": "a:b",
                "environment": {"compatible": ["a\u{0}"]}}]}),
        json!({"version": {"major": 3, "minor": 0},
            "revisions": [{"id": sha1, "origin": "a", "contacts": ["x"],
                "publishing_time": "2020-01-01T00:00:00Z"}],
            "builds": [{"id": "a:b", "origin": "a", "revision_id": sha1, "valid": false}]}),
        json!({"version": {"major": 3, "minor": 0},
            "revisions": [{"id": "a:1", "origin": "a"}]}),
        json!({"version": {"major": 3, "minor": 0},
            "revisions": [{"id": sha1, "origin": "a", "git_repository_url": "git://h/r"}]}),
        json!({"version": {"major": 3, "minor": 0},
            "tests": [{"id": "a:t", "origin": "a", "build_id": "a:b", "status": "MISS"}]}),
        json!({"version": {"major": 5, "minor": 2},
            "tests": [{"id": "a:t", "origin": "a", "build_id": "a:b", "input_files": []}]}),
        json!({"version": {"major": 5, "minor": 1},
            "issues": [{"id": "a:i", "origin": "a", "version": 1, "categories": []}]}),
        json!({"version": {"major": 5}, "checkouts": [{"id": "a:c", "origin": "a",
            "origin_tests_finish_time": "2025-01-01T00:00:00Z"}]}),
        json!({"version": {"major": 5, "minor": 3}, "issues": [{"id": "a:i", "origin": "a",
            "version": 1}, {"id": "a:i", "origin": "a", "version": 1, "comment": "x"}]}),
    ];
    for (i, doc) in documents.into_iter().enumerate() {
        let text = serde_json::to_vec(&doc).expect("json");
        out.push(Probe {
            name: format!("document-{i:02}"),
            text,
            deliberate: None,
        });
    }
    // Text-level probes, some deliberate differences.
    let base_text = serde_json::to_string(base).expect("json");
    let with = |from: &str, to: &str| base_text.replacen(from, to, 1).into_bytes();
    let raw: Vec<(&str, Vec<u8>, Option<&'static str>)> = vec![
        ("nan", with("2509.565", "NaN"), Some("NaN is not JSON")),
        (
            "infinity",
            with("2509.565", "-Infinity"),
            Some("Infinity is not JSON"),
        ),
        (
            "overflow",
            with("2509.565", "1e400"),
            Some("beyond f64: Python makes it infinite"),
        ),
        (
            "big-int",
            with("2509.565", &"9".repeat(400)),
            Some("beyond f64: Python keeps a bigint"),
        ),
        (
            "surrogate",
            with("next-20250303", "\\udc00"),
            Some("lone surrogate escape"),
        ),
        ("pair", with("next-20250303", "\\ud83d\\ude00"), None),
        (
            "duplicate",
            with(
                "\"status\":\"PASS\"",
                "\"status\":\"FAIL\",\"status\":\"PASS\"",
            ),
            Some("duplicate keys are ambiguous"),
        ),
        ("nested-100", with("\"lab\":null", &nest(100)), None),
        (
            "nested-200",
            with("\"lab\":null", &nest(200)),
            Some("nesting deeper than 128"),
        ),
        ("crlf", base_text.replace(',', ",\r\n").into_bytes(), None),
        (
            "bom",
            [b"\xef\xbb\xbf".as_slice(), base_text.as_bytes()].concat(),
            None,
        ),
        (
            "latin1",
            with("next-20250303", "next-\u{e9}")
                .iter()
                .map(|&b| if b == 0xc3 { b'x' } else { b })
                .collect(),
            None,
        ),
        (
            "obsolete-v2",
            br#"{"version": {"major": 2, "minor": 0}}"#.to_vec(),
            Some("v1/v2 unsupported"),
        ),
        (
            "obsolete-v1",
            br#"{"version": "1"}"#.to_vec(),
            Some("v1/v2 unsupported"),
        ),
        (
            "version-bool",
            br#"{"version": {"major": true, "minor": 1}}"#.to_vec(),
            Some("kcidb-io reads true as 1 and applies v1.1 (bool is an int in Python)"),
        ),
        (
            "version-float",
            br#"{"version": {"major": 5, "minor": 3.0}}"#.to_vec(),
            Some("version numbers must be JSON integers (kcidb-io fails them at upgrade)"),
        ),
        (
            "version-float-major",
            br#"{"version": {"major": 5.0, "minor": 3}}"#.to_vec(),
            Some("version numbers must be JSON integers (kcidb-io fails them at upgrade)"),
        ),
    ];
    for (name, text, deliberate) in raw {
        out.push(Probe {
            name: format!("raw-{name}"),
            text,
            deliberate,
        });
    }
    out
}

/// Random one-place mutations of `base` (a replaced value, a removed or an added member),
/// from a fixed seed so that failures reproduce.
fn random_probes(base: &Value, prefix: &str, seed: u64, count: usize) -> Vec<Probe> {
    let mut pointers = Vec::new();
    collect_pointers(base, String::new(), &mut pointers);
    let mut pool: Vec<Value> = [URIS, DATE_TIMES, ORIGINS, IDS, PATHS]
        .iter()
        .flat_map(|list| list.iter().map(|s| json!(s)))
        .chain(SHORT_STRINGS.iter().map(|(_, s)| json!(s)))
        .collect();
    pool.extend([
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(""),
        json!([]),
        json!({}),
        json!("x"),
        json!(["x"]),
        json!([{}]),
        json!({"value": 1}),
        json!("PASS"),
        json!("metric"),
        json!({"name": "a", "url": "https://h/a"}),
        json!("MISS"),
        json!("a:x\u{0}"),
        json!({"description": "d"}),
        json!({"comment": "c"}),
        json!("dece60d47ed1b024262a162b174a3ccfde5cecd9"),
        json!("git://h/r.git"),
    ]);
    let mut state = seed;
    let mut next = move |n: usize| -> usize {
        // SplitMix64.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    (0..count)
        .map(|i| {
            let mut doc = base.clone();
            let pointer = &pointers[next(pointers.len())];
            match next(4) {
                0 => {
                    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
                    if let Some(Value::Object(map)) = doc.pointer_mut(parent) {
                        map.shift_remove(key);
                    }
                }
                1 => {
                    if let Some(Value::Object(map)) = doc.pointer_mut(pointer) {
                        map.insert("zz".to_string(), pool[next(pool.len())].clone());
                    }
                }
                _ => put(&mut doc, pointer, pool[next(pool.len())].clone()),
            }
            let text = serde_json::to_vec(&doc).expect("json");
            Probe {
                name: format!("random-{prefix}-{i:04}"),
                text,
                deliberate: None,
            }
        })
        .collect()
}

fn collect_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let pointer = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                out.push(pointer.clone());
                collect_pointers(child, pointer, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let pointer = format!("{at}/{i}");
                out.push(pointer.clone());
                collect_pointers(child, pointer, out);
            }
        }
        _ => {}
    }
}

fn nest(depth: usize) -> String {
    format!("\"lab\": {}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Fixture files on which we deliberately disagree with kcidb-io (NOTES.md).
fn deliberate_fixture(file: &Path) -> Option<&'static str> {
    let name = file.file_name()?.to_str()?;
    match name {
        "12_nan_literal.json" => Some("NaN is not JSON"),
        "13_duplicate_key.json" => Some("duplicate keys are ambiguous"),
        "14_nul_in_misc.json" => Some("NUL in misc: PostgreSQL jsonb cannot store it"),
        "15_huge_integer_version.json" => Some("issue version above 2^31-1 (INTEGER)"),
        "16_huge_float_duration.json" => Some("1e400 is beyond f64"),
        "18_lone_surrogate_escape.json" => Some("lone surrogate escape"),
        _ => None,
    }
}

fn expected_pointer(reference: &Reference) -> Option<String> {
    let path = reference.path.as_deref()?;
    let mut pointer = json_path_to_pointer(path);
    if let Some(rest) = reference
        .message
        .strip_prefix("Additional properties are not allowed ('")
    {
        let property = rest.split('\'').next().unwrap_or_default();
        pointer = format!(
            "{pointer}/{}",
            property.replace('~', "~0").replace('/', "~1")
        );
    }
    Some(pointer)
}

/// Compares one file; returns a disagreement, if any, and whether it is documented.
fn compare(
    bytes: &[u8],
    reference: &Reference,
    deliberate: Option<&str>,
) -> Option<(String, bool)> {
    let ours = check(bytes);
    let ours_stage = match &ours {
        Ok(_) => "ok".to_string(),
        Err(e) => e.stage().as_str().to_string(),
    };
    let stricter = matches!(&ours, Err(e) if e.only_stricter_than_kcidb_io());
    if ours_stage != reference.stage {
        let why = match &ours {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        };
        let text = format!(
            "kcidb-io {} ({}), ours {ours_stage}: {}",
            reference.stage,
            reference.message.chars().take(120).collect::<String>(),
            why.chars().take(200).collect::<String>()
        );
        let documented = deliberate.is_some() || (reference.stage == "ok" && stricter);
        return Some((text, documented));
    }
    if reference.stage == "schema"
        && let (Some(expected), Err(rejection)) = (expected_pointer(reference), &ours)
    {
        let got: Vec<&str> = rejection
            .problems()
            .iter()
            .map(|p| p.pointer.as_str())
            .collect();
        if !got.contains(&expected.as_str()) {
            let text = format!("kcidb-io points at {expected:?}, we at {got:?}");
            return Some((text, deliberate.is_some()));
        }
    }
    if let Some(why) = deliberate {
        return Some((
            format!("expected the deliberate difference ({why}) to show"),
            false,
        ));
    }
    if let Some(expected) = &reference.upgraded {
        let doc = parse(bytes).expect("accepted, so JSON");
        let ours = validate(&doc).and_then(|v| upgrade(doc, v));
        match ours {
            Ok(upgraded) if json_eq(&upgraded, expected) => {}
            Ok(upgraded) => {
                return Some((
                    format!("upgrade differs:\n  ours {upgraded}\n  kcidb-io {expected}"),
                    false,
                ));
            }
            Err(e) => return Some((format!("our upgrade failed: {e}"), false)),
        }
    }
    None
}

#[test]
fn verdicts_agree_with_kcidb_io() {
    let Some(root) = kcidb_fixtures() else { return };
    let Some(python) = kcidb_io_python() else {
        return;
    };
    let mut files: Vec<(PathBuf, Option<&'static str>)> = Vec::new();
    for folder in [
        "upgrade",
        "small",
        "mixed",
        "invalid",
        "invalid/base",
        "edge-valid",
    ] {
        for file in json_files(&root.join(folder)) {
            let deliberate = deliberate_fixture(&file);
            files.push((file, deliberate));
        }
    }
    let fixture_count = files.len();
    let base_bytes = std::fs::read(root.join("invalid/base/base.json")).expect("base.json");
    let base: Value = serde_json::from_slice(&base_bytes).expect("base json");
    let dir = std::env::temp_dir().join(format!("kcidb-differential-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let old = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(root.join("upgrade").join(name)).expect("read"))
            .expect("json")
    };
    let generated = probes(&base)
        .into_iter()
        .chain(random_probes(&base, "v5.3", 0x5eed, 1500))
        .chain(random_probes(&old("v4.5.json"), "v4.5", 45, 400))
        .chain(random_probes(&old("v4.0.json"), "v4.0", 40, 200))
        .chain(random_probes(&old("v3.0.json"), "v3.0", 30, 400));
    for probe in generated {
        let path = dir.join(format!("{}.json", probe.name));
        std::fs::write(&path, &probe.text).expect("write probe");
        files.push((path, probe.deliberate));
    }
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let references = run_kcidb_io(&python, &paths);

    let mut undocumented = Vec::new();
    let mut documented = Vec::new();
    let mut accepted = 0;
    let mut upgrades = 0;
    for (path, deliberate) in &files {
        let reference = references.get(path).expect("a verdict per file");
        accepted += usize::from(reference.stage == "ok");
        upgrades += usize::from(reference.upgraded.is_some());
        let bytes = std::fs::read(path).expect("read");
        if let Some((text, ok)) = compare(&bytes, reference, *deliberate) {
            let shown = path
                .strip_prefix(&root)
                .or_else(|_| path.strip_prefix(&dir))
                .unwrap_or(path);
            let line = format!("{}: {text}", shown.display());
            if ok {
                documented.push(line)
            } else {
                undocumented.push(line)
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "kcidb-io differential: {} files ({fixture_count} fixtures, {} probes), kcidb-io \
         accepted {accepted} ({upgrades} upgraded from v3/v4, compared); {} documented \
         differences, {} undocumented",
        files.len(),
        files.len() - fixture_count,
        documented.len(),
        undocumented.len()
    );
    for line in &documented {
        eprintln!("  documented: {line}");
    }
    for line in &undocumented {
        eprintln!("  UNDOCUMENTED: {line}");
    }
    assert!(
        undocumented.is_empty(),
        "disagreements with kcidb-io:\n{}",
        undocumented.join("\n")
    );
}
