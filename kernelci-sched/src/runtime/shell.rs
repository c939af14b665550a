//! The shell runtime: each job is a local `bash` process in its own directory.
//!
//! A job runs in `<base>/<node_id>-<job name>/` (both sanitized to `[A-Za-z0-9._-]`): the
//! definition is written as `job.sh` (mode 755) and run as `bash job.sh` with that directory
//! as the current directory, stdin from `/dev/null`, stdout and stderr both captured to
//! `job.log`, the caller's environment plus the submission's `env`. The job id is the PID.
//!
//! The job is started in its own process group (`process_group(0)`, so its PGID is its PID).
//! Stopping a job (timeout, [`Runtime::cancel`], [`Runtime::release`]) signals the whole group:
//! `kill -TERM -- -<pgid>`, a grace period, then `kill -KILL -- -<pgid>`. The signals are sent
//! by running the `kill` program (`std::process::Command`), because this crate forbids
//! `unsafe` and has no libc binding; if `kill` cannot be run, only the leader is killed
//! (`Child::kill`). When a job ends by itself, what is left of its group gets the same
//! treatment, so background processes never outlive their job.
//!
//! Each job has a watchdog thread that reaps it as soon as it ends and enforces its timeout
//! even when nobody polls [`Runtime::status`]. Job state lives in memory: after a restart of
//! the caller every handle is [`JobStatus::Lost`] (the processes themselves keep running
//! until they end or their group is killed by someone else).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::{JobHandle, JobStatus, JobSubmission, Runtime, RuntimeError};

/// How often the watchdog checks on a job.
const POLL: Duration = Duration::from_millis(100);

/// The only variables of the server's environment a job sees (plus its own `env`).
pub const INHERITED_ENV: [&str; 8] = [
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "USER",
    "http_proxy",
];

/// Jobs as local processes (see the module documentation).
#[derive(Debug)]
pub struct ShellRuntime {
    name: String,
    base: PathBuf,
    bash: PathBuf,
    kill_grace: Duration,
    jobs: Mutex<HashMap<String, Arc<JobEntry>>>,
}

#[derive(Debug)]
struct JobEntry {
    dir: PathBuf,
    pgid: u32,
    state: Mutex<JobState>,
    /// Dropping it stops the watchdog thread.
    stop: Mutex<Option<Sender<()>>>,
}

