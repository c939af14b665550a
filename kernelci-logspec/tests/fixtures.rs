//! Data-driven: every `<name>.log` in the shared logspec fixtures gives exactly its
//! `<name>.expected.json` (`output` and `output_full`), both from a string and streamed
//! through a reader in small chunks. Adding a fixture adds a case; every failing file is
//! listed with its first differences.

mod common;

use kernelci_logspec::{Options, Parser, parse_reader, parse_str};
use serde_json::Value;

#[test]
fn every_fixture_log_gives_its_expected_json() {
    let Some(dir) = common::logspec_fixtures() else {
        return;
    };
    let logs = common::fixture_logs(&dir);
    assert!(!logs.is_empty(), "no fixture logs in {}", dir.display());
    let mut failures = Vec::new();
    for log in &logs {
        let name = log.strip_prefix(&dir).unwrap_or(log).display().to_string();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(log.with_extension("expected.json")).expect("read expected"),
        )
        .expect("expected JSON");
        let parser_name = expected["parser"].as_str().expect("parser name");
        let parser = Parser::from_name(parser_name).expect("known parser");
        let bytes = std::fs::read(log).expect("read log");
        let text = String::from_utf8(bytes.clone()).expect("fixture logs are UTF-8");
        let result = parse_str(&text, parser);
        let mut problems = Vec::new();
        for (key, actual) in [
            ("output", result.output()),
            ("output_full", result.output_full()),
        ] {
            for d in common::json_diff(&expected[key], &actual, 5) {
                problems.push(format!("{key}{d}"));
            }
        }
        let options = Options {
            chunk_size: 4096,
            ..Options::default()
        };
        match parse_reader(bytes.as_slice(), parser, &options) {
            Ok(streamed) if streamed == result => {}
            Ok(streamed) => {
                for d in common::json_diff(&result.output_full(), &streamed.output_full(), 5) {
                    problems.push(format!("streamed differs from string: {d}"));
                }
            }
            Err(err) => problems.push(format!("streamed: {err}")),
        }
        if problems.is_empty() {
            println!("ok   {name}");
        } else {
            println!("FAIL {name}");
            failures.push(format!("{name}:\n    {}", problems.join("\n    ")));
        }
    }
    println!(
        "{} of {} fixture logs match",
        logs.len() - failures.len(),
        logs.len()
    );
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
