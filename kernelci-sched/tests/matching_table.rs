//! Table tests for event → jobs matching (§2.9), jobfilter / platform_filter (§2.11) and
//! job frequency parsing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use kernelci_sched::config::PipelineConfig;
use kernelci_sched::matching::{
    LoadedRuntimes, explain_schedule, get_schedule, jobfilter_allows, parse_frequency,
    platform_filter_allows,
};
use serde_json::{Value, json};

const CONFIG: &str = r#"
runtimes:
  k8s-all: {lab_type: kubernetes, context: [ctx-a, ctx-b]}
  lava-b: {lab_type: lava, url: 'https://b.example/'}
  lava-a: {lab_type: lava, url: 'https://a.example/'}
  lava-c: {lab_type: lava}
  shell: {lab_type: shell}
jobs:
  kbuild-gcc-14-arm64: {template: kbuild.jinja2, kind: kbuild, params: {arch: arm64}}
  baseline-arm64: {template: baseline.jinja2, kind: job, kcidb_test_suite: boot}
  kunit: {template: kunit.jinja2, kind: job}
  nipa-update: {template: nipa.jinja2, kind: process}
  on-fail: {template: x.jinja2, kind: job}
platforms:
  kubernetes:
  shell:
  rpi4: {arch: arm64, boot_method: u-boot, mach: broadcom}
  qemu-arm64: {arch: arm64, boot_method: qemu, mach: qemu}
scheduler:
  - job: kbuild-gcc-14-arm64
    event: {channel: node, kind: checkout, state: available}
    runtime: {name: k8s-all}
  - job: kunit
    event: {channel: node, kind: checkout, state: available}
    runtime: {type: shell}
    rules: {tree: ['!android']}
  - job: baseline-arm64
    event: {channel: node, kind: kbuild, state: available, name: kbuild-gcc-14-arm64}
    runtime: {type: lava}
    platforms: [rpi4, no-such-board, qemu-arm64]
  - job: baseline-arm64
    event: {channel: node, kind: kbuild, state: available, name: kbuild-gcc-14-arm64}
    runtime: {type: lava, name: lava-c}
    platforms: [rpi4]
  - job: nipa-update
    event: {channel: node, kind: job, state: done, name: kunit}
    runtime: {type: shell}
  - job: on-fail
    event: {channel: node, kind: kbuild, state: done, result: fail}
    runtime: {name: k8s-all}
  - job: missing-job
    event: {channel: node, kind: checkout, state: available}
    runtime: {name: k8s-all}
  - job: kunit
    event: {channel: retry, kind: checkout, state: available}
    runtime: {type: shell}
"#;

fn config() -> PipelineConfig {
    PipelineConfig::from_yaml_str(CONFIG, "inline.yaml").unwrap()
}

fn all_runtimes(cfg: &PipelineConfig) -> LoadedRuntimes {
    LoadedRuntimes::new(
        cfg.runtimes
            .values()
            .map(|r| (r.name.clone(), r.lab_type.clone())),
    )
}

fn triples(cfg: &PipelineConfig, rts: &LoadedRuntimes, event: &Value) -> Vec<String> {
    get_schedule(cfg, rts, event)
        .iter()
        .map(|s| format!("{} {} {}", s.job.name, s.runtime, s.platform.name))
        .collect()
}

#[test]
fn checkout_available_level_triggered_on_creation() {
    let cfg = config();
    let rts = all_runtimes(&cfg);
    let event = json!({"op": "created", "id": "c1", "kind": "checkout", "name": "checkout",
                       "state": "available", "result": null});
    assert_eq!(
        triples(&cfg, &rts, &event),
        [
            "kbuild-gcc-14-arm64 k8s-all kubernetes",
            "kunit shell shell"
        ]
    );
    let (jobs, skipped) = explain_schedule(&cfg, &rts, &event);
    assert_eq!(jobs[1].rules, Some(&json!({"tree": ["!android"]})));
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].reason, "unknown job `missing-job`");
    // Retry-channel entries never match (matching is on `channel: node`).
    assert!(!jobs.iter().any(|j| j.entry.index == 7));
}

