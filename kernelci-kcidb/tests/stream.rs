//! The streaming reader (`kernelci_kcidb::stream`) against the in-memory path: the same
//! verdicts and objects on every fixture and on generated documents, with streaming forced
//! (`in_memory_up_to: 0`).

mod common;

use std::convert::Infallible;
use std::io::Cursor;

use common::{json_files, kcidb_fixtures};
use kernelci_kcidb::stream::{StreamError, StreamOptions, read_chunks, read_objects};
use kernelci_kcidb::{ParseError, Reason, Rejection, Stage, Submission, load};
use serde_json::{Value, json};

const STREAMED: StreamOptions = StreamOptions {
    in_memory_up_to: 0,
    max_problems: 1_000_000,
};

/// Streams `bytes` and collects what it hands over.
fn stream(bytes: &[u8], options: &StreamOptions) -> Result<Submission, Rejection> {
    let mut out = Submission::new();
    let result = read_objects(Cursor::new(bytes), options, |_, object| {
        object.push_into(&mut out);
        Ok::<(), Infallible>(())
    });
    match result {
        Ok(count) => {
            assert_eq!(count as usize, out.object_count());
            Ok(out)
        }
        Err(StreamError::Rejected(r)) => Err(r),
        Err(other) => panic!("unexpected: {other}"),
    }
}

/// The problems as sorted `(pointer, reason)` pairs (the streamed order is the document's).
fn sorted_problems(r: &Rejection) -> Vec<(String, String)> {
    let mut out: Vec<_> = r
        .problems()
        .iter()
        .map(|p| (p.pointer.clone(), p.reason.to_string()))
        .collect();
    out.sort();
    out
}

fn assert_same(bytes: &[u8], what: &str) {
    let whole = load(bytes);
    let streamed = stream(bytes, &STREAMED);
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: objects differ"),
        (Err(a), Err(b)) => {
            assert_eq!(a.stage(), b.stage(), "{what}: {a} vs {b}");
            match (a, b) {
                (Rejection::Parse(pa), Rejection::Parse(pb)) => {
                    // Syntax messages may name another position; the kind must agree.
                    assert_eq!(
                        std::mem::discriminant(pa),
                        std::mem::discriminant(pb),
                        "{what}: {pa} vs {pb}"
                    );
                    match (pa, pb) {
                        // The reader may stand one byte further on that line.
                        (
                            ParseError::DuplicateKey { key, line, .. },
                            ParseError::DuplicateKey {
                                key: key_b,
                                line: line_b,
                                ..
                            },
                        ) => assert_eq!((key, line), (key_b, line_b), "{what}"),
                        (ParseError::Syntax { .. }, _) => {}
                        _ => assert_eq!(pa, pb, "{what}"),
                    }
                }
                _ => assert_eq!(sorted_problems(a), sorted_problems(b), "{what}"),
            }
        }
        _ => panic!("{what}: in memory {whole:?}, streamed {streamed:?}"),
    }
}

#[test]
fn streamed_and_in_memory_agree_on_every_fixture() {
    let Some(root) = kcidb_fixtures() else { return };
    let mut files = 0;
    for folder in [
        "small",
        "mixed",
        "invalid",
        "invalid/base",
        "edge-valid",
        "upgrade",
    ] {
        for file in json_files(&root.join(folder)) {
            let bytes = std::fs::read(&file).unwrap();
            assert_same(&bytes, &file.display().to_string());
            files += 1;
        }
    }
    assert!(files > 90, "only {files} fixture files");
}

fn build(i: usize) -> Value {
    json!({"id": format!("lab:b{i}"), "origin": "lab", "checkout_id": "lab:c1",
           "status": if i.is_multiple_of(2) { "PASS" } else { "FAIL" }, "architecture": "x86_64",
           "misc": {"n": i, "note": "ünïcødé ✓"}})
}

fn doc(builds: usize) -> Value {
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": [{"id": "lab:c1", "origin": "lab", "tree_name": "mainline"}],
        "builds": (0..builds).map(build).collect::<Vec<_>>(),
    })
}

