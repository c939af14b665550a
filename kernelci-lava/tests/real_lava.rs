//! Against a real LAVA server (feature `client`; the runtime part with feature `runtime`).
//!
//! Runs only when `KERNELCI_TEST_LAVA_URL` (the server's base URL) and
//! `KERNELCI_TEST_LAVA_TOKEN` (an API token) are set; otherwise it prints why it skipped.
//! The server needs a `qemu` device type with at least one online device (specs/
//! real-peers.md §2.3). Submits two cheap jobs whose kernel file does not exist: LAVA fails
//! them at validation in about 5 s (§2.4), and cancels the second one at once.
//!
//! ```text
//! . /tmp/kernelci-lava/env   # exports KERNELCI_TEST_LAVA_URL and KERNELCI_TEST_LAVA_TOKEN
//! cargo nextest run -p kernelci-lava --all-features --test real_lava --no-capture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "client")]

use std::time::{Duration, Instant};

use kernelci_lava::client::{JobInfo, LavaClient};
use kernelci_lava::lab::api_url;
use kernelci_lava::{LavaLog, device_online, normalize};

const JOB: &str = r#"
device_type: qemu
job_name: kernelci-rs real_lava test (kernel file missing)
timeouts:
  job: {minutes: 5}
  action: {minutes: 3}
  connection: {minutes: 2}
priority: medium
visibility: public
context: {arch: amd64}
metadata: {node_id: "6650c0ffee0000000000feed"}
actions:
- deploy:
    to: tmpfs
    timeout: {minutes: 2}
    images:
      kernel:
        image_arg: -kernel {kernel} -append "console=ttyS0,115200 rdinit=/init"
        url: file:///nonexistent/bzImage
      ramdisk:
        image_arg: -initrd {ramdisk}
        url: file:///nonexistent/initramfs.cpio.gz
- boot:
    method: qemu
    media: tmpfs
    timeout: {minutes: 2}
    prompts: ['/ # ']
"#;

fn server() -> Option<(String, String)> {
    let url = std::env::var("KERNELCI_TEST_LAVA_URL")
        .ok()
        .filter(|s| !s.is_empty());
    let token = std::env::var("KERNELCI_TEST_LAVA_TOKEN")
        .ok()
        .filter(|s| !s.is_empty());
    match (url, token) {
        (Some(url), Some(token)) => Some((url, token)),
        _ => {
            println!(
                "real_lava: skipped (set KERNELCI_TEST_LAVA_URL and KERNELCI_TEST_LAVA_TOKEN to run)"
            );
            None
        }
    }
}

/// Polls `job(id)` every second until `Finished`, for at most `limit`.
/// How long a job may wait for the lab's only device (other tests' jobs queue on it too).
const DEVICE_WAIT: Duration = Duration::from_secs(300);

