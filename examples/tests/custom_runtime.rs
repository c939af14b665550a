//! Runs the `custom_runtime` example: a checkout made available goes through the real
//! scheduler (Maestro API in-process over HTTP) to the example's `ThreadRuntime`, and the
//! job's exit code and artifacts come back as a passed kbuild.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "../custom_runtime.rs"]
mod example;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kernelci_sched::runtime::{JobHandle, JobStatus, JobSubmission, Runtime};

#[tokio::test]
async fn a_job_goes_through_the_custom_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let world = example::start(dir.path()).await.unwrap();
    let commit = "cd".repeat(20);
    let checkout = example::available_checkout(&world.ctx, &commit)
        .await
        .unwrap();
    let kbuild = example::finished_kbuild(&world.ctx, &checkout, Duration::from_secs(60))
        .await
        .unwrap();
    let kid = kbuild["id"].as_str().unwrap();

    // Scheduled once, on our runtime, and collected: exit 0 + a kernel image = pass.
    assert_eq!(kbuild["name"], "kbuild-x86");
    assert_eq!(kbuild["data"]["runtime"], "threads");
    assert_eq!(kbuild["data"]["job_id"], "thread-1");
    assert_eq!(kbuild["result"], "pass", "{kbuild:#}");
    assert_eq!(kbuild["state"], "available", "{kbuild:#}");
    assert!(
        kbuild["artifacts"]["kernel"]
            .as_str()
            .is_some_and(|u| u.ends_with("/bzImage")),
        "{kbuild:#}"
    );
    assert_eq!(kbuild["data"]["arch"], "x86_64");
    assert_eq!(
        kbuild["data"]["schedule_key"],
        format!("{checkout}/kbuild-x86/threads/thread/0")
    );

    // The runtime got the definition rendered from templates/thread/kbuild.jinja2.
    let submitted = world.runtime.submitted();
    assert_eq!(submitted.len(), 1, "{submitted:?}");
    assert_eq!(submitted[0].node_id, kid);
    assert_eq!(
        submitted[0].definition.trim_end(),
        format!("build kbuild-x86 of node {kid}: x86_64 tinyconfig with gcc")
    );
    // The job's log was kept as an artifact, then the job was released (directory gone).
    assert!(kbuild["artifacts"]["job_log"].is_string(), "{kbuild:#}");
    assert!(!dir.path().join("jobs/thread-1").exists());
}

fn submission(timeout: Duration) -> JobSubmission {
    JobSubmission {
        node_id: "n1".into(),
        job_name: "j".into(),
        definition: "d".into(),
        timeout,
        env: Vec::new(),
        image: None,
    }
}

async fn wait_final(rt: &example::ThreadRuntime, h: &JobHandle) -> JobStatus {
    for _ in 0..200 {
        let s = rt.status(h).unwrap();
        if s.is_final() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job did not end");
}

#[tokio::test]
async fn the_runtime_reports_exit_codes_timeouts_cancels_and_lost_jobs() {
    let dir = tempfile::tempdir().unwrap();
    // A body that fails fast, or waits for the stop flag when the definition says so.
    let body: Arc<example::JobBody> = Arc::new(
        |job: &JobSubmission,
         _dir: &std::path::Path,
         log: &mut dyn std::io::Write,
         stop: &AtomicBool| {
            if job.definition == "wait" {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return 0;
            }
            let _ = log.write_all(b"failing\n");
            1
        },
    );
    let rt = example::ThreadRuntime::new("t", dir.path(), body);

    let h = rt.submit(&submission(Duration::ZERO)).unwrap();
    assert_eq!(
        wait_final(&rt, &h).await,
        JobStatus::Finished { exit_code: 1 }
    );
    assert_eq!(rt.logs(&h).unwrap(), b"failing\n");
    let workdir = rt.workdir(&h).unwrap();
    assert!(workdir.join("artifacts").is_dir());
    rt.release(&h).unwrap();
    assert!(!workdir.exists());
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Lost);

    let mut waiting = submission(Duration::from_millis(50));
    waiting.definition = "wait".into();
    let h = rt.submit(&waiting).unwrap();
    assert_eq!(wait_final(&rt, &h).await, JobStatus::TimedOut);

    waiting.timeout = Duration::ZERO;
    let h = rt.submit(&waiting).unwrap();
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Running);
    rt.cancel(&h).unwrap();
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Cancelled);

    let foreign = JobHandle {
        runtime: "other".into(),
        job_id: h.job_id.clone(),
    };
    assert!(rt.status(&foreign).is_err());
    assert_eq!(rt.submitted().len(), 3);
}
