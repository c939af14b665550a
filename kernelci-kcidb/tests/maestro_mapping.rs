//! Maestro node -> KCIDB mapping (specs/pipeline.md §7) over realistic node documents.

use std::collections::HashMap;

use kernelci_kcidb::maestro::{
    self, JobKind, LOG_EXCERPT_MAX_CHARS, Mapped, MappingConfig, index_nodes, log_url, map_node,
    should_defer_for_retry, submission, test_path,
};
use serde_json::{Value, json};

/// A test node's result and error code, the baseline job's error code, the expected status.
type StatusCase<'a> = (Value, Option<&'a str>, Option<&'a str>, Option<&'a str>);

const CHECKOUT: &str = "6740b1f1c0ffee0000c0c001";
const PATCHSET: &str = "6740b1f1c0ffee0000c0a7c4";
const KBUILD: &str = "6740b1f1c0ffee0000b01d01";
const PS_KBUILD: &str = "6740b1f1c0ffee0000b01d02";
const BASELINE_JOB: &str = "6740b1f1c0ffee00000j0b01";
const BASELINE_SUB: &str = "6740b1f1c0ffee00000j0b02";
const SETUP_SUB: &str = "6740b1f1c0ffee00000j0b03";
const CASE: &str = "6740b1f1c0ffee0000te5701";
const LOGIN: &str = "6740b1f1c0ffee0000te5702";
const OS_RELEASE: &str = "6740b1f1c0ffee0000te5703";
const KUNIT_JOB: &str = "6740b1f1c0ffee00000j0b11";
const KUNIT_CASE: &str = "6740b1f1c0ffee0000te5711";
const PS_KUNIT_JOB: &str = "6740b1f1c0ffee00000j0b21";

const COMMIT: &str = "4a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
const PATCHSET_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const STORAGE: &str = "https://files.kernelci.org";

fn kernel_revision() -> Value {
    json!({
        "tree": "mainline",
        "url": "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
        "branch": "master",
        "commit": COMMIT,
        "describe": "v6.18-rc7-42-g4a1b2c3d4e5f",
        "version": {"version": 6, "patchlevel": 18, "extra": "-rc7-42-g4a1b2c3d4e5f"},
        "commit_tags": [],
        "commit_message": "Merge tag 'net-6.18-rc8' of git://git.kernel.org/pub/scm/linux/kernel/git/netdev/net",
        "tip_of_branch": true,
        "patchset": null
    })
}

fn node(id: &str, kind: &str, name: &str, parent: Option<&str>, path: &[&str]) -> Value {
    json!({
        "id": id,
        "kind": kind,
        "name": name,
        "path": path,
        "group": name,
        "parent": parent,
        "state": "done",
        "result": "pass",
        "artifacts": null,
        "data": {"kernel_revision": kernel_revision()},
        "debug": null,
        "jobfilter": null,
        "platform_filter": [],
        "created": "2026-11-28T10:47:29.123000",
        "updated": "2026-11-28T11:02:03.000000",
        "timeout": "2026-11-28T16:47:29.123000",
        "holdoff": null,
        "owner": "production",
        "submitter": "service:pipeline",
        "treeid": "0a1b2c3d",
        "user_groups": [],
        "processed_by_kcidb_bridge": false,
        "retry_counter": 0
    })
}

