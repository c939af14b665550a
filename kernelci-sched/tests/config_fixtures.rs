//! Data-driven test over the upstream kernelci-pipeline configuration fixtures
//! (`shared/fixtures/pipeline-config`): every YAML file loads to exactly PyYAML's data, the
//! whole folder merges to `all-files.merged.json`, and it types without error.
//!
//! Without the fixtures folder the tests skip with a message, unless `CI` is set: then they
//! fail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use kernelci_sched::config::{self, PipelineConfig};
use kernelci_sched::yaml;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/pipeline-config");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("fixtures folder {} is missing (CI is set)", dir.display());
    }
    eprintln!(
        "SKIPPED: fixtures folder {} is missing (set CI to make this a failure)",
        dir.display()
    );
    None
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// First differing location between two values, for readable failures.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    None => return Some(format!("{path}.{k}: only in ours")),
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k}: only in expected"))
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(format!("{path}: {} items vs {} expected", x.len(), y.len()));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (v, w))| first_difference(v, w, &format!("{path}.{i}")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs expected {b}")),
    }
}

#[test]
fn every_yaml_file_loads_to_its_resolved_json() {
    let Some(dir) = fixtures() else { return };
    let files = config::yaml_files(&dir).unwrap();
    assert_eq!(files.len(), 64, "all upstream YAML files are found");
    let mut key_order_same = 0;
    for file in &files {
        let ours = yaml::from_path(file).unwrap_or_else(|e| panic!("{e}"));
        let expected = read_json(&file.with_extension("resolved.json"));
        if let Some(diff) = first_difference(&ours, &expected, "") {
            panic!("{}: differs from PyYAML at {diff}", file.display());
        }
        assert_eq!(ours, expected, "{}", file.display());
        // PyYAML's key order too (merged keys first).
        if serde_json::to_string(&ours).unwrap() == serde_json::to_string(&expected).unwrap() {
            key_order_same += 1;
        } else {
            panic!("{}: same data but not PyYAML's key order", file.display());
        }
        // The apply_merge loop of the rust-ecosystem spec gives the same data.
        let text = std::fs::read_to_string(file).unwrap();
        let looped = yaml::from_str_apply_merge_loop(&text, &file.display().to_string()).unwrap();
        assert_eq!(looped, expected, "{} (apply_merge loop)", file.display());
    }
    assert_eq!(key_order_same, files.len());
}

#[test]
fn folder_merges_to_all_files_merged_json() {
    let Some(dir) = fixtures() else { return };
    let expected = read_json(&dir.join("all-files.merged.json"));
    let order: Vec<String> = config::yaml_files(&dir)
        .unwrap()
        .iter()
        .map(|p| {
            p.strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    let expected_order: Vec<String> =
        serde_json::from_value(expected["files_in_order"].clone()).unwrap();
    assert_eq!(order, expected_order);

    let merged = config::load_dir(&dir).unwrap();
    if let Some(diff) = first_difference(&merged, &expected["config"], "") {
        panic!("merged config differs at {diff}");
    }
    assert_eq!(merged, expected["config"]);

    // load_files with the same list gives the same data.
    let files = config::yaml_files(&dir).unwrap();
    assert_eq!(config::load_files(&files).unwrap(), merged);
}

#[test]
fn folder_types_into_pipeline_config() {
    let Some(dir) = fixtures() else { return };
    let cfg = PipelineConfig::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.api.len(), 4);
    assert_eq!(cfg.storage.len(), 5);
    assert_eq!(cfg.runtimes.len(), 17);
    assert_eq!(cfg.trees.len(), 50);
    assert_eq!(cfg.build_configs.len(), 126);
    assert_eq!(cfg.jobs.len(), 441);
    assert_eq!(cfg.platforms.len(), 135);
    assert_eq!(cfg.scheduler.len(), 599);
    assert_eq!(cfg.fragments.len(), 23);
    assert_eq!(cfg.rootfs.len(), 16);

    let job = &cfg.jobs["kbuild-gcc-14-arm64"];
    assert_eq!(job.kind, "kbuild");
    assert_eq!(job.template, "kbuild.jinja2");
    assert_eq!(job.params["arch"], "arm64");
    let docker = &cfg.platforms["docker"];
    assert_eq!(
        (docker.arch.as_str(), docker.boot_method.as_str()),
        ("x86_64", "grub")
    );
    assert_eq!(docker.mach, "x86");
    assert_eq!(cfg.runtimes["k8s-all"].lab_type, "kubernetes");
    assert!(cfg.runtimes["lava-collabora"].fields.contains_key("url"));

    // Errors and warnings name the file of the entry.
    assert_eq!(
        cfg.file_of(&["jobs", "kbuild-gcc-14-arm64"]),
        Some(dir.join("jobs.yaml").as_path())
    );
    assert_eq!(
        cfg.file_of(&["build_configs", "mainline"]),
        Some(dir.join("trees/mainline.yaml").as_path())
    );
    assert_eq!(
        cfg.file_of(&["scheduler", "0"]),
        Some(dir.join("scheduler-chromeos.yaml").as_path())
    );
    assert_eq!(
        cfg.file_of(&["scheduler", "598"]),
        Some(dir.join("scheduler.yaml").as_path())
    );

    let warnings = cfg.validate();
    for w in &warnings {
        eprintln!("warning: {w}");
        assert!(w.file.is_some(), "warning without a file: {w}");
    }
    eprintln!("{} warnings", warnings.len());
}
