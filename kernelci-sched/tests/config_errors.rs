//! Loading and typing small inline configurations: merge rules, errors naming the file and
//! the key path, and cross-reference warnings.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use kernelci_sched::config::{self, ConfigError, Dtb, PipelineConfig, Priority};
use serde_json::json;
use std::path::Path;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn invalid(text: &str) -> Vec<String> {
    match PipelineConfig::from_yaml_str(text, "bad.yaml") {
        Err(ConfigError::Invalid(p)) => p.0.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("expected schema problems, got {other}"),
        Ok(_) => panic!("expected an error for {text}"),
    }
}

#[test]
fn folder_merge_rules_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "b.yaml",
        "jobs: {b: {template: b.jinja2}}\nscheduler: [{job: b}]\nversion: 2\n",
    );
    write(
        d,
        "a.yaml",
        "jobs: {a: {template: a.jinja2}, b: {template: old.jinja2}}\nscheduler: [{job: a}]\nversion: 1\n",
    );
    write(d, "sub/c.yaml", "jobs: {c: {template: c.jinja2}}\n");
    write(d, "debos/skip.yaml", "jobs: {skipped: {}}\n");
    write(d, "x/debos/skip.yaml", "jobs: {skipped: {}}\n");
    write(d, "notyaml.yml", "jobs: {yml: {}}\n");
    write(d, ".hidden.yaml", "jobs: {hidden: {}}\n");
    write(d, "empty.yaml", "");
    let files = config::yaml_files(d).unwrap();
    let rel: Vec<_> = files
        .iter()
        .map(|p| p.strip_prefix(d).unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(rel, ["a.yaml", "b.yaml", "empty.yaml", "sub/c.yaml"]);
    let merged = config::load_dir(d).unwrap();
    assert_eq!(
        merged,
        json!({
            // mapping updated shallowly: b.yaml's `b` replaced a.yaml's
            "jobs": {"a": {"template": "a.jinja2"}, "b": {"template": "b.jinja2"},
                     "c": {"template": "c.jinja2"}},
            // lists extended in file order
            "scheduler": [{"job": "a"}, {"job": "b"}],
            // scalars replaced
            "version": 2
        })
    );
    let sourced = config::load_dir_sourced(d).unwrap();
    assert_eq!(
        sourced.origins.file_of(&["jobs", "a"]),
        Some(d.join("a.yaml").as_path())
    );
    assert_eq!(
        sourced.origins.file_of(&["jobs", "b"]),
        Some(d.join("b.yaml").as_path())
    );
    assert_eq!(
        sourced.origins.file_of(&["scheduler", "1"]),
        Some(d.join("b.yaml").as_path())
    );
    assert_eq!(
        sourced.origins.file_of(&["version"]),
        Some(d.join("b.yaml").as_path())
    );
}

#[test]
fn errors_name_the_file_and_key_path() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "jobs.yaml",
        "jobs:\n  kbuild-gcc-14-arm64: {kind: kbuild, templat: kbuild.jinja2}\n",
    );
    write(d, "platforms.yaml", "platforms:\n  rpi4: {arch: [arm64]}\n");
    write(
        d,
        "scheduler.yaml",
        "scheduler:\n  - {job: x, event: {channel: node}}\n",
    );
    let err = PipelineConfig::load_dir(d).unwrap_err();
    let text = err.to_string();
    let jobs = d.join("jobs.yaml").display().to_string();
    let platforms = d.join("platforms.yaml").display().to_string();
    let scheduler = d.join("scheduler.yaml").display().to_string();
    for expected in [
        format!("{jobs}: jobs.kbuild-gcc-14-arm64.templat: unknown key"),
        format!("{jobs}: jobs.kbuild-gcc-14-arm64.template: required key missing"),
        format!("{platforms}: platforms.rpi4.arch: expected a string, found a list"),
        format!("{scheduler}: scheduler.0.runtime: required key missing"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(err.problems().len(), 4, "{text}");
}

#[test]
fn yaml_and_merge_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "a.yaml", "jobs: [not, a, mapping]\n");
    write(d, "b.yaml", "jobs: {x: {template: t}}\n");
    let err = config::load_dir(d).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: jobs: a mapping in this file but a list",
            d.join("b.yaml").display()
        )),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "broken.yaml", "jobs:\n  x: [1, 2\n");
    let err = config::load_dir(d).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:", d.join("broken.yaml").display())),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "list.yaml", "- a\n- b\n");
    let err = config::load_dir(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("list.yaml: top level: expected a mapping, found a list"),
        "{err}"
    );

    let err = config::load_dir(&tmp.path().join("missing")).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
}