/// Deep-merges `patch` into `base` (objects member-wise; `null` removes a member).
fn with(mut base: Value, patch: Value) -> Value {
    merge(&mut base, patch);
    base
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else if let Some(slot) = b.get_mut(&k) {
                    merge(slot, v);
                } else {
                    b.insert(k, v);
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn checkout() -> Value {
    with(
        node(CHECKOUT, "checkout", "checkout", None, &["checkout"]),
        json!({"artifacts": {"tarball": format!("{STORAGE}/linux-mainline-master-v6.18-rc7-42.tar.gz")}}),
    )
}

fn patchset() -> Value {
    with(
        node(
            PATCHSET,
            "checkout",
            "patchset",
            Some(CHECKOUT),
            &["checkout", "patchset"],
        ),
        json!({
            "data": {"kernel_revision": {"patchset": PATCHSET_HASH}},
            "artifacts": {"patch0": format!("{STORAGE}/patchset/alice/0.patch")}
        }),
    )
}

fn kbuild() -> Value {
    with(
        node(
            KBUILD,
            "kbuild",
            "kbuild-gcc-14-arm64",
            Some(CHECKOUT),
            &["checkout", "kbuild-gcc-14-arm64"],
        ),
        json!({
            "data": {
                "arch": "arm64",
                "compiler": "gcc-14",
                "defconfig": "defconfig",
                "config_full": "defconfig+arm64-chromebook",
                "platform": "kubernetes",
                "runtime": "k8s-gke-eu-west4",
                "job_id": "kci-6740b1f1c0ffee0000b01d01-kbuild-gcc-14-arm64-x1z2",
                "job_context": "gke_android-kernelci-external_europe-west4-c_kci-eu-west4",
                "kernel_type": "image",
                "error_code": null,
                "error_msg": null
            },
            "artifacts": {
                "build_log": format!("{STORAGE}/kbuild-gcc-14-arm64-{KBUILD}/build.log.gz"),
                "_config": format!("{STORAGE}/kbuild-gcc-14-arm64-{KBUILD}/.config"),
                "kernel": format!("{STORAGE}/kbuild-gcc-14-arm64-{KBUILD}/Image"),
                "modules": format!("{STORAGE}/kbuild-gcc-14-arm64-{KBUILD}/modules.tar.xz"),
                "dtbs/rockchip/rk3399-gru-kevin.dtb":
                    format!("{STORAGE}/kbuild-gcc-14-arm64-{KBUILD}/dtbs/rockchip/rk3399-gru-kevin.dtb")
            }
        }),
    )
}

fn baseline_job() -> Value {
    with(
        node(
            BASELINE_JOB,
            "job",
            "baseline-arm64",
            Some(KBUILD),
            &["checkout", "kbuild-gcc-14-arm64", "baseline-arm64"],
        ),
        json!({
            "data": {
                "arch": "arm64",
                "compiler": "gcc-14",
                "platform": "rk3399-gru-kevin",
                "runtime": "lava-collabora",
                "job_id": "20512377",
                "kernel_type": "image",
                "test_source": null
            },
            "artifacts": {
                "lava_log": format!("{STORAGE}/baseline-arm64-{BASELINE_JOB}/log.txt.gz"),
                "callback_data": format!("{STORAGE}/baseline-arm64-{BASELINE_JOB}/lava_callback.json.gz")
            }
        }),
    )
}

/// A node under the baseline job, without job id or artifacts of its own.
fn lava_child(id: &str, kind: &str, name: &str, parent: &str, path: &[&str]) -> Value {
    with(
        node(id, kind, name, Some(parent), path),
        json!({"data": {
            "arch": "arm64",
            "compiler": "gcc-14",
            "platform": "rk3399-gru-kevin",
            "runtime": "lava-collabora",
            "kernel_type": "image"
        }}),
    )
}

fn baseline_sub() -> Value {
    lava_child(
        BASELINE_SUB,
        "job",
        "baseline",
        BASELINE_JOB,
        &[
            "checkout",
            "kbuild-gcc-14-arm64",
            "baseline-arm64",
            "baseline",
        ],
    )
}

fn setup_sub() -> Value {
    lava_child(
        SETUP_SUB,
        "job",
        "setup",
        BASELINE_JOB,
        &["checkout", "kbuild-gcc-14-arm64", "baseline-arm64", "setup"],
    )
}

fn case() -> Value {
    lava_child(
        CASE,
        "test",
        "dmesg-emerg",
        BASELINE_SUB,
        &[
            "checkout",
            "kbuild-gcc-14-arm64",
            "baseline-arm64",
            "baseline",
            "dmesg-emerg",
        ],
    )
}

fn login() -> Value {
    lava_child(
        LOGIN,
        "test",
        "login",
        SETUP_SUB,
        &[
            "checkout",
            "kbuild-gcc-14-arm64",
            "baseline-arm64",
            "setup",
            "login",
        ],
    )
}

fn os_release() -> Value {
    lava_child(
        OS_RELEASE,
        "test",
        "os-release",
        SETUP_SUB,
        &[
            "checkout",
            "kbuild-gcc-14-arm64",
            "baseline-arm64",
            "setup",
            "os-release",
        ],
    )
}

fn kunit_job() -> Value {
    with(
        node(
            KUNIT_JOB,
            "job",
            "kunit-x86_64",
            Some(CHECKOUT),
            &["checkout", "kunit-x86_64"],
        ),
        json!({
            "data": {
                "arch": "x86_64",
                "platform": "kubernetes",
                "runtime": "k8s-gke-eu-west4",
                "job_id": "kci-6740b1f1c0ffee00000j0b11-kunit-x86-64-abcd"
            },
            "artifacts": {
                "test_log": format!("{STORAGE}/kunit-x86_64-{KUNIT_JOB}/test_log"),
                "results.json": format!("{STORAGE}/kunit-x86_64-{KUNIT_JOB}/results_json")
            }
        }),
    )
}

fn kunit_case() -> Value {
    with(
        node(
            KUNIT_CASE,
            "test",
            "exec",
            Some(KUNIT_JOB),
            &["checkout", "kunit-x86_64", "exec"],
        ),
        json!({"data": {"arch": "x86_64", "platform": "kubernetes", "runtime": "k8s-gke-eu-west4"}}),
    )
}

fn tree() -> HashMap<String, Value> {
    index_nodes([
        checkout(),
        patchset(),
        kbuild(),
        baseline_job(),
        baseline_sub(),
        setup_sub(),
        case(),
        login(),
        os_release(),
        kunit_job(),
        kunit_case(),
    ])
}

fn cfg() -> MappingConfig {
    let test = |suite: &str| JobKind::Test {
        kcidb_test_suite: Some(suite.to_owned()),
    };
    let mut cfg = MappingConfig::new("maestro");
    cfg.viewer_base_url = Some("https://api.kernelci.org/".to_owned());
    cfg.jobs = HashMap::from([
        ("kbuild-gcc-14-arm64".to_owned(), JobKind::Kbuild),
        ("baseline-arm64".to_owned(), test("boot")),
        ("kunit-x86_64".to_owned(), test("kunit")),
        ("tast-ui-x86-intel".to_owned(), test("tast")),
        ("sleep".to_owned(), test("sleep")),
        (
            "cvehound".to_owned(),
            JobKind::Test {
                kcidb_test_suite: None,
            },
        ),
    ]);
    cfg.lab_runtimes = HashMap::from([
        (
            "lava-collabora".to_owned(),
            Some("https://lava.collabora.dev".to_owned()),
        ),
        ("pull-labs-demo".to_owned(), None),
    ]);
    cfg.platform_compatible = HashMap::from([
        (
            "rk3399-gru-kevin".to_owned(),
            vec![
                "google,kevin-rev15".to_owned(),
                "rockchip,rk3399".to_owned(),
            ],
        ),
        ("kubernetes".to_owned(), vec![]),
    ]);
    cfg
}

fn map(node: &Value) -> Mapped {
    map_node(node, &tree(), &cfg(), None)
}

fn checkout_of(mapped: Mapped) -> Value {
    match mapped {
        Mapped::Checkout(c) => c,
        other => panic!("expected a checkout, got {other:?}"),
    }
}

fn build_of(mapped: Mapped) -> Value {
    match mapped {
        Mapped::Build(b) => b,
        other => panic!("expected a build, got {other:?}"),
    }
}

fn test_of(mapped: Mapped) -> (Value, Option<Value>) {
    match mapped {
        Mapped::Test { test, dummy_build } => (test, dummy_build),
        other => panic!("expected a test, got {other:?}"),
    }
}

fn skip_reason(mapped: Mapped) -> String {
    match mapped {
        Mapped::Skip { reason } => reason,
        other => panic!("expected a skip, got {other:?}"),
    }
}

/// The submission of these objects, asserting that our validator accepts it.
fn valid_submission(objects: Vec<Mapped>) -> Value {
    let doc = submission(objects);
    let bytes = serde_json::to_vec(&doc).expect("a JSON value serializes");
    if let Err(e) = kernelci_kcidb::load(&bytes) {
        panic!("invalid submission: {e}\n{doc:#}");
    }
    doc
}

// --- checkouts ----------------------------------------------------------------------------

#[test]
fn plain_checkout() {
    let c = checkout_of(map(&checkout()));
    assert_eq!(
        c,
        json!({
            "id": format!("maestro:{CHECKOUT}"),
            "origin": "maestro",
            "tree_name": "mainline",
            "git_repository_url": "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
            "git_commit_hash": COMMIT,
            "git_commit_name": "v6.18-rc7-42-g4a1b2c3d4e5f",
            "git_repository_branch": "master",
            "git_commit_tags": [],
            "git_commit_message": "Merge tag 'net-6.18-rc8' of git://git.kernel.org/pub/scm/linux/kernel/git/netdev/net",
            "git_repository_branch_tip": true,
            "start_time": "2026-11-28T10:47:29.123000+00:00",
            "patchset_hash": "",
            "misc": {"submitted_by": "kernelci-pipeline"},
            "valid": true
        })
    );
    valid_submission(vec![Mapped::Checkout(c)]);
}

#[test]
fn checkout_validity_by_result() {
    for (result, valid) in [
        (json!("pass"), Some(true)),
        (json!("fail"), Some(false)),
        (json!("incomplete"), Some(false)),
        (Value::Null, None),
    ] {
        let mut node = checkout();
        node["result"] = result.clone();
        let c = checkout_of(map(&node));
        assert_eq!(c.get("valid").and_then(Value::as_bool), valid, "{result}");
    }
}

#[test]
fn patchset_checkout_has_its_hash() {
    let c = checkout_of(map(&patchset()));
    assert_eq!(c["id"], format!("maestro:{PATCHSET}"));
    assert_eq!(c["patchset_hash"], PATCHSET_HASH);
    assert_eq!(c["git_commit_hash"], COMMIT);
    valid_submission(vec![Mapped::Checkout(c)]);
}

#[test]
fn timed_out_checkout_is_skipped_other_incomplete_is_not() {
    let timed_out = with(
        checkout(),
        json!({"result": "incomplete",
               "data": {"error_code": "node_timeout", "error_msg": "Node timed-out"}}),
    );
    assert!(skip_reason(map(&timed_out)).contains("timed out"));

    let failed = with(
        checkout(),
        json!({"result": "incomplete", "data": {"error_code": "git_checkout_failure"}}),
    );
    assert_eq!(checkout_of(map(&failed))["valid"], false);
}

#[test]
fn checkout_without_kernel_revision_is_skipped() {
    let bare = with(checkout(), json!({"data": {"kernel_revision": null}}));
    assert!(skip_reason(map(&bare)).contains("kernel_revision"));
}

#[test]
fn invalid_object_is_skipped_with_the_problems() {
    let bad = with(
        checkout(),
        json!({"data": {"kernel_revision": {"commit": "HEAD"}}}),
    );
    let reason = skip_reason(map(&bad));
    assert!(reason.contains(&format!("maestro:{CHECKOUT}")), "{reason}");
    assert!(reason.contains("/checkouts/0/git_commit_hash"), "{reason}");
}

// --- builds -------------------------------------------------------------------------------

#[test]
fn kbuild_fields() {
    let log = "make -j8 Image\n  CC  init/main.o\n";
    let b = build_of(map_node(&kbuild(), &tree(), &cfg(), Some(log)));
    let dir = format!("{STORAGE}/kbuild-gcc-14-arm64-{KBUILD}");
    assert_eq!(
        b,
        json!({
            "id": format!("maestro:{KBUILD}"),
            "origin": "maestro",
            "checkout_id": format!("maestro:{CHECKOUT}"),
            "comment": "v6.18-rc7-42-g4a1b2c3d4e5f",
            "start_time": "2026-11-28T10:47:29.123000+00:00",
            "architecture": "arm64",
            "compiler": "gcc-14",
            "config_name": "defconfig+arm64-chromebook",
            "status": "PASS",
            "misc": {
                "platform": "kubernetes",
                "runtime": "k8s-gke-eu-west4",
                "job_id": "kci-6740b1f1c0ffee0000b01d01-kbuild-gcc-14-arm64-x1z2",
                "job_context": "gke_android-kernelci-external_europe-west4-c_kci-eu-west4",
                "kernel_type": "image",
                "maestro_viewer": format!("https://api.kernelci.org/viewer?node_id={KBUILD}")
            },
            "output_files": [
                {"name": "kernel", "url": format!("{dir}/Image")},
                {"name": "modules", "url": format!("{dir}/modules.tar.xz")},
                {"name": "dtbs_rockchip_rk3399-gru-kevin.dtb",
                 "url": format!("{dir}/dtbs/rockchip/rk3399-gru-kevin.dtb")}
            ],
            "config_url": format!("{dir}/.config"),
            "log_url": format!("{dir}/build.log.gz"),
            "log_excerpt": log
        })
    );
    assert_eq!(
        log_url(&kbuild(), &tree()),
        Some(format!("{dir}/build.log.gz"))
    );
    valid_submission(vec![Mapped::Build(b)]);
}

#[test]
fn kbuild_status_table() {
    let cases: [(Value, Value, Option<&str>); 9] = [
        (json!("pass"), Value::Null, Some("PASS")),
        (json!("fail"), Value::Null, Some("FAIL")),
        (json!("incomplete"), Value::Null, Some("ERROR")),
        (json!("incomplete"), json!("node_timeout"), Some("MISS")),
        (json!("fail"), json!("kbuild_internal_error"), Some("ERROR")),
        (json!("pass"), json!("Infrastructure"), Some("ERROR")),
        (json!("incomplete"), json!("submit_error"), Some("ERROR")),
        (Value::Null, Value::Null, None),
        (Value::Null, json!("node_timeout"), None),
    ];
    for (result, error_code, expected) in cases {
        let node = with(
            kbuild(),
            json!({"result": result, "data": {"error_code": error_code, "error_msg": "boom"}}),
        );
        let b = build_of(map(&node));
        assert_eq!(
            b.get("status").and_then(Value::as_str),
            expected,
            "{result} {error_code}"
        );
        assert_eq!(
            b["misc"].get("error_code"),
            error_code.as_str().map(|c| json!(c)).as_ref()
        );
        valid_submission(vec![Mapped::Build(b)]);
    }
    // A build the pipeline expected but never ran (reported when its checkout settled).
    let missing = with(
        kbuild(),
        json!({"result": "incomplete", "data": {"error_code": "submit_error", "missing": true}}),
    );
    assert_eq!(build_of(map(&missing))["status"], "MISS");
}

#[test]
fn kbuild_lab_and_config_fallbacks() {
    // A build run in a lab runtime names the lab; defconfig is used without config_full.
    let node = with(
        kbuild(),
        json!({"data": {"runtime": "pull-labs-demo", "config_full": null}, "artifacts": null}),
    );
    let b = build_of(map_node(
        &node,
        &tree(),
        &cfg(),
        Some("ignored: no log_url"),
    ));
    assert_eq!(b["misc"]["lab"], "pull-labs-demo");
    assert_eq!(b["config_name"], "defconfig");
    for key in ["output_files", "log_url", "log_excerpt", "config_url"] {
        assert!(b.get(key).is_none(), "{key}");
    }
    assert!(build_of(map(&kbuild()))["misc"].get("lab").is_none());
}

#[test]
fn kbuild_without_parent_is_skipped() {
    let orphan = with(kbuild(), json!({"parent": null}));
    assert!(skip_reason(map(&orphan)).contains("no parent"));
}

#[test]
fn no_viewer_link_without_a_base_url() {
    let mut cfg = cfg();
    cfg.viewer_base_url = None;
    let b = build_of(map_node(&kbuild(), &tree(), &cfg, None));
    assert!(b["misc"].get("maestro_viewer").is_none());
    let (t, _) = test_of(map_node(&case(), &tree(), &cfg, None));
    assert!(t["misc"].get("maestro_viewer").is_none());
}

// --- test paths ---------------------------------------------------------------------------

fn strings(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| s.to_string()).collect()
}

#[test]
fn test_path_table() {
    let cfg = cfg();
    let ok: &[(&[&str], usize, &str)] = &[
        (
            &[
                "checkout",
                "kbuild-gcc-14-arm64",
                "baseline-arm64",
                "baseline",
                "dmesg",
            ],
            2,
            "boot.baseline.dmesg",
        ),
        (
            &["checkout", "kbuild-gcc-14-arm64", "baseline-arm64"],
            2,
            "boot",
        ),
        // Duplicated leading pair collapsed before the job mapping ...
        (
            &["checkout", "kbuild-gcc-14-arm64", "sleep", "sleep"],
            2,
            "sleep",
        ),
        // ... and after it (`tast-ui-x86-intel` -> `tast`, then `tast.tast`).
        (
            &[
                "checkout",
                "kbuild-gcc-14-arm64",
                "tast-ui-x86-intel",
                "tast",
                "os-release",
            ],
            2,
            "tast.os-release",
        ),
        // setup paths are dropped, except os-release.
        (
            &[
                "checkout",
                "kbuild-gcc-14-arm64",
                "baseline-arm64",
                "setup",
                "os-release",
            ],
            2,
            "boot.setup.os-release",
        ),
        // Off a checkout: only `checkout` is dropped.
        (
            &["checkout", "kunit-x86_64", "exec", "exec_test"],
            1,
            "kunit.exec.exec_test",
        ),
        // Kbuild job names are dropped wherever they are (kbuild under a patchset).
        (
            &[
                "checkout",
                "patchset",
                "kbuild-gcc-14-arm64",
                "baseline-arm64",
                "login",
            ],
            2,
            "boot.login",
        ),
        // Characters outside [.a-zA-Z0-9_-] become `_`; dots split, empty elements vanish.
        (
            &[
                "checkout",
                "kbuild-gcc-14-arm64",
                "baseline-arm64",
                "dmesg crit/émerg",
                "a..b.",
            ],
            2,
            "boot.dmesg_crit__merg.a.b",
        ),
        (
            &["checkout", "kunit-x86_64", ".lead", "nul\0x"],
            1,
            "kunit.lead.nulx",
        ),
        (&["checkout", "kbuild-gcc-14-arm64", "...", "!"], 2, "_"),
        // A `setup` inside a name is not the setup job (upstream dropped it).
        (
            &[
                "checkout",
                "kbuild-gcc-14-arm64",
                "baseline-arm64",
                "net",
                "setup_veth",
            ],
            2,
            "boot.net.setup_veth",
        ),
    ];
    for (path, prefix, expected) in ok {
        assert_eq!(
            test_path(&strings(path), *prefix, &cfg).as_deref(),
            Ok(*expected),
            "{path:?}"
        );
    }

    let refused: &[(&[&str], usize, &str)] = &[
        (
            &[
                "checkout",
                "kbuild-gcc-14-arm64",
                "baseline-arm64",
                "setup",
                "login",
            ],
            2,
            "setup",
        ),
        (
            &["checkout", "cvehound", "cve-2024-1"],
            1,
            "kcidb_test_suite",
        ),
        (&["checkout", "kbuild-gcc-14-arm64"], 2, "empty"),
        (&["checkout"], 2, "empty"),
        (
            &["checkout", "kbuild-gcc-14-arm64", "kbuild-gcc-14-arm64"],
            1,
            "empty",
        ),
    ];
    for (path, prefix, why) in refused {
        let err = test_path(&strings(path), *prefix, &cfg).unwrap_err();
        assert!(err.contains(why), "{path:?}: {err}");
    }
}

#[test]
fn setup_tests_are_not_sent_but_os_release_is() {
    assert!(skip_reason(map(&login())).contains("setup"));
    let (t, _) = test_of(map(&os_release()));
    assert_eq!(t["path"], "boot.setup.os-release");
}

#[test]
fn job_without_suite_is_skipped() {
    let hound = with(
        node(
            "6740b1f1c0ffee00000j0b31",
            "job",
            "cvehound",
            Some(CHECKOUT),
            &["checkout", "cvehound"],
        ),
        json!({"data": {"arch": "x86_64"}}),
    );
    assert!(skip_reason(map(&hound)).contains("cvehound has no kcidb_test_suite"));
}

#[test]
fn tests_under_a_patchset_do_not_start_with_patchset() {
    let ps_kbuild = with(
        kbuild(),
        json!({"id": PS_KBUILD, "parent": PATCHSET,
               "path": ["checkout", "patchset", "kbuild-gcc-14-arm64"]}),
    );
    let ps_kunit = with(
        kunit_job(),
        json!({"id": PS_KUNIT_JOB, "parent": PATCHSET,
               "path": ["checkout", "patchset", "kunit-x86_64"]}),
    );
    let ps_case = with(
        case(),
        json!({"parent": PS_KBUILD,
               "path": ["checkout", "patchset", "kbuild-gcc-14-arm64", "baseline-arm64", "x"]}),
    );
    let mut nodes = tree();
    nodes.extend(index_nodes([ps_kbuild.clone(), ps_kunit.clone()]));
    let (t, dummy) = test_of(map_node(&ps_kunit, &nodes, &cfg(), None));
    assert_eq!(t["path"], "kunit");
    let dummy = dummy.unwrap();
    assert_eq!(dummy["checkout_id"], format!("maestro:{PATCHSET}"));
    let (t, dummy) = test_of(map_node(&ps_case, &nodes, &cfg(), None));
    assert_eq!(t["path"], "boot.x");
    assert_eq!(t["build_id"], format!("maestro:{PS_KBUILD}"));
    assert!(dummy.is_none());
    assert_eq!(
        build_of(map_node(&ps_kbuild, &nodes, &cfg(), None))["checkout_id"],
        format!("maestro:{PATCHSET}")
    );
}

// --- tests --------------------------------------------------------------------------------

#[test]
fn baseline_case_fields() {
    let log = "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]\n";
    let (t, dummy) = test_of(map_node(&case(), &tree(), &cfg(), Some(log)));
    assert!(dummy.is_none());
    let dir = format!("{STORAGE}/baseline-arm64-{BASELINE_JOB}");
    assert_eq!(
        t,
        json!({
            "build_id": format!("maestro:{KBUILD}"),
            "id": format!("maestro:{CASE}"),
            "origin": "maestro",
            "comment": "dmesg-emerg on rk3399-gru-kevin in lava-collabora",
            "start_time": "2026-11-28T10:47:29.123000+00:00",
            "environment": {
                "comment": "Runtime: lava-collabora",
                "compatible": ["google,kevin-rev15", "rockchip,rk3399"],
                "misc": {
                    "platform": "rk3399-gru-kevin",
                    "job_id": "20512377",
                    "job_url": "https://lava.collabora.dev/scheduler/job/20512377"
                }
            },
            "path": "boot.baseline.dmesg-emerg",
            "status": "PASS",
            "misc": {
                "compiler": "gcc-14",
                "kernel_type": "image",
                "arch": "arm64",
                "runtime": "lava-collabora",
                "lab": "lava-collabora",
                "maestro_viewer": format!("https://api.kernelci.org/viewer?node_id={CASE}")
            },
            "output_files": [{"name": "callback_data", "url": format!("{dir}/lava_callback.json.gz")}],
            "log_url": format!("{dir}/log.txt.gz"),
            "log_excerpt": log
        })
    );
    assert_eq!(log_url(&case(), &tree()), Some(format!("{dir}/log.txt.gz")));
    valid_submission(vec![
        map(&checkout()),
        map(&kbuild()),
        Mapped::Test {
            test: t,
            dummy_build: None,
        },
    ]);
}

#[test]
fn test_status_table() {
    // (own result, own error_code, error_code of the baseline job, expected status)
    let cases: &[StatusCase] = &[
        (json!("pass"), None, None, Some("PASS")),
        (json!("fail"), None, None, Some("FAIL")),
        (json!("skip"), None, None, Some("SKIP")),
        (Value::Null, None, None, None),
        (Value::Null, None, Some("Infrastructure"), None),
        // Infrastructure, own or inherited, is ERROR whatever the result.
        (json!("fail"), None, Some("Infrastructure"), Some("ERROR")),
        (json!("pass"), None, Some("Infrastructure"), Some("ERROR")),
        (
            json!("incomplete"),
            Some("Infrastructure"),
            None,
            Some("ERROR"),
        ),
        // The nearest error code decides: an own code hides the job's.
        (
            json!("fail"),
            Some("Test"),
            Some("Infrastructure"),
            Some("FAIL"),
        ),
        // Inherited codes other than Infrastructure do not change the result.
        (json!("fail"), None, Some("Job"), Some("FAIL")),
        // Incomplete: the own code decides, unknown or missing -> no status.
        (json!("incomplete"), Some("node_timeout"), None, None),
        (json!("incomplete"), None, Some("LAVATimeout"), None),
        (json!("incomplete"), Some("something_new"), None, None),
    ];
    let mut all: Vec<StatusCase> = cases.to_vec();
    for code in maestro::ERROR_CODES {
        all.push((json!("incomplete"), Some(code), None, Some("ERROR")));
    }
    for code in maestro::MISS_CODES {
        all.push((json!("incomplete"), Some(code), None, Some("MISS")));
    }
    assert_eq!(maestro::ERROR_CODES.len() + maestro::MISS_CODES.len(), 15);
    for (result, own, inherited, expected) in all {
        let mut nodes = tree();
        nodes.insert(
            BASELINE_JOB.to_owned(),
            with(
                baseline_job(),
                json!({"data": {"error_code": inherited, "error_msg": "job error"}}),
            ),
        );
        let test = with(
            case(),
            json!({"result": result, "data": {"error_code": own, "error_msg": "own error"}}),
        );
        let (t, _) = test_of(map_node(&test, &nodes, &cfg(), None));
        assert_eq!(
            t.get("status").and_then(Value::as_str),
            expected,
            "{result} {own:?} {inherited:?}"
        );
        // Error metadata (own first, else inherited) for everything but pass and skip.
        let reported = t["misc"].get("error_code").and_then(Value::as_str);
        let want = match (result.as_str(), expected) {
            (Some("pass"), _) | (_, Some("SKIP")) => None,
            _ => own.or(inherited),
        };
        assert_eq!(reported, want, "{result} {own:?} {inherited:?}");
        valid_submission(vec![Mapped::Test {
            test: t,
            dummy_build: None,
        }]);
    }
}

#[test]
fn skipped_tests_carry_no_job_files_or_log() {
    let skipped = with(case(), json!({"result": "skip"}));
    let (t, _) = test_of(map_node(&skipped, &tree(), &cfg(), Some("log")));
    assert_eq!(t["status"], "SKIP");
    for key in ["output_files", "log_url", "log_excerpt"] {
        assert!(t.get(key).is_none(), "{key}");
    }
    assert!(t["environment"]["misc"].get("job_id").is_none());
    assert_eq!(log_url(&skipped, &tree()), None);
}

#[test]
fn dummy_build_for_tests_under_a_checkout() {
    let (job, dummy) = test_of(map(&kunit_job()));
    let dummy = dummy.unwrap();
    let dummy_id = format!("maestro:dummy_{CHECKOUT}_x86_64");
    assert_eq!(
        dummy,
        json!({
            "id": dummy_id,
            "checkout_id": format!("maestro:{CHECKOUT}"),
            "comment": "Dummy build for tests hanging from checkout",
            "origin": "maestro",
            "start_time": "2026-11-28T10:47:29.123000+00:00",
            "architecture": "x86_64"
        })
    );
    assert_eq!(job["build_id"], dummy_id);
    assert_eq!(job["path"], "kunit");
    // Platform without compatible strings: no `compatible`.
    assert!(job["environment"].get("compatible").is_none());
    assert!(job["environment"]["misc"].get("job_url").is_none());
    assert_eq!(
        job["log_url"],
        format!("{STORAGE}/kunit-x86_64-{KUNIT_JOB}/test_log")
    );

    let (case, case_dummy) = test_of(map(&kunit_case()));
    assert_eq!(case["path"], "kunit.exec");
    assert_eq!(case["build_id"], dummy_id);
    // Artifacts and job id come from the kunit job.
    assert_eq!(case["log_url"], job["log_url"]);
    assert_eq!(
        case["environment"]["misc"]["job_id"],
        "kci-6740b1f1c0ffee00000j0b11-kunit-x86-64-abcd"
    );

    // Without an arch the id has no suffix.
    let no_arch = with(kunit_job(), json!({"data": {"arch": null}}));
    let (_, plain) = test_of(map(&no_arch));
    let plain = plain.unwrap();
    assert_eq!(plain["id"], format!("maestro:dummy_{CHECKOUT}"));
    assert!(plain.get("architecture").is_none());

    // The same dummy build is sent once.
    let doc = valid_submission(vec![
        map(&checkout()),
        Mapped::Test {
            test: job,
            dummy_build: Some(dummy),
        },
        Mapped::Test {
            test: case,
            dummy_build: case_dummy,
        },
    ]);
    assert_eq!(doc["builds"].as_array().unwrap().len(), 1);
    assert_eq!(doc["tests"].as_array().unwrap().len(), 2);
}

#[test]
fn missing_ancestors_and_platforms_are_skips() {
    let orphan = with(case(), json!({"parent": null}));
    assert!(skip_reason(map(&orphan)).contains("no kbuild or checkout ancestor"));

    let lost = with(case(), json!({"parent": "6740b1f1c0ffee0000deadbe"}));
    assert!(skip_reason(map(&lost)).contains("ancestor 6740b1f1c0ffee0000deadbe not found"));

    let mut nodes = tree();
    nodes.remove(KBUILD);
    assert!(skip_reason(map_node(&case(), &nodes, &cfg(), None)).contains(KBUILD));

    // A platform the configuration does not describe is sent, without compatibles.
    let odd = with(case(), json!({"data": {"platform": "mystery-board"}}));
    let (t, _) = test_of(map(&odd));
    assert!(t["environment"].get("compatible").is_none());
    assert_eq!(t["environment"]["misc"]["platform"], "mystery-board");

    // No platform at all is fine: no compatible, a shorter comment.
    let bare = with(case(), json!({"data": {"platform": null, "runtime": null}}));
    let (t, _) = test_of(map(&bare));
    assert_eq!(t["comment"], "dmesg-emerg");
    assert!(t["environment"].get("comment").is_none());
    assert!(t["environment"].get("compatible").is_none());

    // Cycles end the walk instead of looping.
    let mut cyclic = tree();
    cyclic.insert(
        BASELINE_JOB.to_owned(),
        with(baseline_job(), json!({"parent": CASE})),
    );
    assert!(skip_reason(map_node(&case(), &cyclic, &cfg(), None)).contains("no kbuild"));

    let unknown_kind = with(case(), json!({"kind": "regression"}));
    assert!(skip_reason(map(&unknown_kind)).contains("regression"));
}

#[test]
fn measurement_and_job_context() {
    let node = with(
        case(),
        json!({"data": {"misc": {"measurement": 42.5}, "job_id": 20512399,
                        "job_context": "lava-collabora:rk3399"}}),
    );
    let (t, _) = test_of(map(&node));
    let env = &t["environment"]["misc"];
    assert_eq!(env["measurement"], 42.5);
    assert_eq!(env["job_id"], 20512399);
    assert_eq!(env["job_context"], "lava-collabora:rk3399");
    assert_eq!(
        env["job_url"],
        "https://lava.collabora.dev/scheduler/job/20512399"
    );
}

#[test]
fn node_timeout_tests_have_no_status() {
    let timed_out = with(
        baseline_sub(),
        json!({"result": "incomplete",
               "data": {"error_code": "node_timeout", "error_msg": "Node timed-out"}}),
    );
    let (t, _) = test_of(map(&timed_out));
    assert!(t.get("status").is_none());
    assert_eq!(t["misc"]["error_code"], "node_timeout");
    assert_eq!(t["path"], "boot.baseline");
}

// --- retries ------------------------------------------------------------------------------

#[test]
fn retry_suppression_table() {
    let cases: &[(&str, &str, Value, Value, bool)] = &[
        (
            "kbuild",
            "kbuild-gcc-14-arm64",
            json!("incomplete"),
            json!(0),
            true,
        ),
        (
            "kbuild",
            "kbuild-gcc-14-arm64",
            json!("incomplete"),
            json!(2),
            true,
        ),
        (
            "kbuild",
            "kbuild-gcc-14-arm64",
            json!("incomplete"),
            json!(3),
            false,
        ),
        (
            "kbuild",
            "kbuild-gcc-14-arm64",
            json!("incomplete"),
            json!(4),
            false,
        ),
        (
            "kbuild",
            "kbuild-gcc-14-arm64",
            json!("incomplete"),
            Value::Null,
            true,
        ),
        (
            "kbuild",
            "kbuild-gcc-14-arm64",
            json!("fail"),
            json!(0),
            false,
        ),
        ("job", "baseline-arm64", json!("incomplete"), json!(1), true),
        ("job", "baseline-arm64", json!("fail"), json!(0), true),
        ("job", "baseline-arm64", json!("fail"), json!(3), false),
        ("job", "baseline-arm64", json!("pass"), json!(0), false),
        ("job", "kselftest-dt", json!("fail"), json!(0), false),
        ("job", "kselftest-dt", json!("incomplete"), json!(0), true),
        ("test", "baseline-login", json!("fail"), json!(0), false),
        ("test", "login", json!("incomplete"), json!(0), false),
        ("checkout", "checkout", json!("incomplete"), json!(0), false),
        ("job", "baseline-arm64", Value::Null, json!(0), false),
    ];
    for (kind, name, result, counter, defer) in cases {
        let node = json!({"id": "x", "kind": kind, "name": name, "result": result,
                          "retry_counter": counter});
        assert_eq!(
            should_defer_for_retry(&node, kernelci_kcidb::maestro::MAX_RETRIES),
            *defer,
            "{kind} {name} {result} {counter}"
        );
    }
}

// --- strings ------------------------------------------------------------------------------

#[test]
fn nul_characters_are_stripped_everywhere() {
    let c = checkout_of(map(&with(
        checkout(),
        json!({"data": {"kernel_revision": {"commit_message": "fix\u{0}: oops\u{0}",
                                            "describe": "v6.18\u{0}"}}}),
    )));
    assert_eq!(c["git_commit_message"], "fix: oops");
    assert_eq!(c["git_commit_name"], "v6.18");

    let node = with(
        case(),
        json!({"result": "fail", "name": "dmesg\u{0}crit",
               "data": {"error_msg": "bad\u{0}thing", "error_code": "Test",
                        "test_source": {"u\u{0}rl": "https://x/\u{0}y"}}}),
    );
    let (t, _) = test_of(map_node(&node, &tree(), &cfg(), Some("a\u{0}b")));
    let text = serde_json::to_string(&t).unwrap();
    assert!(!text.contains("\\u0000"), "{text}");
    assert_eq!(
        t["comment"],
        "dmesgcrit on rk3399-gru-kevin in lava-collabora"
    );
    assert_eq!(t["misc"]["error_msg"], "badthing");
    assert_eq!(t["misc"]["test_source"], json!({"url": "https://x/y"}));
    assert_eq!(t["log_excerpt"], "ab");
    valid_submission(vec![Mapped::Test {
        test: t,
        dummy_build: None,
    }]);

    // submission() cleans hand-made objects too.
    let doc = submission(vec![Mapped::Build(json!({
        "id": "maestro:b\u{0}1", "origin": "maestro", "checkout_id": "maestro:c1",
        "comment": null, "misc": {"k": [null, "v\u{0}"]}
    }))]);
    assert_eq!(
        doc["builds"][0],
        json!({"id": "maestro:b1", "origin": "maestro", "checkout_id": "maestro:c1",
               "misc": {"k": ["v"]}})
    );
}

#[test]
fn log_excerpt_keeps_the_last_16384_characters() {
    assert_eq!(LOG_EXCERPT_MAX_CHARS, 16384);
    // Multi-byte characters count as one (KCIDB counts code points).
    let head = "HEAD-".repeat(100);
    let tail: String = "é€x\n"
        .chars()
        .cycle()
        .take(LOG_EXCERPT_MAX_CHARS)
        .collect();
    let log = format!("{head}{tail}");
    let excerpt = maestro::log_excerpt(&log);
    assert_eq!(excerpt.chars().count(), LOG_EXCERPT_MAX_CHARS);
    assert_eq!(excerpt, tail);

    let short = "short log\n";
    assert_eq!(maestro::log_excerpt(short), short);
    // NULs are removed before counting.
    let with_nuls = format!(
        "{}{}",
        "\u{0}".repeat(10),
        "y".repeat(LOG_EXCERPT_MAX_CHARS)
    );
    assert_eq!(
        maestro::log_excerpt(&with_nuls),
        "y".repeat(LOG_EXCERPT_MAX_CHARS)
    );

    let b = build_of(map_node(&kbuild(), &tree(), &cfg(), Some(&log)));
    assert_eq!(b["log_excerpt"], tail);
    let (t, _) = test_of(map_node(&case(), &tree(), &cfg(), Some(&log)));
    assert_eq!(t["log_excerpt"], tail);
    valid_submission(vec![
        Mapped::Build(b),
        Mapped::Test {
            test: t,
            dummy_build: None,
        },
    ]);
}

#[test]
fn timestamps_get_an_offset() {
    let cases = [
        (
            "2026-11-28T10:47:29.123000",
            Some("2026-11-28T10:47:29.123000+00:00"),
        ),
        ("2026-11-28T10:47:29", Some("2026-11-28T10:47:29+00:00")),
        (
            "2026-11-28T10:47:29.000000",
            Some("2026-11-28T10:47:29+00:00"),
        ),
        (
            "2026-11-28 10:47:29.5",
            Some("2026-11-28T10:47:29.500000+00:00"),
        ),
        (
            "2026-11-28T10:47:29.123456789",
            Some("2026-11-28T10:47:29.123456+00:00"),
        ),
        ("2026-11-28T10:47:29Z", Some("2026-11-28T10:47:29+00:00")),
        (
            "2026-11-28T10:47:29.25+02:00",
            Some("2026-11-28T10:47:29.250000+02:00"),
        ),
        ("yesterday", None),
        ("", None),
    ];
    for (created, expected) in cases {
        assert_eq!(
            maestro::kcidb_timestamp(created).as_deref(),
            expected,
            "{created}"
        );
    }
    // A node with an unreadable `created` is still sent, without start_time.
    let c = checkout_of(map(&with(checkout(), json!({"created": "soon"}))));
    assert!(c.get("start_time").is_none());
}

// --- whole submissions --------------------------------------------------------------------

#[test]
fn a_whole_tree_makes_one_valid_submission() {
    let nodes = tree();
    let cfg = cfg();
    let mut order: Vec<&Value> = nodes.values().collect();
    order.sort_by_key(|n| n["id"].as_str().unwrap_or_default().to_owned());
    let mapped: Vec<Mapped> = order
        .iter()
        .map(|n| map_node(n, &nodes, &cfg, Some("log text\n")))
        .collect();
    let skips: Vec<&str> = mapped.iter().filter_map(Mapped::skip_reason).collect();
    assert_eq!(skips.len(), 2, "{skips:?}"); // the setup job and its login test
    let doc = valid_submission(mapped);
    assert_eq!(doc["version"], json!({"major": 5, "minor": 3}));
    let len = |k: &str| doc[k].as_array().map(Vec::len);
    assert_eq!(len("checkouts"), Some(2));
    assert_eq!(len("builds"), Some(2)); // the kbuild and one dummy build
    assert_eq!(len("tests"), Some(6));
    assert_eq!(len("issues"), Some(0));
    assert_eq!(len("incidents"), Some(0));
    assert_eq!(kernelci_kcidb::count_objects(&doc), 10);
}

#[test]
fn empty_submission_is_valid() {
    let doc = valid_submission(vec![Mapped::Skip {
        reason: "nothing".to_owned(),
    }]);
    assert_eq!(kernelci_kcidb::count_objects(&doc), 0);
}

#[test]
fn only_what_the_infrastructure_may_have_caused_is_retried() {
    use kernelci_kcidb::maestro::{is_retried, should_defer_for_retry};
    let job = |result: &str, code: Value, extra: Value| {
        let mut n = with(
            baseline_job(),
            json!({"result": result, "data": {"error_code": code}}),
        );
        merge(&mut n, extra);
        n
    };
    assert!(is_retried(&job(
        "incomplete",
        json!("Infrastructure"),
        json!({})
    )));
    assert!(is_retried(&job("incomplete", Value::Null, json!({}))));
    assert!(is_retried(&job("fail", Value::Null, json!({}))));
    // The job definition's fault: the same every time.
    for code in ["Job", "Test", "invalid_job_params", "Configuration"] {
        let n = job("incomplete", json!(code), json!({}));
        assert!(!is_retried(&n), "{code}");
        assert!(!should_defer_for_retry(&n, 3), "{code}: sent at once");
    }
    // A missing job (reported when its checkout settled).
    let missing = job(
        "incomplete",
        json!("submit_error"),
        json!({"data": {"missing": true}}),
    );
    assert!(!is_retried(&missing));
    assert!(should_defer_for_retry(
        &job("incomplete", json!("submit_error"), json!({})),
        3
    ));
}
