//! Table tests for `should_create_node` (pipeline spec §2.10), one group per branch.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use kernelci_sched::rules::{Decision, LookupError, NoAncestors, NodeMap, should_create_node};
use kernelci_sched::yaml;
use serde_json::{Value, json};

fn rules(text: &str) -> Value {
    yaml::from_str(text, "rules.yaml").unwrap()
}

/// A checkout-like node for `tree`/`branch` at version `major.minor`.
fn checkout(tree: &str, branch: &str, major: i64, minor: i64) -> Value {
    json!({
        "id": "c1", "name": "checkout", "kind": "checkout", "parent": null,
        "data": {"kernel_revision": {
            "tree": tree, "branch": branch, "commit": "abc",
            "version": {"version": major, "patchlevel": minor}
        }}
    })
}

fn check(rules_yaml: &str, node: &Value, expect_allow: bool, reason_contains: &str) {
    let d = should_create_node(&rules(rules_yaml), node, &NoAncestors);
    assert_eq!(d.is_allowed(), expect_allow, "rules {rules_yaml:?}: {d}");
    if !expect_allow {
        let r = d.reason().unwrap();
        assert!(
            r.contains(reason_contains),
            "rules {rules_yaml:?}: reason {r:?}"
        );
    }
}

#[test]
fn null_and_empty_rules_allow() {
    let n = checkout("mainline", "master", 6, 1);
    assert_eq!(
        should_create_node(&Value::Null, &n, &NoAncestors),
        Decision::Allow
    );
    check("{}", &n, true, "");
    check("[1]", &n, false, "must be a mapping");
}

#[test]
fn tree_branch_table() {
    // (rules, tree, branch, allowed, reason fragment)
    let table: &[(&str, &str, &str, bool, &str)] = &[
        // plain allow list
        ("tree: [mainline, next]", "mainline", "master", true, ""),
        (
            "tree: [mainline, next]",
            "stable",
            "master",
            false,
            "not one of [mainline, next]",
        ),
        // deny list
        (
            "tree: ['!android']",
            "android",
            "x",
            false,
            "tree `android` is denied",
        ),
        ("tree: ['!android', '!cip']", "mainline", "master", true, ""),
        // allowed combo settles tree and branch at once (even with a branch deny list)
        (
            "{tree: ['next:master'], branch: ['!master']}",
            "next",
            "master",
            true,
            "",
        ),
        // only combos, no plain allow entry: anything else is rejected
        (
            "tree: ['next:master', 'sashal:next']",
            "next",
            "pending",
            false,
            "allowed combinations",
        ),
        // combos plus plain entries
        (
            "tree: ['next:master', sashal-next]",
            "sashal-next",
            "anything",
            true,
            "",
        ),
        (
            "tree: ['next:master', sashal-next]",
            "mainline",
            "master",
            false,
            "not one of [sashal-next]",
        ),
        // denied combo
        (
            "{tree: [linus:master, stable], branch: ['!stable:master']}",
            "stable",
            "master",
            false,
            "combination `stable:master` is denied",
        ),
        (
            "{tree: [linus:master, stable], branch: ['!stable:master']}",
            "stable",
            "linux-6.6.y",
            true,
            "",
        ),
        (
            "{tree: [linus:master, stable], branch: ['!stable:master']}",
            "linus",
            "master",
            true,
            "",
        ),
        (
            "{tree: [linus:master, stable], branch: ['!stable:master']}",
            "linus",
            "next",
            false,
            "not one of [stable]",
        ),
        // branch lists
        ("branch: [master]", "any", "master", true, ""),
        (
            "branch: [master]",
            "any",
            "for-next",
            false,
            "branch `for-next` is not one of [master]",
        ),
        (
            "branch: ['!for-next']",
            "any",
            "for-next",
            false,
            "branch `for-next` is denied",
        ),
        // a single string is read as a one-item list
        ("tree: mainline", "mainline", "master", true, ""),
    ];
    for (r, tree, branch, allow, reason) in table {
        check(r, &checkout(tree, branch, 6, 1), *allow, reason);
    }
}

#[test]
fn tree_rules_skipped_without_tree_anywhere() {
    let node = json!({"id": "n", "data": {"arch": "arm64"}});
    check("tree: [mainline]", &node, true, "");
}