#[test]
fn edge_trigger_on_updates() {
    let cfg = config();
    let rts = all_runtimes(&cfg);
    let base = json!({"op": "updated", "id": "k1", "kind": "kbuild",
                      "name": "kbuild-gcc-14-arm64", "state": "available", "result": "pass"});
    // running -> available: a transition, matches.
    let mut e = base.clone();
    e["previous_state"] = json!("running");
    e["previous_result"] = Value::Null;
    assert_eq!(triples(&cfg, &rts, &e).len(), 3);
    // available -> available (artifact update): already matched before, nothing.
    let mut e = base.clone();
    e["previous_state"] = json!("available");
    e["previous_result"] = json!("pass");
    assert!(triples(&cfg, &rts, &e).is_empty());
    let (_, skipped) = explain_schedule(&cfg, &rts, &e);
    assert!(
        skipped.iter().all(|s| s.reason.starts_with("edge trigger")),
        "{skipped:?}"
    );
    // No previous_* (older API or retry): level-triggered.
    assert_eq!(triples(&cfg, &rts, &base).len(), 3);
    // A `result` condition: done/fail after done/pass is a transition (result changed).
    let mut e = json!({"op": "updated", "id": "k1", "kind": "kbuild", "name": "kbuild-x",
                       "state": "done", "result": "fail",
                       "previous_state": "done", "previous_result": "pass"});
    assert_eq!(triples(&cfg, &rts, &e), ["on-fail k8s-all kubernetes"]);
    e["previous_result"] = json!("fail");
    assert!(triples(&cfg, &rts, &e).is_empty());
    // previous_result absent counts as null.
    let e = json!({"op": "updated", "id": "k1", "kind": "kbuild", "name": "kbuild-x",
                   "state": "done", "result": "fail", "previous_state": "done"});
    assert_eq!(triples(&cfg, &rts, &e), ["on-fail k8s-all kubernetes"]);
    // Created events are never edge-filtered, even with previous_* keys.
    let e = json!({"op": "created", "id": "k1", "kind": "kbuild", "name": "kbuild-x",
                   "state": "done", "result": "fail", "previous_state": "done",
                   "previous_result": "fail"});
    assert_eq!(triples(&cfg, &rts, &e), ["on-fail k8s-all kubernetes"]);
}

#[test]
fn subset_match_needs_every_pattern_key() {
    let cfg = config();
    let rts = all_runtimes(&cfg);
    // name differs
    let e =
        json!({"op": "created", "kind": "kbuild", "name": "kbuild-other", "state": "available"});
    assert!(triples(&cfg, &rts, &e).is_empty());
    // result missing from the event
    let e = json!({"op": "created", "kind": "kbuild", "name": "x", "state": "done"});
    assert!(triples(&cfg, &rts, &e).is_empty());
    // not an object
    assert!(triples(&cfg, &rts, &json!("BEEP")).is_empty());
}

#[test]
fn runtime_by_name_and_by_type() {
    let cfg = config();
    let event = json!({"op": "created", "id": "k1", "kind": "kbuild",
                       "name": "kbuild-gcc-14-arm64", "state": "available"});
    // All runtimes: by type picks the first lava runtime by name (lava-a), unknown platform
    // skipped; the entry naming lava-c uses lava-c.
    let rts = all_runtimes(&cfg);
    assert_eq!(
        triples(&cfg, &rts, &event),
        [
            "baseline-arm64 lava-a rpi4",
            "baseline-arm64 lava-a qemu-arm64",
            "baseline-arm64 lava-c rpi4"
        ]
    );
    let (_, skipped) = explain_schedule(&cfg, &rts, &event);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].reason, "unknown platform `no-such-board`");

    // Only lava-b loaded (--runtimes lava-b): by type gives lava-b; the lava-c entry is
    // skipped even though it also gives a type (the name wins).
    let rts = LoadedRuntimes::select(&cfg, &["lava-b".to_string()], &[]);
    assert_eq!(
        triples(&cfg, &rts, &event),
        [
            "baseline-arm64 lava-b rpi4",
            "baseline-arm64 lava-b qemu-arm64"
        ]
    );
    let (_, skipped) = explain_schedule(&cfg, &rts, &event);
    assert!(
        skipped
            .iter()
            .any(|s| s.reason == "runtime `lava-c` is not loaded in this scheduler")
    );

    // --runtime-type kubernetes: no lava at all.
    let rts = LoadedRuntimes::select(&cfg, &[], &["kubernetes".to_string()]);
    assert!(triples(&cfg, &rts, &event).is_empty());
    let (_, skipped) = explain_schedule(&cfg, &rts, &event);
    assert!(
        skipped
            .iter()
            .any(|s| s.reason == "no runtime of type `lava` is loaded in this scheduler")
    );
    // names win over types
    let rts = LoadedRuntimes::select(&cfg, &["shell".into()], &["kubernetes".into()]);
    assert_eq!(rts.names().collect::<Vec<_>>(), ["shell"]);
}

