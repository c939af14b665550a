//! Boot job results from real QEMU consoles (the recordings of
//! kernelci-logspec/tests/data/qemu): the test tree the collector writes for each.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use kernelci_pipeline::collect::boot_hierarchy;
use serde_json::{Value, json};

const MARKER: &str = "BOOT-MARKER: init reached";

fn results(log: &str) -> (Value, Vec<(String, String)>) {
    let path = format!(
        "{}/../../kernelci-logspec/tests/data/qemu/{log}",
        env!("CARGO_MANIFEST_DIR")
    );
    let console = std::fs::read(&path).unwrap();
    let mut node = json!({"id": "6b0a00000000000000000001", "name": "baseline-x86_64",
        "path": ["checkout", "kbuild-gcc-x86_64", "baseline-x86_64"],
        "data": {"arch": "x86_64", "platform": "qemu-x86_64"}});
    let h = boot_hierarchy(&mut node, &console, MARKER);
    let baseline = &h["child_nodes"][0];
    assert_eq!(baseline["node"]["name"], "baseline");
    let tests = baseline["child_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["node"]["name"].as_str().unwrap().to_string(),
                t["node"]["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (h["node"].clone(), tests)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_boot_to_the_marker_passes_every_test() {
    let (job, tests) = results("marker-reboot.log");
    assert_eq!(job["result"], "pass");
    assert_eq!(job["state"], "done");
    assert_eq!(
        tests,
        pairs(&[
            ("login", "pass"),
            ("dmesg.emerg", "pass"),
            ("dmesg.alert", "pass"),
            ("dmesg.crit", "pass")
        ])
    );
}

#[test]
fn a_boot_to_a_shell_prompt_passes_login_without_the_marker() {
    let (job, tests) = results("shell-prompt.log");
    assert_eq!(job["result"], "pass");
    assert_eq!(tests[0], ("login".to_string(), "pass".to_string()));
}

#[test]
fn a_kernel_panic_fails_the_boot_and_dmesg_emerg() {
    let (job, tests) = results("no-init-panic.log");
    assert_eq!(job["result"], "fail");
    assert_eq!(
        job["data"]["error_msg"],
        "the boot did not reach the login prompt or marker"
    );
    assert_eq!(
        tests,
        pairs(&[
            ("login", "fail"),
            ("dmesg.emerg", "fail"),
            ("dmesg.alert", "pass"),
            ("dmesg.crit", "pass")
        ])
    );
}