fn wait_finished(client: &LavaClient, id: i64, limit: Duration) -> JobInfo {
    let start = Instant::now();
    loop {
        let info = client.job(id).unwrap();
        if info.state == "Finished" {
            return info;
        }
        assert!(
            start.elapsed() < limit,
            "job {id} still {} after {limit:?}",
            info.state
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn real_lava() {
    let Some((url, token)) = server() else { return };
    let client = LavaClient::new(&api_url(&url), Some(&token)).unwrap();

    let version = client.version().unwrap();
    println!("real_lava: LAVA {version} at {}", client.api_url());
    assert!(version.starts_with("20"), "{version}");

    let devices = client.devices("qemu").unwrap();
    assert!(
        devices.iter().any(|d| device_online(d.health.as_deref())),
        "no online qemu device: {devices:?}"
    );

    let definition = normalize(JOB).unwrap();
    assert_eq!(
        definition.node_id.as_deref(),
        Some("6650c0ffee0000000000feed")
    );
    let id = client.submit(&definition.yaml).unwrap();
    let started = Instant::now();
    // The lab has one device: another test's job may hold it for a while first.
    let info = wait_finished(&client, id, DEVICE_WAIT);
    println!(
        "real_lava: job {id} {} / {} in {:.1?}",
        info.state,
        info.health,
        started.elapsed()
    );
    assert_eq!(info.health, "Incomplete");

    let log_text = client.logs(id).unwrap();
    assert!(!log_text.trim().is_empty());
    let log = LavaLog::parse(&log_text).unwrap();
    assert!(
        log.entries()
            .iter()
            .any(|e| e.msg.contains("/nonexistent/bzImage")),
        "the log names the missing kernel"
    );
    let tests = client.tests(id).unwrap();
    let cases = tests.as_array().unwrap();
    assert!(
        cases
            .iter()
            .any(|c| c["name"] == "job" && c["result"] == "fail"),
        "lava/job failed: {tests}"
    );

    let queued = client.queued("qemu").unwrap();
    println!("real_lava: {queued} jobs queued for qemu");

    // A second one, cancelled right away.
    let second = client.submit(&definition.yaml).unwrap();
    client.cancel(second).unwrap();
    let info = wait_finished(&client, second, DEVICE_WAIT);
    println!(
        "real_lava: job {second} (cancelled) {} / {}",
        info.state, info.health
    );
    assert!(
        matches!(info.health.as_str(), "Canceled" | "Incomplete"),
        "{info:?}"
    );

    // Unknown job: 404.
    let missing = client.job(i64::from(i32::MAX)).unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");

    #[cfg(feature = "runtime")]
    runtime_part(&url, &token, id);
}

#[cfg(feature = "runtime")]
fn runtime_part(url: &str, token: &str, finished_job: i64) {
    use kernelci_lava::{LabConfig, LabSecrets, LavaRuntime};
    use kernelci_sched::runtime::{JobHandle, JobStatus, JobSubmission, Runtime};
    use serde_json::{Map, Value};

    let mut fields = Map::new();
    fields.insert("url".into(), Value::String(url.to_string()));
    let secrets = LabSecrets {
        runtime_token: Some(token.to_string()),
        callback_token: None,
    };
    let lab = LabConfig::from_runtime("lava-local", &fields, secrets).unwrap();
    let runtime = LavaRuntime::new(lab).unwrap();

    let handle = JobHandle {
        runtime: "lava-local".into(),
        job_id: finished_job.to_string(),
    };
    assert_eq!(
        runtime.status(&handle).unwrap(),
        JobStatus::Finished { exit_code: 2 }
    );
    assert!(runtime.logs(&handle).is_ok());
    let gone = JobHandle {
        runtime: "lava-local".into(),
        job_id: i32::MAX.to_string(),
    };
    assert_eq!(runtime.status(&gone).unwrap(), JobStatus::Lost);
    println!(
        "real_lava: queue gate for qemu: {:?}",
        runtime.queue_check("qemu", 40)
    );

    let job = JobSubmission {
        node_id: "6650c0ffee0000000000feed".into(),
        job_name: "real-lava".into(),
        definition: JOB.to_string(),
        timeout: Duration::ZERO,
        env: vec![],
        image: None,
    };
    // LAVA refusing a definition (unknown device type: HTTP 400) is an invalid submission.
    let refused = JobSubmission {
        definition: JOB.replace("device_type: qemu", "device_type: no-such-device-type"),
        ..job.clone()
    };
    let e = runtime.submit(&refused).unwrap_err();
    println!("real_lava: refused: {e}");
    assert!(
        matches!(
            e,
            kernelci_sched::runtime::RuntimeError::InvalidSubmission(_)
        ),
        "{e}"
    );

    let submitted = runtime.submit(&job).unwrap();
    runtime.cancel(&submitted).unwrap();
    let status = kernelci_lava::runtime::wait(&runtime, &submitted, DEVICE_WAIT).unwrap();
    assert!(
        matches!(
            status,
            JobStatus::Cancelled | JobStatus::Finished { exit_code: 2 }
        ),
        "{status:?}"
    );
}
