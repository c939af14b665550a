//! A large LAVA callback body in lava-server 2023.01's shape, shared by the callback
//! benchmarks (`kernelci-lava`'s parser alone, and the pipeline's endpoint end to end):
//! included with `#[path]`, not an example of its own.

#![allow(dead_code)]

use std::fmt::Write as _;

use serde_json::{Value, json};

/// How big the body is.
pub struct Shape {
    /// Test cases, spread over the suites.
    pub cases: usize,
    /// Suites besides `lava`.
    pub suites: usize,
    /// Log size, MB.
    pub log_mb: usize,
}

/// PyYAML's double-quoted style (`default_style='"'`, ASCII output).
fn dq(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) < 0x7f => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
}

fn dt(i: usize) -> String {
    format!(
        "2026-11-28T08:{:02}:{:02}.{:06}",
        (i / 60_000_000) % 60,
        (i / 1_000_000) % 60,
        i % 1_000_000
    )
}

const CONSOLE: &[&str] = &[
    "usb 1-1: new high-speed USB device number {n} using xhci_hcd",
    "EXT4-fs (mmcblk0p2): mounted filesystem with ordered data mode. Quota mode: none.",
    "\u{1b}[0;32m[  OK  ]\u{1b}[0m Started \u{1b}[0;1;39mJournal Service\u{1b}[0m.",
    "random: crng init done\tentropy {n}",
    "systemd[1]: Reached target Basic System (é€ unit {n}).",
    "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=case-{n} RESULT=pass>",
    "+ lava-test-case case-{n} --shell true",
];

fn case_name(suite: usize, i: usize) -> String {
    format!("suite{suite}-case-{i:05}")
}

fn suite_yaml(job: i64, suite: &str, cases: &[(String, Option<String>, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, set, result)) in cases.iter().enumerate() {
        let _ = write!(
            out,
            "- id: '{id}'\n  job: '{job}'\n  level: 3.1.{i}\n  log_end_line: '{e}'\n  log_start_line: '{s}'\n  \
             logged: '2026-11-28 08:07:{sec:02}.123456+00:00'\n  measurement: '{m}'\n  metadata:\n    \
             case: {name}\n    definition: {suite}\n    result: {result}\n",
            id = 1000 + i,
            e = 20 + 2 * i,
            s = 19 + 2 * i,
            sec = i % 60,
            m = if i % 10 == 0 {
                format!("{}.5000000000", i)
            } else {
                "None".into()
            },
        );
        if let Some(set) = set {
            let _ = writeln!(out, "    set: {set}");
        }
        let _ = write!(
            out,
            "  name: {name}\n  result: {result}\n  suite: {suite}\n  unit: '{u}'\n  url: /results/testcase/{id}\n",
            id = 1000 + i,
            u = if i % 10 == 0 { "seconds" } else { "" },
        );
    }
    out
}

/// A callback body of `o.cases` test cases in `o.suites` suites and a log of about
/// `o.log_mb` MB, for job node `node_id`; also the number of log lines.
pub fn payload(o: &Shape, node_id: &str) -> (Vec<u8>, usize) {
    let job = 4242;
    let mut results = serde_json::Map::new();
    let mut lava = String::from(
        "- {name: validate, result: pass, metadata: {}}\n\
         - {name: file-download, result: pass, metadata: {}}\n\
         - {name: auto-login-action, result: pass, metadata: {}}\n\
         - {name: kernel-messages, result: pass, metadata: {}}\n",
    );
    let mut log_results = Vec::new();
    for s in 0..o.suites {
        let n = o.cases / o.suites + usize::from(s < o.cases % o.suites);
        let suite = format!("{}_kselftest-suite{s}", s + 1);
        let cases: Vec<(String, Option<String>, &str)> = (0..n)
            .map(|i| {
                let set = (s % 2 == 1).then(|| format!("set{}", i % 20));
                let result = match i % 17 {
                    0 => "fail",
                    1 => "skip",
                    2 => "unknown",
                    _ => "pass",
                };
                (case_name(s, i), set, result)
            })
            .collect();
        for (name, _, result) in &cases {
            log_results.push((suite.clone(), name.clone(), *result));
        }
        results.insert(
            suite.clone(),
            Value::String(suite_yaml(job, &suite, &cases)),
        );
        let _ = writeln!(lava, "- {{name: {suite}, result: pass, metadata: {{}}}}");
    }
    lava.push_str("- {name: job, result: pass, metadata: {}}\n");
    results.insert("lava".into(), Value::String(lava));

    let target = o.log_mb * 1_000_000;
    let mut log = String::with_capacity(target + 4096);
    let mut i = 0usize;
    let mut next_result = 0usize;
    let every = (target / 120)
        .checked_div(log_results.len().max(1))
        .unwrap_or(1)
        .max(1);
    while log.len() < target {
        log.push_str("- {\"dt\": \"");
        log.push_str(&dt(i));
        if i.is_multiple_of(every) && next_result < log_results.len() {
            let (suite, name, result) = &log_results[next_result];
            next_result += 1;
            let _ = writeln!(
                log,
                "\", \"lvl\": \"results\", \"msg\": {{\"case\": \"{name}\", \"definition\": \"{suite}\", \
                 \"duration\": \"0.12\", \"level\": \"3.1\", \"result\": \"{result}\"}}}}"
            );
        } else if i.is_multiple_of(25) {
            log.push_str("\", \"lvl\": \"debug\", \"msg\": ");
            dq(&mut log, &format!("Using line separator: #'\\n'# {i}"));
            log.push_str("}\n");
        } else if i.is_multiple_of(40) {
            log.push_str("\", \"lvl\": \"info\", \"msg\": ");
            dq(
                &mut log,
                &format!(
                    "end: 2.4.{} auto-login-action (duration 00:00:0{})",
                    i % 9,
                    i % 7
                ),
            );
            log.push_str("}\n");
        } else {
            let template = CONSOLE[i % CONSOLE.len()];
            let msg = format!(
                "[{:5}.{:06}] {}",
                i / 1000,
                (i * 7919) % 1_000_000,
                template.replace("{n}", &i.to_string())
            );
            log.push_str("\", \"lvl\": \"target\", \"msg\": ");
            dq(&mut log, &msg);
            log.push_str("}\n");
        }
        i += 1;
    }
    let definition = "device_type: qemu\njob_name: bench\nmetadata: {node_id: '";
    let definition = format!("{definition}{node_id}'}}\n");
    let body = json!({
        "actual_device_id": "qemu-01",
        "definition": definition,
        "description": "bench",
        "end_time": "None",
        "failure_comment": null,
        "health": 1,
        "health_string": "Complete",
        "id": job,
        "log": log,
        "metadata": [],
        "priority": 50,
        "results": results,
        "start_time": "2026-11-28 08:06:49.880759+00:00",
        "state": 5,
        "state_string": "Finished",
        "status": 2,
        "status_string": "complete",
        "submit_time": "2026-11-28 08:06:40.000000+00:00",
        "submitter_username": "admin",
        "token": "ci-callback-secret-123",
    });
    (serde_json::to_vec(&body).unwrap_or_default(), i)
}