#[derive(Debug)]
struct JobState {
    child: Child,
    /// Set once the job is over.
    done: Option<JobStatus>,
    /// Why the job is being stopped, if it is.
    stopping: Option<JobStatus>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Sends `signal` to the process group `pgid` with the `kill` program. False if it failed
/// (no such group any more, or `kill` could not be run).
fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl JobEntry {
    /// Reaps the leader without blocking; records the final status when it ended.
    fn poll(&self) -> JobStatus {
        let mut st = lock(&self.state);
        if let Some(done) = st.done {
            return done;
        }
        match st.child.try_wait() {
            Ok(Some(status)) => {
                let fin = st.stopping.unwrap_or(JobStatus::Finished {
                    exit_code: exit_code(status),
                });
                st.done = Some(fin);
                drop(st);
                // Leftover background processes of the job die with it.
                self.finish_group();
                fin
            }
            Ok(None) => JobStatus::Running,
            Err(_) => {
                st.done = Some(JobStatus::Lost);
                JobStatus::Lost
            }
        }
    }

    /// Kills what remains of the group of a job whose leader has ended.
    fn finish_group(&self) {
        if signal_group(self.pgid, "TERM") {
            thread::sleep(Duration::from_millis(50));
            signal_group(self.pgid, "KILL");
        }
        *lock(&self.stop) = None;
    }

    /// Stops a running job: TERM to the group, wait up to `grace`, KILL to the group.
    /// `why` becomes the final status (unless the job had already ended).
    fn stop(&self, why: JobStatus, grace: Duration) {
        {
            let mut st = lock(&self.state);
            if st.done.is_some() {
                return;
            }
            if let Ok(Some(_)) = st.child.try_wait() {
                drop(st);
                self.poll();
                return;
            }
            st.stopping = Some(why);
        }
        let sent = signal_group(self.pgid, "TERM");
        let deadline = Instant::now() + grace;
        loop {
            {
                let mut st = lock(&self.state);
                if !sent {
                    let _ = st.child.kill();
                }
                if let Ok(Some(_)) = st.child.try_wait() {
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Whatever ignored TERM, and children that outlived the leader.
        if !signal_group(self.pgid, "KILL") {
            let _ = lock(&self.state).child.kill();
        }
        let mut st = lock(&self.state);
        if st.done.is_none() {
            // Reap the leader; KILL cannot be ignored, so this returns promptly.
            let _ = st.child.wait();
            st.done = Some(why);
        }
        drop(st);
        *lock(&self.stop) = None;
    }
}

impl ShellRuntime {
    /// A shell runtime named `name` (the runtime configuration name) keeping job directories
    /// under `base` (created if missing).
    pub fn new(name: impl Into<String>, base: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let base = base.into();
        fs::create_dir_all(&base).map_err(|source| RuntimeError::Io {
            context: format!("create {}", base.display()),
            source,
        })?;
        Ok(Self {
            name: name.into(),
            base,
            bash: PathBuf::from("bash"),
            kill_grace: Duration::from_secs(5),
            jobs: Mutex::new(HashMap::new()),
        })
    }

    /// Uses this shell instead of `bash` from `PATH`.
    pub fn with_bash(mut self, bash: impl Into<PathBuf>) -> Self {
        self.bash = bash.into();
        self
    }

    /// Time between SIGTERM and SIGKILL when a job is stopped (default 5 s).
    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// The directory holding the job directories.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// The directory a job of this node and name runs in.
    pub fn job_dir(&self, node_id: &str, job_name: &str) -> PathBuf {
        self.base.join(format!(
            "{}-{}",
            super::file_name_part(node_id),
            super::file_name_part(job_name)
        ))
    }

    fn entry(&self, handle: &JobHandle) -> Result<Option<Arc<JobEntry>>, RuntimeError> {
        if handle.runtime != self.name {
            return Err(RuntimeError::WrongRuntime {
                runtime: self.name.clone(),
                handle_runtime: handle.runtime.clone(),
            });
        }
        Ok(lock(&self.jobs).get(&handle.job_id).cloned())
    }

    fn io_err(context: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
        move |source| RuntimeError::Io { context, source }
    }

    fn spawn_watchdog(entry: Arc<JobEntry>, timeout: Duration, grace: Duration) {
        let (tx, rx) = mpsc::channel::<()>();
        *lock(&entry.stop) = Some(tx);
        let start = Instant::now();
        let spawned = thread::Builder::new()
            .name(format!("shell-job-{}", entry.pgid))
            .spawn(move || {
                loop {
                    match rx.recv_timeout(POLL) {
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    if entry.poll().is_final() {
                        return;
                    }
                    if !timeout.is_zero() && start.elapsed() >= timeout {
                        entry.stop(JobStatus::TimedOut, grace);
                        return;
                    }
                }
            });
        // Without a watchdog, `status` still reaps the job; the timeout is then not enforced.
        drop(spawned);
    }
}

impl Runtime for ShellRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn lab_type(&self) -> &str {
        "shell"
    }

    fn submit(&self, job: &JobSubmission) -> Result<JobHandle, RuntimeError> {
        if job.node_id.is_empty() || job.job_name.is_empty() {
            return Err(RuntimeError::InvalidSubmission(
                "node id and job name must not be empty".into(),
            ));
        }
        let dir = self.job_dir(&job.node_id, &job.job_name);
        {
            let jobs = lock(&self.jobs);
            let busy = jobs.values().any(|e| e.dir == dir && !e.poll().is_final());
            if busy {
                return Err(RuntimeError::InvalidSubmission(format!(
                    "a job is already running in {}",
                    dir.display()
                )));
            }
        }
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(Self::io_err(format!("remove {}", dir.display())))?;
        }
        fs::create_dir_all(&dir).map_err(Self::io_err(format!("create {}", dir.display())))?;
        let script = dir.join("job.sh");
        fs::write(&script, &job.definition)
            .map_err(Self::io_err(format!("write {}", script.display())))?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .map_err(Self::io_err(format!("chmod {}", script.display())))?;
        let log_path = dir.join("job.log");
        let log = fs::File::create(&log_path)
            .map_err(Self::io_err(format!("create {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(Self::io_err(format!("dup {}", log_path.display())))?;
        // A job runs untrusted code (a kernel tree's Makefiles, patches): it gets a minimal
        // environment, never the server's (which holds secrets and tokens).
        let inherited = INHERITED_ENV
            .iter()
            .filter_map(|k| std::env::var_os(k).map(|v| (*k, v)));
        let child = Command::new(&self.bash)
            .arg("job.sh")
            .current_dir(&dir)
            .env_clear()
            .envs(inherited)
            .envs(job.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                context: format!("{} job.sh in {}", self.bash.display(), dir.display()),
                source,
            })?;
        let pid = child.id();
        let entry = Arc::new(JobEntry {
            dir,
            pgid: pid,
            state: Mutex::new(JobState {
                child,
                done: None,
                stopping: None,
            }),
            stop: Mutex::new(None),
        });
        lock(&self.jobs).insert(pid.to_string(), Arc::clone(&entry));
        Self::spawn_watchdog(entry, job.timeout, self.kill_grace);
        Ok(JobHandle {
            runtime: self.name.clone(),
            job_id: pid.to_string(),
        })
    }

    fn status(&self, handle: &JobHandle) -> Result<JobStatus, RuntimeError> {
        Ok(match self.entry(handle)? {
            Some(e) => e.poll(),
            None => JobStatus::Lost,
        })
    }

    fn cancel(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        if let Some(e) = self.entry(handle)? {
            e.stop(JobStatus::Cancelled, self.kill_grace);
        }
        Ok(())
    }

    fn logs(&self, handle: &JobHandle) -> Result<Vec<u8>, RuntimeError> {
        let e = self
            .entry(handle)?
            .ok_or_else(|| RuntimeError::UnknownJob(handle.job_id.clone()))?;
        let path = e.dir.join("job.log");
        fs::read(&path).map_err(Self::io_err(format!("read {}", path.display())))
    }

    fn workdir(&self, handle: &JobHandle) -> Option<PathBuf> {
        self.entry(handle).ok().flatten().map(|e| e.dir.clone())
    }

    fn release(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        let Some(e) = self.entry(handle)? else {
            return Ok(());
        };
        if !e.poll().is_final() {
            e.stop(JobStatus::Cancelled, self.kill_grace);
        }
        lock(&self.jobs).remove(&handle.job_id);
        if e.dir.exists() {
            fs::remove_dir_all(&e.dir)
                .map_err(Self::io_err(format!("remove {}", e.dir.display())))?;
        }
        Ok(())
    }
}
