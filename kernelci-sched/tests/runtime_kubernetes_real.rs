//! The kubernetes runtime against a real cluster: opt-in, for maintainers with one.
//!
//! Runs only when `KERNELCI_TEST_KUBECONFIG` names a kubeconfig file (the runtime's
//! `kubeconfig` key); `KERNELCI_TEST_K8S_CONTEXT` picks the context (default: the file's
//! `current-context`), `KERNELCI_TEST_K8S_NAMESPACE` the namespace (default `default`),
//! `KERNELCI_TEST_K8S_IMAGE` the image (default `busybox:1.36`, which the cluster must be
//! able to pull). No cluster can run on the machines this project is built on, so without
//! the variable the test returns at once (and says so).
//!
//! ```sh
//! KERNELCI_TEST_KUBECONFIG=~/.kube/config KERNELCI_TEST_K8S_CONTEXT=kind-kind \
//!   cargo test -p kernelci-sched --features kubernetes --test runtime_kubernetes_real -- --nocapture
//! ```
#![cfg(feature = "kubernetes")]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kernelci_sched::runtime::{JobStatus, JobSubmission, KubernetesRuntime, Runtime};
use serde_json::{Map, Value};

fn current_context(kubeconfig: &str) -> Option<String> {
    let text = std::fs::read_to_string(kubeconfig).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("current-context:"))
        .map(|c| c.trim().trim_matches('"').to_string())
}

#[test]
fn job_runs_on_a_real_cluster() {
    let Ok(kubeconfig) = std::env::var("KERNELCI_TEST_KUBECONFIG") else {
        eprintln!("KERNELCI_TEST_KUBECONFIG is not set: skipping the real-cluster test");
        return;
    };
    let context = std::env::var("KERNELCI_TEST_K8S_CONTEXT")
        .ok()
        .or_else(|| current_context(&kubeconfig))
        .expect("KERNELCI_TEST_K8S_CONTEXT or a current-context");
    let mut fields = Map::new();
    fields.insert("kubeconfig".into(), Value::String(kubeconfig));
    fields.insert("context".into(), Value::String(context));
    if let Ok(ns) = std::env::var("KERNELCI_TEST_K8S_NAMESPACE") {
        fields.insert("namespace".into(), Value::String(ns));
    }
    fields.insert("ttl_seconds_after_finished".into(), Value::from(600));
    let rt = KubernetesRuntime::from_kubeconfig("k8s-real", &fields).unwrap();
    let image =
        std::env::var("KERNELCI_TEST_K8S_IMAGE").unwrap_or_else(|_| "busybox:1.36".to_string());
    let node_id = format!(
        "test{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let job = JobSubmission {
        node_id,
        job_name: "kernelci-rs-real-test".into(),
        definition: "echo \"hello $GREETING\"\nexit 3\n".into(),
        timeout: Duration::from_secs(300),
        env: vec![("GREETING".into(), "from kernelci-rs".into())],
        image: Some(image),
    };
    let h = rt.submit(&job).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        let s = rt.status(&h).unwrap();
        if s.is_final() || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let logs = String::from_utf8_lossy(&rt.logs(&h).unwrap()).into_owned();
    rt.release(&h).unwrap();
    assert_eq!(status, JobStatus::Finished { exit_code: 3 }, "logs: {logs}");
    assert!(logs.contains("hello from kernelci-rs"), "{logs}");
}
