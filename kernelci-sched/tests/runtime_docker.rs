//! The docker runtime against a real Docker engine: exit codes, artifacts, env, logs,
//! timeouts, cancel, release, lost containers, missing images, reaching the host.
//!
//! Needs `KERNELCI_TEST_DOCKER_HOST` (the engine's `unix://` socket) and the local image
//! `local/kernelci-busybox:latest` (or `KERNELCI_TEST_DOCKER_IMAGE`):
//! `bash scripts/docker-local.sh start && . /tmp/kernelci-docker/env`. Without it every test
//! prints why and passes.
#![cfg(feature = "docker")]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use kernelci_sched::runtime::{
    DockerRuntime, JobHandle, JobStatus, JobSubmission, Runtime, RuntimeError,
};
use serde_json::{Map, Value};

fn engine() -> Option<(String, String)> {
    match std::env::var("KERNELCI_TEST_DOCKER_HOST") {
        Ok(h) if !h.is_empty() => Some((
            h,
            std::env::var("KERNELCI_TEST_DOCKER_IMAGE")
                .unwrap_or_else(|_| "local/kernelci-busybox:latest".into()),
        )),
        _ => {
            eprintln!(
                "skipped: KERNELCI_TEST_DOCKER_HOST is not set (bash scripts/docker-local.sh start && . /tmp/kernelci-docker/env)"
            );
            None
        }
    }
}

struct Fixture {
    rt: DockerRuntime,
    image: String,
    _base: tempfile::TempDir,
}

fn fixture_with(fields: Map<String, Value>) -> Option<Fixture> {
    let (host, image) = engine()?;
    let base = tempfile::tempdir().expect("tempdir");
    let rt = DockerRuntime::with_socket("docker-test", base.path().join("jobs"), &fields, &host)
        .expect("engine reachable");
    Some(Fixture {
        rt,
        image,
        _base: base,
    })
}

fn fixture() -> Option<Fixture> {
    fixture_with(Map::new())
}

