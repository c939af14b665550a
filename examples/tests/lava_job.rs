//! Runs the `lava_job` example: the rendered LAVA job definition is checked by
//! `kernelci_lava::definition::normalize` and carries the kernel, callback and priority.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "../lava_job.rs"]
mod example;

use kernelci_sched::yaml;
use serde_json::json;

#[test]
fn the_job_boots_the_given_kernel_and_calls_back() {
    let kernel = "https://storage.example.org/k-1/bzImage";
    let job = example::render(kernel, Some("/srv/rootfs.cpio.gz")).expect("renders");
    assert_eq!(job.device_type, "qemu");
    assert_eq!(job.node_id.as_deref(), Some("65a1b2c3d4e5f60718293a4b"));
    assert_eq!(
        job.job_name,
        "[kernelci-rs] 65a1b2c3d4e5f60718293a4b baseline-x86_64 v6.1.99"
    );

    // What LAVA will read (normalize's output parses back to the same data).
    let doc = yaml::from_str(&job.yaml, "job.yaml").expect("the output is YAML");
    let deploy = &doc["actions"][0]["deploy"];
    assert_eq!(deploy["images"]["kernel"]["url"], kernel);
    assert_eq!(
        deploy["images"]["ramdisk"]["url"],
        "file:///srv/rootfs.cpio.gz"
    );
    assert_eq!(doc["actions"][1]["boot"]["method"], "qemu");
    assert_eq!(
        doc["actions"][2]["test"]["interactive"][0]["script"][0]["command"],
        "uname -a"
    );
    // Base priority 50 scaled into the lab's 10-60.
    assert_eq!(doc["priority"], 35);
    let callback = &doc["notify"]["callback"];
    assert_eq!(
        callback["url"],
        format!("{}/node/65a1b2c3d4e5f60718293a4b", example::CALLBACK_BASE)
    );
    assert_eq!(callback["token"], "kernelci-callback");
    assert_eq!(callback["dataset"], "all");
    assert_eq!(doc["context"], json!({"arch": "amd64"}));
    assert_eq!(doc["metadata"]["node_id"], "65a1b2c3d4e5f60718293a4b");

    // Normalized output is stable: normalizing it again gives the same text.
    let again = kernelci_lava::definition::normalize(&job.yaml).unwrap();
    assert_eq!(again.yaml, job.yaml);
}

#[test]
fn without_a_ramdisk_the_job_has_no_ramdisk() {
    let job = example::render(example::DEFAULT_KERNEL, None).expect("renders");
    let doc = yaml::from_str(&job.yaml, "job.yaml").unwrap();
    let images = &doc["actions"][0]["deploy"]["images"];
    assert_eq!(images["kernel"]["url"], example::DEFAULT_KERNEL);
    assert!(images.get("ramdisk").is_none(), "{images}");
}

#[test]
fn the_lab_entry_is_valid() {
    let lab = example::lab().expect("lab");
    assert_eq!(
        lab.api_url().as_deref(),
        Some("https://lava.mylab.example/api/v0.2/")
    );
    assert_eq!(lab.scale_priority(0), 10);
    assert_eq!(lab.scale_priority(100), 60);
}