#[test]
fn generated_documents_agree() {
    let valid = doc(300);
    assert_same(valid.to_string().as_bytes(), "valid");
    // `version` last: a first pass finds it.
    let text = valid.to_string();
    let mut map = valid.as_object().unwrap().clone();
    let version = map.shift_remove("version").unwrap();
    map.insert("version".into(), version);
    let last = Value::Object(map).to_string();
    assert_ne!(text, last);
    assert_same(last.as_bytes(), "version last");
    assert_eq!(
        stream(last.as_bytes(), &STREAMED).unwrap().builds.len(),
        300
    );
    // Missing version, unknown version, obsolete version, not an object, not a list.
    for bad in [
        json!({"builds": [build(1)]}),
        json!({"version": {"major": 9, "minor": 0}, "builds": [build(1)]}),
        json!({"builds": [build(1)], "version": {"major": 9}}),
        json!({"version": {"major": 1, "minor": 1}}),
        json!({"version": "1.1", "builds": []}),
        json!([1, 2]),
        json!("text"),
        json!({"version": {"major": 5, "minor": 3}, "builds": {"a": 1}}),
        json!({"version": {"major": 5, "minor": 3}, "builds": 7, "tests": null}),
        json!({"version": {"major": 5, "minor": 3}, "extra": [1], "builds": [build(1), {"id": 3}]}),
        json!({"version": {"major": 5, "minor": 3, "patch": 1}}),
    ] {
        assert_same(bad.to_string().as_bytes(), &bad.to_string());
    }
    // An older major is read whole and upgraded.
    let v4 = json!({"version": {"major": 4, "minor": 5},
        "checkouts": [{"id": "lab:c1", "origin": "lab"}],
        "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1", "valid": false}]});
    assert_same(v4.to_string().as_bytes(), "v4");
    let upgraded = stream(v4.to_string().as_bytes(), &STREAMED).unwrap();
    assert_eq!(
        upgraded.builds[0].status,
        Some(kernelci_kcidb::Status::Fail)
    );
}

#[test]
fn parse_errors_agree() {
    let text = doc(50).to_string();
    // Every truncation is refused at the same stage as in memory.
    for cut in (1..text.len()).step_by(97) {
        assert_same(&text.as_bytes()[..cut], &format!("cut at {cut}"));
    }
    // Duplicate keys, at the top and inside an object.
    assert_same(
        br#"{"version": {"major": 5, "minor": 3}, "builds": [], "builds": []}"#,
        "duplicate list",
    );
    assert_same(
        br#"{"version": {"major": 5, "minor": 3}, "builds": [{"id": "lab:b", "id": "lab:c"}]}"#,
        "duplicate field",
    );
    // Invalid UTF-8 at an exact offset, also across the reader's buffer boundary.
    let mut bytes = text.clone().into_bytes();
    let at = bytes.len() - 40;
    bytes[at] = 0xff;
    assert_same(&bytes, "bad byte");
    let big = doc(2000).to_string();
    let mut bytes = big.into_bytes();
    let at = (1 << 16) + 3;
    bytes[at] = 0xc3;
    bytes[at + 1] = b'(';
    assert_same(&bytes, "bad sequence after the first buffer");
    match stream(&bytes, &STREAMED) {
        Err(Rejection::Parse(ParseError::InvalidUtf8 { offset })) => assert_eq!(offset, at),
        other => panic!("{other:?}"),
    }
    assert_same(b"\xef\xbb\xbf{}", "byte-order mark");
    assert_same(b"{\"version\": {\"major\": 5}} x", "trailing data");
}

#[test]
fn too_many_problems_are_cut() {
    let mut d = doc(0);
    d["builds"] = Value::Array((0..50).map(|i| json!({"id": i})).collect());
    let options = StreamOptions {
        in_memory_up_to: 0,
        max_problems: 10,
    };
    let rejection = stream(d.to_string().as_bytes(), &options).unwrap_err();
    let problems = rejection.problems();
    assert_eq!(problems.len(), 11);
    assert_eq!(problems[10].reason, Reason::TooManyProblems { shown: 10 });
    assert_eq!(rejection.stage(), Stage::Schema);
    // In memory everything is listed.
    assert!(load(d.to_string().as_bytes()).unwrap_err().problems().len() > 50);
}

#[test]
fn objects_are_handed_over_in_order_and_the_callback_can_stop() {
    let text = doc(100).to_string();
    let mut seen = Vec::new();
    let result = read_objects(Cursor::new(text.as_bytes()), &STREAMED, |i, object| {
        seen.push((
            object.list(),
            i,
            object.id().to_string(),
            object.origin().to_string(),
        ));
        if seen.len() == 42 {
            Err("enough")
        } else {
            Ok(())
        }
    });
    assert!(matches!(result, Err(StreamError::Stopped("enough"))));
    assert_eq!(seen.len(), 42);
    assert_eq!(
        seen[0],
        ("checkouts", 0, "lab:c1".to_string(), "lab".to_string())
    );
    assert_eq!(
        seen[41],
        ("builds", 40, "lab:b40".to_string(), "lab".to_string())
    );
}

#[test]
fn chunks_cover_the_document() {
    let text = doc(2499).to_string();
    let whole = load(text.as_bytes()).unwrap();
    for options in [STREAMED, StreamOptions::default()] {
        let mut chunks = Vec::new();
        let count = read_chunks(Cursor::new(text.as_bytes()), &options, 1000, |chunk| {
            chunks.push(chunk);
            Ok::<(), Infallible>(())
        })
        .unwrap();
        assert_eq!(count, 2500);
        let sizes: Vec<_> = chunks.iter().map(Submission::object_count).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let mut joined = Submission::new();
        for chunk in chunks {
            joined.checkouts.extend(chunk.checkouts);
            joined.builds.extend(chunk.builds);
        }
        assert_eq!(joined, whole);
    }
}