#[test]
fn job_schema_table() {
    let table: &[(&str, &str)] = &[
        (
            "jobs: {j: {template: t, extra: 1}}",
            "bad.yaml: jobs.j.extra: unknown key",
        ),
        (
            "jobs: {j: {kind: job}}",
            "jobs.j.template: required key missing",
        ),
        (
            "jobs: {j: {template: 5}}",
            "jobs.j.template: expected a string, found a number",
        ),
        (
            "jobs: {j: {template: t, params: [1]}}",
            "jobs.j.params: expected a mapping, found a list",
        ),
        (
            "jobs: {j: {template: t, rules: [x]}}",
            "jobs.j.rules: expected a mapping, found a list",
        ),
        (
            "jobs: {j: {template: t, priority: urgent}}",
            "jobs.j.priority: expected low, medium, high or 0..100",
        ),
        (
            "jobs: {j: {template: t, priority: 101}}",
            "jobs.j.priority: expected a number from 0 to 100",
        ),
        ("jobs: {j: 3}", "jobs.j: expected a mapping, found a number"),
        ("jobs: [a]", "jobs: expected a mapping, found a list"),
        (
            "scheduler: {a: 1}",
            "scheduler: expected a list, found a mapping",
        ),
        (
            "scheduler: [{job: j, event: 1, runtime: {name: r}}]",
            "scheduler.0.event: expected a mapping",
        ),
        (
            "scheduler: [{job: j, event: {}, runtime: {name: 3}}]",
            "scheduler.0.runtime.name: expected a string",
        ),
        (
            "scheduler: [{job: j, event: {}, runtime: {}, platforms: [1]}]",
            "scheduler.0.platforms.0: expected a string",
        ),
        (
            "runtimes: {r: {url: x}}",
            "runtimes.r.lab_type: required key missing",
        ),
        (
            "api: {a: {url: u, timeout: soon}}",
            "api.a.timeout: expected a number of seconds",
        ),
        (
            "platforms: {p: {dtb: 3}}",
            "platforms.p.dtb: expected a string or a list of strings",
        ),
        (
            "fragments: {f: {configs: [CONFIG_X=y]}}",
            "fragments.f.path: required key missing",
        ),
        (
            "build_configs: {b: {tree: t}}",
            "build_configs.b.branch: required key missing",
        ),
        ("trees: {t: {}}", "trees.t.url: required key missing"),
        (
            "storage: {s: {base_url: u}}",
            "storage.s.storage_type: required key missing",
        ),
    ];
    for (text, expected) in table {
        let problems = invalid(text);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{text}: expected {expected:?} in {problems:?}"
        );
    }
}

#[test]
fn typed_values_and_defaults() {
    let cfg = PipelineConfig::from_yaml_str(
        r#"
_anchors:
  base: &base {template: baseline.jinja2, kind: job, params: {a: 1}}
api:
  prod: {url: 'https://api.example'}
jobs:
  baseline: {<<: *base, priority: high, kcidb_test_suite: boot}
  other: {<<: *base, params: {b: 2}, priority: 40}
platforms:
  docker:
  rpi4: {arch: arm64, dtb: dtbs/a.dtb, compatible: [a, b], context: {x: 1}}
  multi: {dtb: [a.dtb, b.dtb], custom: 1}
"#,
        "inline.yaml",
    )
    .unwrap();
    assert_eq!(cfg.api["prod"].version, "latest");
    assert_eq!(cfg.api["prod"].timeout, 60);
    let b = &cfg.jobs["baseline"];
    assert_eq!(
        (b.template.as_str(), b.kind.as_str()),
        ("baseline.jinja2", "job")
    );
    assert_eq!(b.priority, Some(Priority::High));
    assert_eq!(b.priority.map(Priority::value), Some(100));
    // shallow merge: explicit params replace the merged ones
    assert_eq!(
        cfg.jobs["other"].params,
        json!({"b": 2}).as_object().unwrap().clone()
    );
    assert_eq!(cfg.jobs["other"].priority, Some(Priority::Number(40)));
    let docker = &cfg.platforms["docker"];
    assert_eq!(
        (
            docker.arch.as_str(),
            docker.boot_method.as_str(),
            docker.mach.as_str()
        ),
        ("x86_64", "grub", "x86")
    );
    assert_eq!(
        cfg.platforms["rpi4"].dtb,
        Some(Dtb::One("dtbs/a.dtb".into()))
    );
    assert_eq!(
        cfg.platforms["multi"].dtb.as_ref().unwrap().paths(),
        ["a.dtb", "b.dtb"]
    );
    assert_eq!(cfg.platforms["multi"].extra["custom"], 1);
    let warnings: Vec<String> = cfg.validate().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["inline.yaml: platforms.multi.custom: unknown platform key (kept in `extra`)"]
    );
}

