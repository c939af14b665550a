//! The `Runtime` trait: where rendered job definitions run.
//!
//! Synchronous and object-safe (`Box<dyn Runtime>`), so that the shell runtime, and later
//! Docker, Kubernetes and LAVA, sit behind one interface. A runtime never decides a job's
//! result: it reports how the job ended ([`JobStatus`]) and gives access to its logs and,
//! for local runtimes, its working directory, from which the caller collects artifacts.
//!
//! A [`JobHandle`] is serializable so that it can be stored in the node (`data.job_id`) and
//! given back after a restart; a runtime that does not know a handle any more reports
//! [`JobStatus::Lost`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod priority;
#[cfg(feature = "shell")]
mod shell;
#[cfg(feature = "shell")]
pub use shell::ShellRuntime;
#[cfg(any(feature = "docker", feature = "kubernetes"))]
mod bridge;
#[cfg(feature = "docker")]
mod docker;
#[cfg(feature = "docker")]
pub use docker::{DockerRuntime, default_docker_socket};
#[cfg(feature = "kubernetes")]
mod kubernetes;
#[cfg(feature = "kubernetes")]
pub use kubernetes::{ClientFactory, KubernetesRuntime, MAX_DEFINITION, job_object_name};

/// A job to run: the rendered definition plus what the runtime needs around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSubmission {
    /// The job node's id (part of the job's directory or name).
    pub node_id: String,
    /// The job's configuration name (e.g. `kbuild-gcc-12-x86`).
    pub job_name: String,
    /// The rendered job definition (a script for the shell runtime).
    pub definition: String,
    /// Hard limit of the job's run time; `Duration::ZERO` means no limit.
    pub timeout: Duration,
    /// Environment variables added to the job's environment.
    pub env: Vec<(String, String)>,
    /// The container image the job runs in (the job's `image:`), for container runtimes;
    /// the shell and LAVA runtimes ignore it.
    pub image: Option<String>,
}

/// Identifies a submitted job; storable (JSON) and valid across restarts of the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobHandle {
    /// Name of the runtime configuration that ran the job (e.g. `shell`).
    pub runtime: String,
    /// The runtime's id of the job (PID, container id, LAVA job id, ...).
    pub job_id: String,
}

/// How a job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobStatus {
    /// Still running (or queued).
    Running,
    /// Ended by itself. A job killed by a signal reports `128 + signal`, as shells do.
    Finished {
        /// The job's exit code.
        exit_code: i32,
    },
    /// Killed because it ran longer than its timeout.
    TimedOut,
    /// Stopped by [`Runtime::cancel`].
    Cancelled,
    /// The runtime does not know this job (e.g. after a restart of the caller).
    Lost,
}

impl JobStatus {
    /// True once the job will not change any more (everything but `Running`).
    pub fn is_final(&self) -> bool {
        !matches!(self, JobStatus::Running)
    }
}

/// Errors of a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The handle belongs to another runtime.
    #[error("job handle of runtime {handle_runtime:?} given to runtime {runtime:?}")]
    WrongRuntime {
        /// This runtime's name.
        runtime: String,
        /// The handle's runtime name.
        handle_runtime: String,
    },
    /// The runtime does not know this job.
    #[error("unknown job {0}")]
    UnknownJob(String),
    /// The submission cannot be run (e.g. empty node id, a job already running there).
    #[error("invalid submission: {0}")]
    InvalidSubmission(String),
    /// The job could not be started (e.g. `bash` is missing).
    #[error("cannot start job: {context}: {source}")]
    Spawn {
        /// What was being started.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The container engine refused a request or could not be reached.
    #[error("{context}: {message}")]
    Engine {
        /// What was being done (names the engine's socket when it is unreachable).
        context: String,
        /// The engine's answer or the transport error.
        message: String,
    },
    /// A filesystem or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A place where jobs run. All methods are synchronous and must not panic.
pub trait Runtime: Send + Sync {
    /// The runtime configuration name (e.g. `shell`, `lava-collabora`).
    fn name(&self) -> &str;
    /// The kind of runtime: `shell`, `docker`, `kubernetes`, `lava`, ... (selects templates).
    fn lab_type(&self) -> &str;
    /// Starts a job.
    fn submit(&self, job: &JobSubmission) -> Result<JobHandle, RuntimeError>;
    /// Where the job is, without blocking.
    fn status(&self, handle: &JobHandle) -> Result<JobStatus, RuntimeError>;
    /// Stops a job (no-op for a job that already ended).
    fn cancel(&self, handle: &JobHandle) -> Result<(), RuntimeError>;
    /// The captured stdout + stderr of the job so far.
    fn logs(&self, handle: &JobHandle) -> Result<Vec<u8>, RuntimeError>;
    /// The job's working directory (holding `artifacts/`), for local runtimes.
    fn workdir(&self, handle: &JobHandle) -> Option<PathBuf>;
    /// Forgets the job and removes what it left behind (stops it first if still running);
    /// call it once the results were collected.
    fn release(&self, handle: &JobHandle) -> Result<(), RuntimeError>;
    /// Template variables this runtime adds to each job it runs, given the job's base
    /// priority (0-100, [`priority::base_priority`]). LAVA adds `priority` (scaled to the
    /// lab's range) and `notify` (the callback block); the default adds nothing.
    fn template_vars(&self, _base_priority: u8) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
    /// Whether this runtime takes one more job for `device_type` at `base_priority` now.
    /// `Err(reason)` asks the scheduler to skip the job (LAVA's queue limit, specs/pipeline.md
    /// §3.4). A runtime that cannot tell (its lab unreachable) answers `Ok`: fail open.
    fn queue_check(&self, _device_type: &str, _base_priority: u8) -> Result<(), String> {
        Ok(())
    }
}

/// A node id or job name made safe as a job directory name: replaces everything but `[A-Za-z0-9._-]` with `-` (and a leading `.` too).
#[cfg_attr(not(any(feature = "shell", feature = "docker")), allow(dead_code))]
fn file_name_part(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "-");
    }
    out
}