#[test]
fn version_table() {
    let table: &[(&str, i64, i64, bool, &str)] = &[
        ("min_version: {version: 6, patchlevel: 1}", 6, 1, true, ""),
        (
            "min_version: {version: 6, patchlevel: 1}",
            6,
            0,
            false,
            "older than the minimum 6.1",
        ),
        (
            "min_version: {version: 6, patchlevel: 1}",
            5,
            15,
            false,
            "older",
        ),
        ("min_version: {version: 6, patchlevel: 1}", 7, 0, true, ""),
        ("max_version: {version: 6, patchlevel: 6}", 6, 6, true, ""),
        (
            "max_version: {version: 6, patchlevel: 6}",
            6,
            7,
            false,
            "more recent than the maximum 6.6",
        ),
        (
            "max_version: {version: 6, patchlevel: 6}",
            7,
            0,
            false,
            "more recent",
        ),
        ("max_version: {version: 6, patchlevel: 6}", 5, 99, true, ""),
        ("other_version: {version: 9, patchlevel: 9}", 1, 0, true, ""),
        (
            "min_version: {version: 6}",
            6,
            1,
            false,
            "expected {version",
        ),
    ];
    for (r, major, minor, allow, reason) in table {
        check(
            r,
            &checkout("mainline", "master", *major, *minor),
            *allow,
            reason,
        );
    }
    // No version on the node (checkout before its tarball): denied with a reason.
    let node = json!({"id": "n", "data": {"kernel_revision": {"tree": "t", "branch": "b"}}});
    check(
        "min_version: {version: 6, patchlevel: 1}",
        &node,
        false,
        "has no data.kernel_revision.version",
    );
}

fn kbuild_node(arch: &str, fragments: Value) -> Value {
    json!({
        "id": "k1", "name": "kbuild-gcc-14-arm64", "kind": "kbuild", "parent": "c1",
        "data": {
            "kernel_revision": {"tree": "mainline", "branch": "master",
                                "version": {"version": 6, "patchlevel": 1}},
            "arch": arch, "defconfig": "defconfig", "fragments": fragments
        }
    })
}

#[test]
fn other_keys_table() {
    let table: &[(&str, Value, bool, &str)] = &[
        // scalar allow
        ("arch: [arm64]", kbuild_node("arm64", json!([])), true, ""),
        (
            "arch: [arm64]",
            kbuild_node("x86_64", json!([])),
            false,
            "`data.arch` of the node is `x86_64`, not one of [arm64]",
        ),
        // scalar deny
        (
            "defconfig: ['!allnoconfig']",
            kbuild_node("arm64", json!([])),
            true,
            "",
        ),
        (
            "defconfig: ['!defconfig']",
            kbuild_node("arm64", json!([])),
            false,
            "denied by `!defconfig`",
        ),
        // list values: any denied item rejects
        (
            "fragments: ['!arm64-chromebook']",
            kbuild_node("arm64", json!(["kselftest", "arm64-chromebook"])),
            false,
            "contains `arm64-chromebook`",
        ),
        (
            "fragments: ['!arm64-chromebook']",
            kbuild_node("arm64", json!(["kselftest"])),
            true,
            "",
        ),
        // list values: at least one allowed item needed
        (
            "fragments: [kselftest, '!arm64-chromebook']",
            kbuild_node("arm64", json!(["kselftest", "lab-setup"])),
            true,
            "",
        ),
        (
            "fragments: [kselftest]",
            kbuild_node("arm64", json!(["lab-setup"])),
            false,
            "which has none of [kselftest]",
        ),
        (
            "fragments: [kselftest]",
            kbuild_node("arm64", json!([])),
            false,
            "has none of",
        ),
        // not found anywhere: rejected with an allow list, accepted with only deny entries
        (
            "platform: [qemu-x86]",
            kbuild_node("arm64", json!([])),
            false,
            "have no `platform`",
        ),
        (
            "platform: ['!qemu-x86']",
            kbuild_node("arm64", json!([])),
            true,
            "",
        ),
        // null value: not in the allow list
        (
            "arch: [arm64]",
            json!({"data": {"arch": null}}),
            false,
            "is `null`",
        ),
        // top-level keys are found too
        ("kind: [kbuild]", kbuild_node("arm64", json!([])), true, ""),
        (
            "name: ['!kbuild-gcc-14-arm64']",
            kbuild_node("arm64", json!([])),
            false,
            "denied",
        ),
    ];
    for (r, node, allow, reason) in table {
        check(r, node, *allow, reason);
    }
}