#[test]
fn cross_references_are_warnings() {
    let cfg = PipelineConfig::from_yaml_str(
        r#"
runtimes:
  k8s: {lab_type: kubernetes, rules: {tree: android}}
jobs:
  kbuild: {template: kbuild.jinja2, kind: kbuild,
           params: {fragments: [lab-setup, missing-frag, CONFIG_X=y, 'cros://a/b'],
                    frequency: 30s, rootfs_ref: nope}}
fragments:
  lab-setup: {path: lab-setup.config}
platforms:
  kubernetes:
scheduler:
  - {job: kbuild, event: {channel: node, kind: checkout, state: available}, runtime: {name: k8s},
     platforms: [kubernetes]}
  - {job: ghost, event: {channel: node, kind: checkout}, runtime: {name: lava-x}, platforms: [rpi9]}
  - {job: kbuild, event: {channel: node, kind: checkout, state: available}, runtime: {type: lava}}
  - {job: kbuild, event: {channel: node, kind: checkout, state: available}, runtime: {}, when: now}
"#,
        "x.yaml",
    )
    .unwrap();
    let warnings: Vec<String> = cfg.validate().iter().map(ToString::to_string).collect();
    let expected = [
        "x.yaml: scheduler.3.when: unknown key (ignored)",
        "x.yaml: scheduler.0.platforms: kbuild entries must not list platforms",
        "x.yaml: scheduler.1.job: unknown job `ghost`",
        "x.yaml: scheduler.1.event: missing `state`",
        "x.yaml: scheduler.1.runtime.name: unknown runtime `lava-x`",
        "x.yaml: scheduler.1.platforms.0: unknown platform `rpi9`",
        "x.yaml: scheduler.2.runtime.type: no runtime has lab_type `lava`",
        "x.yaml: scheduler.3.runtime: neither `name` nor `type` given",
        "x.yaml: jobs.kbuild.params.fragments.1: unknown fragment `missing-frag`",
        "x.yaml: jobs.kbuild.params.frequency: `\"30s\"` is not a frequency of a minute or more ([Nd][Nh][Nm]); ignored",
        "x.yaml: jobs.kbuild.params.rootfs_ref: unknown rootfs `nope`",
        "x.yaml: runtimes.k8s.rules.tree: a single string is read as a one-item list",
    ];
    assert_eq!(warnings, expected);
}

#[test]
fn from_value_without_origins() {
    let err = PipelineConfig::from_value(&json!({"jobs": {"j": {}}})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration:\n<config>: jobs.j.template: required key missing"
    );
    assert!(
        PipelineConfig::from_value(&json!(null))
            .unwrap()
            .jobs
            .is_empty()
    );
    let err = PipelineConfig::from_value(&json!([1])).unwrap_err();
    assert!(
        err.to_string().contains("top level: expected a mapping"),
        "{err}"
    );
}

#[test]
fn tree_bisect_policy() {
    let cfg = PipelineConfig::from_yaml_str(
        "trees:\n  a: {url: 'https://x/a.git', bisect: true}\n  b: {url: 'https://x/b.git', bisect: {repeat: 5}}\n  c: {url: 'https://x/c.git'}\n  d: {url: 'https://x/d.git', bisect: false}\n",
        "t.yaml",
    )
    .unwrap();
    let repeat = |t: &str| cfg.trees[t].bisect.map(|b| b.repeat);
    assert_eq!(
        (repeat("a"), repeat("b"), repeat("c"), repeat("d")),
        (Some(3), Some(5), None, None)
    );
    let problems = invalid("trees:\n  a: {url: 'https://x/a.git', bisect: {repeat: 0}}\n");
    assert!(
        problems[0].contains("trees.a.bisect.repeat: expected a number from 1 to 10"),
        "{problems:?}"
    );
    let problems = invalid("trees:\n  a: {url: 'https://x/a.git', bisect: yes-please}\n");
    assert!(
        problems[0].contains("trees.a.bisect: expected true, false or {repeat: N}"),
        "{problems:?}"
    );
}