#[test]
fn default_platform_is_the_runtime_lab_type() {
    let cfg = config();
    let rts = all_runtimes(&cfg);
    let e = json!({"op": "updated", "kind": "job", "name": "kunit", "state": "done",
                   "previous_state": "running"});
    let jobs = get_schedule(&cfg, &rts, &e);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].platform.name, "shell");
    assert_eq!(jobs[0].lab_type, "shell");
    assert_eq!(jobs[0].platform.arch, "x86_64");
}

#[test]
fn jobfilter_table() {
    let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let path = |v: &[&str]| f(v);
    type Row = (Option<Vec<String>>, &'static str, Vec<String>, bool);
    let table: &[Row] = &[
        (None, "any", path(&["checkout", "any"]), true),
        (Some(f(&[])), "any", path(&["checkout", "any"]), true),
        (
            Some(f(&["kbuild-x"])),
            "kbuild-x",
            path(&["checkout", "kbuild-x"]),
            true,
        ),
        (
            Some(f(&["kbuild-x"])),
            "baseline",
            path(&["checkout", "kbuild-x", "baseline"]),
            false,
        ),
        (
            Some(f(&["kbuild-x+"])),
            "kbuild-x",
            path(&["checkout", "kbuild-x"]),
            true,
        ),
        (
            Some(f(&["kbuild-x+"])),
            "baseline",
            path(&["checkout", "kbuild-x", "baseline"]),
            true,
        ),
        (
            Some(f(&["kbuild-x+"])),
            "baseline",
            path(&["checkout", "kbuild-y", "baseline"]),
            false,
        ),
        (
            Some(f(&["kbuild-x+"])),
            "kbuild-y",
            path(&["checkout", "kbuild-y"]),
            false,
        ),
        (
            Some(f(&["checkout+"])),
            "anything",
            path(&["checkout", "anything"]),
            true,
        ),
        (
            Some(f(&["kbuild-x++"])),
            "kbuild-x",
            path(&["checkout", "kbuild-x"]),
            true,
        ),
    ];
    for (filter, name, p, expected) in table {
        assert_eq!(
            jobfilter_allows(filter.as_deref(), name, p),
            *expected,
            "{filter:?} {name} {p:?}"
        );
    }
}

#[test]
fn platform_filter_table() {
    let filter = vec!["rpi4".to_string()];
    assert!(platform_filter_allows(None, "job", "qemu"));
    assert!(platform_filter_allows(Some(&[]), "job", "qemu"));
    assert!(platform_filter_allows(Some(&filter), "job", "rpi4"));
    assert!(!platform_filter_allows(Some(&filter), "job", "qemu"));
    // only kind: job candidates are filtered
    assert!(platform_filter_allows(
        Some(&filter),
        "kbuild",
        "kubernetes"
    ));
    assert!(platform_filter_allows(Some(&filter), "test", "qemu"));
}

#[test]
fn frequency_table() {
    let table: &[(&str, Option<u64>)] = &[
        ("1d", Some(86_400)),
        ("12h", Some(43_200)),
        ("30m", Some(1_800)),
        ("1d12h", Some(129_600)),
        ("1d2h30m", Some(95_400)),
        ("1d30m", Some(88_200)),
        ("1m", Some(60)),
        ("0m", None),
        ("0d0h0m", None),
        ("", None),
        ("1h1d", None),
        ("5", None),
        ("1w", None),
        ("1d 2h", None),
        ("-1h", None),
        ("99999999999999999999d", None),
    ];
    for (text, expected) in table {
        assert_eq!(parse_frequency(text), *expected, "{text:?}");
    }
}