#[test]
fn first_container_depth_first_and_mapping_values_searched_into() {
    // `arch` appears in data.first (a mapping searched first) and in data.arch: the first
    // container found depth-first in key order wins.
    let node = json!({"data": {"first": {"arch": "arm64"}, "arch": "x86_64"}});
    check("arch: [arm64]", &node, true, "");
    // A key whose value is a mapping is never matched itself.
    let node = json!({"data": {"arch": {"name": "arm64"}}});
    check("arch: [arm64]", &node, false, "have no `arch`");
}

#[test]
fn ancestors_are_searched_nearest_first() {
    let checkout = checkout("mainline", "master", 6, 1);
    let kbuild = json!({"id": "k1", "name": "kbuild", "parent": "c1",
                        "data": {"arch": "arm64", "defconfig": "defconfig"}});
    let candidate = json!({"name": "baseline-arm64", "parent": "k1", "data": {"platform": "rpi4"}});
    let nodes = NodeMap::from_nodes([checkout, kbuild]);

    // tree/branch found in the grandparent.
    let d = should_create_node(&rules("tree: ['!mainline']"), &candidate, &nodes);
    assert_eq!(
        d.reason().unwrap(),
        "rule `tree`: tree `mainline` is denied by `!mainline`"
    );
    // arch found in the parent.
    let d = should_create_node(&rules("arch: [x86_64]"), &candidate, &nodes);
    assert!(
        d.reason()
            .unwrap()
            .contains("`data.arch` of its parent is `arm64`"),
        "{d}"
    );
    // own key first.
    assert!(should_create_node(&rules("platform: [rpi4]"), &candidate, &nodes).is_allowed());
    // without ancestors, tree rules are skipped and arch is missing.
    assert!(
        should_create_node(&rules("tree: ['!mainline']"), &candidate, &NoAncestors).is_allowed()
    );
    assert!(!should_create_node(&rules("arch: [arm64]"), &candidate, &NoAncestors).is_allowed());
    // ancestors are only fetched when needed
    let calls = std::cell::Cell::new(0);
    let counting = |n: &Value| -> Result<Option<Value>, LookupError> {
        calls.set(calls.get() + 1);
        use kernelci_sched::rules::AncestorLookup;
        nodes.parent(n)
    };
    assert!(should_create_node(&rules("platform: [rpi4]"), &candidate, &counting).is_allowed());
    assert_eq!(calls.get(), 0);
    assert!(should_create_node(&rules("arch: [arm64]"), &candidate, &counting).is_allowed());
    assert_eq!(calls.get(), 1);
}

#[test]
fn lookup_errors_and_cycles_deny_or_stop() {
    let candidate = json!({"name": "x", "parent": "p", "data": {}});
    let failing =
        |_: &Value| -> Result<Option<Value>, LookupError> { Err(LookupError("HTTP 503".into())) };
    let d = should_create_node(&rules("arch: [arm64]"), &candidate, &failing);
    assert!(
        d.reason()
            .unwrap()
            .contains("cannot fetch the parent of node x: HTTP 503"),
        "{d}"
    );
    // A node that is its own parent does not loop.
    let selfish = json!({"id": "a", "parent": "a", "data": {}});
    let nodes = NodeMap::from_nodes([selfish.clone()]);
    let d = should_create_node(&rules("arch: [arm64]"), &selfish, &nodes);
    assert!(!d.is_allowed());
}

#[test]
fn keys_checked_in_rule_order_tree_branch_first() {
    let node = kbuild_node("x86_64", json!([]));
    let d = should_create_node(
        &rules("{arch: [arm64], tree: ['!mainline']}"),
        &node,
        &NoAncestors,
    );
    assert!(d.reason().unwrap().starts_with("rule `tree`"), "{d}");
    let d = should_create_node(
        &rules("{defconfig: ['!defconfig'], arch: [arm64]}"),
        &node,
        &NoAncestors,
    );
    assert!(d.reason().unwrap().starts_with("rule `defconfig`"), "{d}");
}