/// A unique node id per test (tests run in parallel on one engine).
fn node(tag: &str) -> String {
    format!("{tag}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or_default()
}

impl Fixture {
    fn job(&self, node: &str, script: &str, timeout_s: u64) -> JobSubmission {
        JobSubmission {
            node_id: node.into(),
            job_name: "docker-job".into(),
            definition: script.into(),
            timeout: Duration::from_secs(timeout_s),
            env: vec![("KCI_TEST_VAR".into(), "hello from env".into())],
            image: Some(self.image.clone()),
        }
    }

    fn wait_final(&self, h: &JobHandle, limit: Duration) -> JobStatus {
        let start = Instant::now();
        loop {
            let st = self.rt.status(h).expect("status");
            if st.is_final() {
                return st;
            }
            assert!(start.elapsed() < limit, "job still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether the engine still has the container (any state).
fn container_exists(rt: &DockerRuntime, id: &str) -> bool {
    let h = JobHandle {
        runtime: rt.name().into(),
        job_id: id.into(),
    };
    rt.status(&h).expect("status") != JobStatus::Lost
}

#[test]
fn successful_job_artifacts_env_logs_and_release() {
    let Some(f) = fixture() else { return };
    assert_eq!(f.rt.lab_type(), "docker");
    let script = r#"set -e
echo "out: $KCI_TEST_VAR"
echo "err line" >&2
mkdir -p artifacts
echo kernel > artifacts/bzImage
pwd
"#;
    let h =
        f.rt.submit(&f.job(&node("ok"), script, 60))
            .expect("submit");
    assert_eq!(h.runtime, "docker-test");
    assert_eq!(
        f.wait_final(&h, Duration::from_secs(30)),
        JobStatus::Finished { exit_code: 0 }
    );
    let dir = f.rt.workdir(&h).expect("workdir");
    assert!(dir.starts_with(f.rt.base_dir()));
    assert_eq!(
        std::fs::read_to_string(dir.join("artifacts/bzImage")).expect("artifact"),
        "kernel\n"
    );
    assert!(dir.join("job.sh").exists());
    let log = String::from_utf8(f.rt.logs(&h).expect("logs")).expect("utf8");
    assert!(log.contains("out: hello from env"), "{log}");
    assert!(log.contains("err line"), "{log}");
    assert!(log.contains(&dir.to_string_lossy().into_owned()), "{log}");
    f.rt.release(&h).expect("release");
    assert!(!dir.exists(), "job dir removed");
    assert!(!container_exists(&f.rt, &h.job_id), "container removed");
    assert_eq!(f.rt.status(&h).expect("status"), JobStatus::Lost);
    assert!(matches!(f.rt.logs(&h), Err(RuntimeError::UnknownJob(_))));
    // Releasing twice is fine.
    f.rt.release(&h).expect("release again");
}

#[test]
fn exit_code_propagates() {
    let Some(f) = fixture() else { return };
    let h =
        f.rt.submit(&f.job(&node("exit3"), "echo failing; exit 3\n", 60))
            .expect("submit");
    assert_eq!(
        f.wait_final(&h, Duration::from_secs(30)),
        JobStatus::Finished { exit_code: 3 }
    );
    f.rt.release(&h).expect("release");
}

#[test]
fn timeout_kills_the_container() {
    let Some(f) = fixture() else { return };
    let start = Instant::now();
    let h =
        f.rt.submit(&f.job(&node("timeout"), "echo started\nsleep 300\n", 2))
            .expect("submit");
    // Nobody polls: the runtime's own timer enforces the limit.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        f.wait_final(&h, Duration::from_secs(20)),
        JobStatus::TimedOut
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    let log = String::from_utf8(f.rt.logs(&h).expect("logs")).expect("utf8");
    assert!(log.contains("started"), "{log}");
    f.rt.release(&h).expect("release");
    assert!(!container_exists(&f.rt, &h.job_id), "container gone");
}

#[test]
fn cancel_stops_the_job() {
    let Some(f) = fixture() else { return };
    let h =
        f.rt.submit(&f.job(&node("cancel"), "sleep 300\n", 0))
            .expect("submit");
    assert_eq!(f.rt.status(&h).expect("status"), JobStatus::Running);
    let start = Instant::now();
    f.rt.cancel(&h).expect("cancel");
    assert_eq!(
        f.wait_final(&h, Duration::from_secs(15)),
        JobStatus::Cancelled
    );
    assert!(start.elapsed() < Duration::from_secs(15));
    // Cancelling an ended job is a no-op.
    f.rt.cancel(&h).expect("cancel again");
    assert_eq!(f.rt.status(&h).expect("status"), JobStatus::Cancelled);
    f.rt.release(&h).expect("release");
}

#[test]
fn release_of_a_running_job_removes_everything() {
    let Some(f) = fixture() else { return };
    let h =
        f.rt.submit(&f.job(&node("release"), "sleep 300\n", 0))
            .expect("submit");
    let dir = f.rt.workdir(&h).expect("workdir");
    f.rt.release(&h).expect("release");
    assert!(!dir.exists());
    assert_eq!(f.rt.status(&h).expect("status"), JobStatus::Lost);
}

#[test]
fn unknown_and_foreign_handles() {
    let Some(f) = fixture() else { return };
    let unknown = JobHandle {
        runtime: "docker-test".into(),
        job_id: "0123456789abcdef0123456789abcdef".into(),
    };
    assert_eq!(f.rt.status(&unknown).expect("status"), JobStatus::Lost);
    assert!(f.rt.workdir(&unknown).is_none());
    assert!(matches!(
        f.rt.logs(&unknown),
        Err(RuntimeError::UnknownJob(_))
    ));
    f.rt.cancel(&unknown).expect("cancel unknown");
    f.rt.release(&unknown).expect("release unknown");
    let foreign = JobHandle {
        runtime: "shell".into(),
        job_id: "1".into(),
    };
    assert!(matches!(
        f.rt.status(&foreign),
        Err(RuntimeError::WrongRuntime { .. })
    ));
}

#[test]
fn a_new_runtime_still_knows_existing_containers() {
    // Containers survive a restart of the caller: status, logs, workdir and release.
    let Some((host, _)) = engine() else { return };
    let Some(f) = fixture() else { return };
    let h =
        f.rt.submit(&f.job(&node("restart"), "echo hi\nexit 4\n", 60))
            .expect("submit");
    f.wait_final(&h, Duration::from_secs(30));
    let dir = f.rt.workdir(&h).expect("workdir");
    let again = DockerRuntime::with_socket("docker-test", f.rt.base_dir(), &Map::new(), &host)
        .expect("second runtime");
    assert_eq!(
        again.status(&h).expect("status"),
        JobStatus::Finished { exit_code: 4 }
    );
    assert_eq!(again.workdir(&h), Some(dir.clone()));
    assert!(String::from_utf8_lossy(&again.logs(&h).expect("logs")).contains("hi"));
    again.release(&h).expect("release");
    assert!(!dir.exists());
    assert_eq!(f.rt.status(&h).expect("status"), JobStatus::Lost);
}

#[test]
fn missing_image_is_a_clear_submit_error() {
    let Some(f) = fixture() else { return };
    let mut job = f.job(&node("noimage"), "true\n", 60);
    job.image = Some("local/kernelci-no-such-image:never".into());
    let e = f.rt.submit(&job).expect_err("no such image");
    assert!(matches!(e, RuntimeError::InvalidSubmission(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("local/kernelci-no-such-image:never"), "{msg}");
    assert!(msg.contains("never pulls"), "{msg}");
    assert!(!f.rt.job_dir(&job.node_id).exists());
    job.image = None;
    let e = f.rt.submit(&job).expect_err("no image at all");
    assert!(e.to_string().contains("image"), "{e}");
}

#[test]
fn user_and_volumes_from_the_runtime_config() {
    let shared = tempfile::tempdir().expect("tempdir");
    std::fs::write(shared.path().join("data.txt"), "from the host\n").expect("write");
    let env_file = shared.path().join("env");
    std::fs::write(&env_file, "# runtime env\nKCI_FROM_ENV_FILE=yes\n").expect("write");
    let fields: Map<String, Value> = serde_json::from_value(serde_json::json!({
        "user": "65534:65534",
        "volumes": [format!("{}:/shared:ro", shared.path().display())],
        "env_file": env_file.to_string_lossy(),
    }))
    .expect("fields");
    let Some(f) = fixture_with(fields) else {
        return;
    };
    let script = "id -u\ncat /shared/data.txt\necho \"env_file=$KCI_FROM_ENV_FILE\"\nmkdir -p artifacts && echo x > artifacts/x\n";
    let h =
        f.rt.submit(&f.job(&node("user"), script, 60))
            .expect("submit");
    assert_eq!(
        f.wait_final(&h, Duration::from_secs(30)),
        JobStatus::Finished { exit_code: 0 },
        "{}",
        String::from_utf8_lossy(&f.rt.logs(&h).unwrap_or_default())
    );
    let log = String::from_utf8(f.rt.logs(&h).expect("logs")).expect("utf8");
    assert!(log.contains("65534"), "{log}");
    assert!(log.contains("from the host"), "{log}");
    assert!(log.contains("env_file=yes"), "{log}");
    assert!(
        f.rt.workdir(&h)
            .expect("workdir")
            .join("artifacts/x")
            .exists()
    );
    f.rt.release(&h).expect("release");
}

/// A one-request-at-a-time HTTP responder on 0.0.0.0 (reachable from containers).
fn http_responder(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn job_reaches_a_server_on_the_host() {
    let Some(f) = fixture() else { return };
    let port = http_responder("hello from the host");
    let script = format!(
        "wget -q -O - http://host.docker.internal:{port}/ > artifacts.txt && cat artifacts.txt\n"
    );
    let h =
        f.rt.submit(&f.job(&node("host"), &script, 60))
            .expect("submit");
    let st = f.wait_final(&h, Duration::from_secs(30));
    let log = String::from_utf8(f.rt.logs(&h).expect("logs")).expect("utf8");
    assert_eq!(st, JobStatus::Finished { exit_code: 0 }, "{log}");
    assert!(log.contains("hello from the host"), "{log}");
    f.rt.release(&h).expect("release");
}

/// The scheduler calls runtimes from `spawn_blocking` inside a multi-thread tokio runtime;
/// the private client runtime must work there (and when created there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_from_spawn_blocking() {
    let Some((host, image)) = engine() else {
        return;
    };
    let base = tempfile::tempdir().expect("tempdir");
    let jobs = base.path().join("jobs");
    let rt = tokio::task::spawn_blocking(move || {
        DockerRuntime::with_socket("docker-test", jobs, &Map::new(), &host)
    })
    .await
    .expect("join")
    .expect("runtime");
    let rt: std::sync::Arc<dyn Runtime> = std::sync::Arc::new(rt);
    let job = JobSubmission {
        node_id: node("async"),
        job_name: "async".into(),
        definition: "echo from async\nexit 2\n".into(),
        timeout: Duration::from_secs(60),
        env: Vec::new(),
        image: Some(image),
    };
    let h = {
        let rt = rt.clone();
        tokio::task::spawn_blocking(move || rt.submit(&job))
            .await
            .expect("join")
            .expect("submit")
    };
    let start = Instant::now();
    let status = loop {
        let (rt2, h2) = (rt.clone(), h.clone());
        let st = tokio::task::spawn_blocking(move || rt2.status(&h2))
            .await
            .expect("join")
            .expect("status");
        if st.is_final() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, JobStatus::Finished { exit_code: 2 });
    let (rt2, h2) = (rt.clone(), h.clone());
    let log = tokio::task::spawn_blocking(move || rt2.logs(&h2))
        .await
        .expect("join")
        .expect("logs");
    assert!(String::from_utf8_lossy(&log).contains("from async"));
    let (rt2, h2) = (rt.clone(), h.clone());
    tokio::task::spawn_blocking(move || rt2.release(&h2))
        .await
        .expect("join")
        .expect("release");
    // Dropping the runtime inside the async context must not panic either.
    drop(rt);
}
