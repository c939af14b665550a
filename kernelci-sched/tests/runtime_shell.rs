//! The shell runtime: exit codes, logs, timeouts (whole process group), cancel, release.
#![cfg(feature = "shell")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use kernelci_sched::runtime::{
    JobHandle, JobStatus, JobSubmission, Runtime, RuntimeError, ShellRuntime,
};

fn job(node: &str, name: &str, script: &str, timeout_s: u64) -> JobSubmission {
    JobSubmission {
        node_id: node.into(),
        job_name: name.into(),
        definition: script.into(),
        timeout: Duration::from_secs(timeout_s),
        env: vec![("KCI_TEST_VAR".into(), "hello from env".into())],
        image: None,
    }
}

fn wait_final(rt: &dyn Runtime, h: &JobHandle, limit: Duration) -> JobStatus {
    let start = Instant::now();
    loop {
        let st = rt.status(h).expect("status");
        if st.is_final() {
            return st;
        }
        assert!(start.elapsed() < limit, "job still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// True if the process is gone (or a zombie waiting for a reaper).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_dead(pid: u32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn read_pid(dir: &Path, file: &str) -> u32 {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(dir.join(file))
            && let Ok(pid) = s.trim().parse()
        {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no {file}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runtime(base: &Path) -> ShellRuntime {
    ShellRuntime::new("shell-test", base)
        .expect("runtime")
        .with_kill_grace(Duration::from_millis(500))
}

#[test]
fn successful_job_logs_env_and_workdir() {
    let base = tempfile::tempdir().expect("tempdir");
    let rt = runtime(base.path());
    assert_eq!(rt.name(), "shell-test");
    assert_eq!(rt.lab_type(), "shell");
    let h = rt
        .submit(&job(
            "node1",
            "kbuild gcc/12:x86",
            "echo out line\necho \"$KCI_TEST_VAR\"\necho err line >&2\nmkdir -p artifacts\necho data > artifacts/result.txt\npwd\necho \"leak=${CARGO_MANIFEST_DIR:-none} path=${PATH:+set}\"\n",
            30,
        ))
        .expect("submit");
    assert_eq!(h.runtime, "shell-test");
    assert!(h.job_id.parse::<u32>().is_ok(), "job id is the pid");
    assert_eq!(
        wait_final(&rt, &h, Duration::from_secs(10)),
        JobStatus::Finished { exit_code: 0 }
    );
    // Sanitized directory name under the base.
    let dir = rt.workdir(&h).expect("workdir");
    assert_eq!(dir, base.path().join("node1-kbuild-gcc-12-x86"));
    assert_eq!(dir, rt.job_dir("node1", "kbuild gcc/12:x86"));
    let mode = std::fs::metadata(dir.join("job.sh"))
        .expect("job.sh")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_to_string(dir.join("artifacts/result.txt")).expect("artifact"),
        "data\n"
    );
    let logs = String::from_utf8(rt.logs(&h).expect("logs")).expect("utf8");
    assert!(logs.contains("out line\n"), "{logs}");
    assert!(logs.contains("hello from env\n"), "{logs}");
    assert!(logs.contains("err line\n"), "{logs}");
    // The server's environment (here cargo's, in a real server its secrets) stays out;
    // PATH is kept.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(logs.contains("leak=none path=set\n"), "{logs}");
    assert!(
        logs.contains(&format!("{}\n", dir.display())),
        "cwd is the job dir: {logs}"
    );
    // Status is stable once final.
    assert_eq!(
        rt.status(&h).expect("status"),
        JobStatus::Finished { exit_code: 0 }
    );
    rt.release(&h).expect("release");
    assert!(!dir.exists(), "release removes the job directory");
    assert_eq!(rt.status(&h).expect("status"), JobStatus::Lost);
    assert!(matches!(rt.logs(&h), Err(RuntimeError::UnknownJob(_))));
    assert_eq!(rt.workdir(&h), None);
    rt.release(&h).expect("releasing twice is fine");
}

#[test]
fn failing_job_reports_its_exit_code() {
    let base = tempfile::tempdir().expect("tempdir");
    let rt = runtime(base.path());
    let h = rt
        .submit(&job("n2", "fail", "echo about to fail\nexit 1\n", 30))
        .expect("submit");
    assert_eq!(
        wait_final(&rt, &h, Duration::from_secs(10)),
        JobStatus::Finished { exit_code: 1 }
    );
    let h2 = rt
        .submit(&job("n2", "infra", "set -e\nfalse\necho unreachable\n", 30))
        .expect("submit");
    assert_eq!(
        wait_final(&rt, &h2, Duration::from_secs(10)),
        JobStatus::Finished { exit_code: 1 }
    );
    assert!(!String::from_utf8_lossy(&rt.logs(&h2).expect("logs")).contains("unreachable"));
    let h3 = rt
        .submit(&job("n2", "two", "exit 2\n", 30))
        .expect("submit");
    assert_eq!(
        wait_final(&rt, &h3, Duration::from_secs(10)),
        JobStatus::Finished { exit_code: 2 }
    );
    // Killed by a signal from inside: 128 + signal, like a shell reports it.
    let h4 = rt
        .submit(&job("n2", "sig", "kill -KILL $$\n", 30))
        .expect("submit");
    assert_eq!(
        wait_final(&rt, &h4, Duration::from_secs(10)),
        JobStatus::Finished { exit_code: 137 }
    );
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let base = tempfile::tempdir().expect("tempdir");
    let rt = runtime(base.path());
    // A background child, a grandchild in a subshell, a TERM-ignoring child, and the leader.
    let script = "sleep 300 &\necho $! > child.pid\n( sleep 301 & echo $! > grandchild.pid; wait ) &\n\
                  ( trap '' TERM; echo $BASHPID > stubborn.pid; while :; do sleep 0.1; done ) &\n\
                  echo started\nsleep 302\n";
    let start = Instant::now();
    let h = rt.submit(&job("n3", "slow", script, 1)).expect("submit");
    let dir = rt.workdir(&h).expect("workdir");
    let child = read_pid(&dir, "child.pid");
    let grandchild = read_pid(&dir, "grandchild.pid");
    let stubborn = read_pid(&dir, "stubborn.pid");
    let leader: u32 = h.job_id.parse().expect("pid");
    // Nobody polls: the watchdog enforces the timeout by itself.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(rt.status(&h).expect("status"), JobStatus::TimedOut);
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    for pid in [leader, child, grandchild, stubborn] {
        assert!(wait_dead(pid), "pid {pid} survived the timeout");
    }
    assert!(String::from_utf8_lossy(&rt.logs(&h).expect("logs")).contains("started"));
    rt.release(&h).expect("release");
    assert!(!dir.exists());
}

#[test]
fn cancel_and_release_of_running_jobs() {
    let base = tempfile::tempdir().expect("tempdir");
    let rt = runtime(base.path());
    let h = rt
        .submit(&job("n4", "long", "sleep 300\n", 600))
        .expect("submit");
    assert_eq!(rt.status(&h).expect("status"), JobStatus::Running);
    // A second job in the same directory while the first runs is refused.
    assert!(matches!(
        rt.submit(&job("n4", "long", "true\n", 600)),
        Err(RuntimeError::InvalidSubmission(_))
    ));
    rt.cancel(&h).expect("cancel");
    assert_eq!(rt.status(&h).expect("status"), JobStatus::Cancelled);
    assert!(wait_dead(h.job_id.parse().expect("pid")));
    rt.cancel(&h).expect("cancel again is a no-op");
    assert_eq!(rt.status(&h).expect("status"), JobStatus::Cancelled);
    // Re-running in the same directory once the first is over starts from a clean dir.
    std::fs::write(rt.workdir(&h).expect("dir").join("stale"), "x").expect("write");
    let h2 = rt
        .submit(&job("n4", "long", "sleep 0.1\nls\n", 600))
        .expect("resubmit");
    assert_eq!(
        wait_final(&rt, &h2, Duration::from_secs(10)),
        JobStatus::Finished { exit_code: 0 }
    );
    assert!(!String::from_utf8_lossy(&rt.logs(&h2).expect("logs")).contains("stale"));

    // Release of a running job stops it and cleans up.
    let h3 = rt
        .submit(&job("n5", "long", "sleep 300\n", 600))
        .expect("submit");
    let dir = rt.workdir(&h3).expect("dir");
    rt.release(&h3).expect("release");
    assert!(!dir.exists());
    assert!(wait_dead(h3.job_id.parse().expect("pid")));
    assert_eq!(rt.status(&h3).expect("status"), JobStatus::Lost);
}

#[test]
fn leftover_background_processes_die_with_the_job() {
    let base = tempfile::tempdir().expect("tempdir");
    let rt = runtime(base.path());
    let h = rt
        .submit(&job(
            "n6",
            "bg",
            "sleep 300 &\necho $! > bg.pid\nexit 0\n",
            600,
        ))
        .expect("submit");
    let dir = rt.workdir(&h).expect("dir");
    let bg = read_pid(&dir, "bg.pid");
    assert_eq!(
        wait_final(&rt, &h, Duration::from_secs(10)),
        JobStatus::Finished { exit_code: 0 }
    );
    assert!(wait_dead(bg), "background process outlived its job");
}

#[test]
fn unknown_handles_wrong_runtime_and_missing_bash() {
    let base = tempfile::tempdir().expect("tempdir");
    let rt = runtime(base.path());
    // A handle from before a restart: lost.
    let old = JobHandle {
        runtime: "shell-test".into(),
        job_id: "999999999".into(),
    };
    assert_eq!(rt.status(&old).expect("status"), JobStatus::Lost);
    assert_eq!(rt.workdir(&old), None);
    rt.cancel(&old)
        .expect("cancel of an unknown job is a no-op");
    let other = JobHandle {
        runtime: "docker".into(),
        job_id: "1".into(),
    };
    assert!(matches!(
        rt.status(&other),
        Err(RuntimeError::WrongRuntime { .. })
    ));
    // Handles survive JSON.
    let json = serde_json::to_string(&old).expect("json");
    assert_eq!(json, r#"{"runtime":"shell-test","job_id":"999999999"}"#);
    assert_eq!(
        serde_json::from_str::<JobHandle>(&json).expect("parse"),
        old
    );
    let st = serde_json::to_value(JobStatus::Finished { exit_code: 2 }).expect("json");
    assert_eq!(
        st,
        serde_json::json!({"status": "finished", "exit_code": 2})
    );

    let no_bash = ShellRuntime::new("shell-test", base.path())
        .expect("runtime")
        .with_bash("/nonexistent/bash");
    assert!(matches!(
        no_bash.submit(&job("n7", "x", "true\n", 10)),
        Err(RuntimeError::Spawn { .. })
    ));
    assert!(matches!(
        rt.submit(&job("", "x", "true\n", 10)),
        Err(RuntimeError::InvalidSubmission(_))
    ));

    // Object safety: usable as a trait object.
    let boxed: Box<dyn Runtime> = Box::new(runtime(base.path()));
    let h = boxed
        .submit(&job("n8", "dyn", "exit 3\n", 10))
        .expect("submit");
    assert_eq!(
        wait_final(boxed.as_ref(), &h, Duration::from_secs(10)),
        JobStatus::Finished { exit_code: 3 }
    );
}
