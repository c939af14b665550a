//! The docker runtime: each job is a container of a local Docker engine (feature `docker`).
//!
//! Same job contract as the shell runtime: the definition is written to
//! `<base>/<node id>/job.sh` (node id sanitized to `[A-Za-z0-9._-]`), and that directory is
//! bind-mounted at the same path in the container and is its working directory, so the job
//! writes `artifacts/` where the caller collects them ([`Runtime::workdir`]). The container
//! runs the submission's `image` with
//! `sh -c 'command -v bash >/dev/null && exec bash job.sh || exec sh job.sh'`, the
//! submission's `env` (after the `env_file` lines), the labels `kernelci.node_id`,
//! `kernelci.runtime` and `kernelci.job_dir`, and `host.docker.internal` mapped to the host
//! (`host-gateway`), so jobs reach an API listening on the host. The job id is the container
//! id.
//!
//! Runtime configuration keys (`runtimes.<name>`, specs/pipeline.md §2.4): `user` (the
//! container's user), `volumes` (list of `host:container[:options]` bind mounts), `env_file`
//! (a file of `KEY=VALUE` lines, read once at start-up; `#` comments and blank lines skipped),
//! `timeout` (seconds the engine may take to answer one API request, default 120; the job's
//! own run time limit is [`JobSubmission::timeout`]).
//!
//! Images are never pulled: a submission whose image the engine does not have fails with an
//! error saying so (upstream's `NO_DOCKER_PULL=1`).
//!
//! The job's time limit is enforced by the runtime (a timer kills the container:
//! [`JobStatus::TimedOut`]); [`Runtime::cancel`] kills it too ([`JobStatus::Cancelled`]).
//! Status comes from the engine (`inspect`): running, or exited with its code; a container
//! killed by the kernel's OOM killer reports `137` and its logs end with a note saying so. The
//! container is kept after it ends (its status and logs come from the engine) until
//! [`Runtime::release`], which removes it and the job directory. A handle whose container is
//! gone is [`JobStatus::Lost`].
//!
//! Containers survive a restart of the caller: a new `DockerRuntime` still answers `status`,
//! `logs`, `workdir` (from the `kernelci.job_dir` label) and `release` for them, but the
//! timeout and the cancel/timeout reasons were in memory (a container killed by the old
//! timer reads as exit code 137).
//!
//! bollard is async; [`Runtime`] is sync. Each `DockerRuntime` owns a private current-thread
//! tokio runtime driven by its own thread ([`super::bridge`]) (`block_on` until the `DockerRuntime` is dropped).
//! A call spawns its request on that runtime and waits for the answer on a std channel, so the
//! methods are safe to call from any thread, including `spawn_blocking` threads of another
//! tokio runtime (calling them from inside an async task works but blocks that task's worker,
//! like any blocking call).

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, ContainerStateStatusEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, LogsOptions,
    RemoveContainerOptions, StartContainerOptions,
};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::bridge::{Bridge, Stalled};
use super::{JobHandle, JobStatus, JobSubmission, Runtime, RuntimeError};

/// What the container runs (in the job directory).
const COMMAND: &str = "command -v bash >/dev/null && exec bash job.sh || exec sh job.sh";
/// Label with the job directory (for `workdir`/`release` after a restart of the caller).
const LABEL_DIR: &str = "kernelci.job_dir";
/// Default seconds the engine may take to answer one request.
const DEFAULT_API_TIMEOUT: u64 = 120;

/// The engine's socket: `DOCKER_HOST` when it is a `unix://` URL, else
/// `unix:///var/run/docker.sock`.
pub fn default_docker_socket() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => h,
        _ => "unix:///var/run/docker.sock".to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_conflict(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

/// Why an engine call failed.
enum CallError {
    /// The engine answered with an error.
    Docker(DockerError),
    /// No answer in time, or the engine thread is gone.
    Transport(String),
}

impl CallError {
    fn not_found(&self) -> bool {
        matches!(self, CallError::Docker(e) if is_not_found(e))
    }

    fn conflict(&self) -> bool {
        matches!(self, CallError::Docker(e) if is_conflict(e))
    }

    fn message(&self) -> String {
        match self {
            CallError::Docker(DockerError::DockerResponseServerError {
                status_code,
                message,
            }) => format!("HTTP {status_code}: {message}"),
            CallError::Docker(e) => e.to_string(),
            CallError::Transport(m) => m.clone(),
        }
    }
}

/// The bollard client and the private tokio runtime it runs on.
struct Engine {
    docker: Docker,
    socket: String,
    api_timeout: Duration,
    /// Dropping it ends the runtime's thread (and every task on it: the timers).
    bridge: Bridge,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the runtime thread, connects and negotiates the API version.
    fn connect(socket: &str, api_timeout: Duration) -> Result<Engine, RuntimeError> {
        let unreachable = |message: String| RuntimeError::Engine {
            context: format!("Docker engine at {socket}"),
            message,
        };
        let bridge = Bridge::start("docker-runtime")
            .map_err(|e| unreachable(format!("cannot start the client runtime: {e}")))?;
        let path = socket.to_string();
        let secs = api_timeout.as_secs().max(1);
        let mut engine = Engine {
            // Replaced below; `connect_with_unix` only builds the client (no IO).
            docker: Docker::connect_with_unix(&path, secs, bollard::API_DEFAULT_VERSION)
                .map_err(|e| unreachable(e.to_string()))?,
            socket: socket.to_string(),
            api_timeout,
            bridge,
        };
        let docker = engine.docker.clone();
        // Debian's Docker 20.10 speaks API 1.41: use the lower of the two versions.
        let docker = engine
            .call(async move { docker.negotiate_version().await })
            .map_err(|e| unreachable(e.message()))?;
        engine.docker = docker;
        Ok(engine)
    }

    /// Runs `fut` on the private runtime and waits for its result (bounded by the API
    /// timeout, plus a margin for the runtime itself).
    fn call<T, F>(&self, fut: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, DockerError>> + Send + 'static,
    {
        let limit = self.api_timeout;
        match self.bridge.call(limit, fut) {
            Ok(r) => r.map_err(CallError::Docker),
            Err(Stalled::Timeout(_)) => Err(CallError::Transport(format!(
                "no answer from {} within {limit:?}",
                self.socket
            ))),
            Err(Stalled::Stopped) => Err(CallError::Transport(
                "the Docker client runtime stopped".into(),
            )),
        }
    }

    fn inspect(&self, id: &str) -> Result<bollard::models::ContainerInspectResponse, CallError> {
        let (docker, id) = (self.docker.clone(), id.to_string());
        self.call(async move {
            docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
        })
    }

    fn kill(&self, id: &str) -> Result<(), CallError> {
        let (docker, id) = (self.docker.clone(), id.to_string());
        self.call(async move {
            docker
                .kill_container(
                    &id,
                    Some(KillContainerOptions {
                        signal: "SIGKILL".into(),
                    }),
                )
                .await
        })
    }

    fn remove(&self, id: &str) -> Result<(), CallError> {
        let (docker, id) = (self.docker.clone(), id.to_string());
        self.call(async move {
            docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    }),
                )
                .await
        })
    }
}

/// What this process knows about a job beyond the engine's state.
#[derive(Debug)]
struct JobEntry {
    dir: PathBuf,
    /// Why the container was killed (cancel, timeout), if it was.
    stopping: Mutex<Option<JobStatus>>,
    /// The timeout timer (aborted on release).
    timer: Mutex<Option<tokio::task::AbortHandle>>,
}

/// The runtime configuration keys this runtime reads.
#[derive(Debug, Clone, Default)]
struct Settings {
    user: Option<String>,
    volumes: Vec<String>,
    env_file: Vec<String>,
}

/// Jobs as containers of a local Docker engine (see the module documentation).
#[derive(Debug)]
pub struct DockerRuntime {
    name: String,
    base: PathBuf,
    settings: Settings,
    engine: Arc<Engine>,
    jobs: Mutex<HashMap<String, Arc<JobEntry>>>,
}

fn field_str(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, RuntimeError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(RuntimeError::InvalidSubmission(format!(
            "runtime key {key}: expected a string, got {other}"
        ))),
    }
}

/// Reads an env file: `KEY=VALUE` lines, `#` comments and blank lines skipped.
fn read_env_file(path: &Path) -> Result<Vec<String>, RuntimeError> {
    let text = fs::read_to_string(path).map_err(|source| RuntimeError::Io {
        context: format!("env_file {}", path.display()),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        match line.split_once('=') {
            Some((k, _)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                out.push(line.to_string());
            }
            _ => {
                return Err(RuntimeError::InvalidSubmission(format!(
                    "env_file {} line {}: expected KEY=VALUE",
                    path.display(),
                    n + 1
                )));
            }
        }
    }
    Ok(out)
}

impl Settings {
    fn from_fields(fields: &Map<String, Value>) -> Result<(Settings, Duration), RuntimeError> {
        let user = field_str(fields, "user")?.filter(|u| !u.is_empty());
        let volumes = match fields.get("volumes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut v = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) if s.split(':').count() >= 2 && !s.starts_with(':') => {
                            v.push(s.to_string());
                        }
                        _ => {
                            return Err(RuntimeError::InvalidSubmission(format!(
                                "runtime key volumes: expected host:container, got {item}"
                            )));
                        }
                    }
                }
                v
            }
            Some(other) => {
                return Err(RuntimeError::InvalidSubmission(format!(
                    "runtime key volumes: expected a list of host:container, got {other}"
                )));
            }
        };
        let env_file = match field_str(fields, "env_file")? {
            Some(p) if !p.is_empty() => read_env_file(Path::new(&p))?,
            _ => Vec::new(),
        };
        let timeout = match fields.get("timeout") {
            None | Some(Value::Null) => DEFAULT_API_TIMEOUT,
            Some(v) => v.as_u64().filter(|t| *t > 0).ok_or_else(|| {
                RuntimeError::InvalidSubmission(format!(
                    "runtime key timeout: expected a positive number of seconds, got {v}"
                ))
            })?,
        };
        Ok((
            Settings {
                user,
                volumes,
                env_file,
            },
            Duration::from_secs(timeout),
        ))
    }
}

impl DockerRuntime {
    /// A docker runtime named `name` on the engine at [`default_docker_socket`], keeping job
    /// directories under `base` (created if missing), configured by the runtime entry's keys
    /// (`user`, `volumes`, `env_file`, `timeout`). Fails if the engine does not answer.
    pub fn new(
        name: impl Into<String>,
        base: impl Into<PathBuf>,
        fields: &Map<String, Value>,
    ) -> Result<Self, RuntimeError> {
        Self::with_socket(name, base, fields, &default_docker_socket())
    }

    /// Same as [`DockerRuntime::new`] on the engine at `socket` (`unix:///path` or a path).
    pub fn with_socket(
        name: impl Into<String>,
        base: impl Into<PathBuf>,
        fields: &Map<String, Value>,
        socket: &str,
    ) -> Result<Self, RuntimeError> {
        let name = name.into();
        let base = base.into();
        let (settings, api_timeout) = Settings::from_fields(fields)?;
        let socket = if socket.starts_with("unix://") {
            socket.to_string()
        } else if socket.starts_with('/') {
            format!("unix://{socket}")
        } else {
            return Err(RuntimeError::Engine {
                context: format!("Docker engine at {socket}"),
                message: "only unix:// sockets are supported".into(),
            });
        };
        let engine = Engine::connect(&socket, api_timeout)?;
        fs::create_dir_all(&base).map_err(|source| RuntimeError::Io {
            context: format!("create {}", base.display()),
            source,
        })?;
        // Bind mounts need an absolute host path.
        let base = fs::canonicalize(&base).map_err(|source| RuntimeError::Io {
            context: format!("resolve {}", base.display()),
            source,
        })?;
        Ok(Self {
            name,
            base,
            settings,
            engine: Arc::new(engine),
            jobs: Mutex::new(HashMap::new()),
        })
    }

    /// The engine's socket (`unix:///...`).
    pub fn socket(&self) -> &str {
        &self.engine.socket
    }

    /// The directory holding the job directories.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// The directory a job of this node runs in.
    pub fn job_dir(&self, node_id: &str) -> PathBuf {
        self.base.join(super::file_name_part(node_id))
    }

    fn check(&self, handle: &JobHandle) -> Result<Option<Arc<JobEntry>>, RuntimeError> {
        if handle.runtime != self.name {
            return Err(RuntimeError::WrongRuntime {
                runtime: self.name.clone(),
                handle_runtime: handle.runtime.clone(),
            });
        }
        Ok(lock(&self.jobs).get(&handle.job_id).cloned())
    }

    fn engine_err(&self, what: String) -> impl FnOnce(CallError) -> RuntimeError {
        let socket = self.engine.socket.clone();
        move |e| RuntimeError::Engine {
            context: format!("{what} (Docker engine at {socket})"),
            message: e.message(),
        }
    }

    fn io_err(context: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
        move |source| RuntimeError::Io { context, source }
    }

    /// Kills a running container, recording `why` as its final status. Waits (briefly) until
    /// the engine sees it stopped. No-op for a container that already ended.
    fn kill_job(
        &self,
        id: &str,
        entry: Option<&JobEntry>,
        why: JobStatus,
    ) -> Result<(), RuntimeError> {
        kill_container(&self.engine, id, entry, why)
            .map_err(self.engine_err(format!("kill container {id}")))
    }

    /// The job directory of a container this runtime does not remember (from its label).
    fn labelled_dir(&self, id: &str) -> Option<PathBuf> {
        let info = self.engine.inspect(id).ok()?;
        let labels = info.config?.labels?;
        if labels.get("kernelci.runtime") != Some(&self.name) {
            return None;
        }
        let dir = PathBuf::from(labels.get(LABEL_DIR)?);
        // Only ever a directory of ours.
        (dir.parent() == Some(self.base.as_path())).then_some(dir)
    }

    fn create(&self, job: &JobSubmission, image: &str, dir: &Path) -> Result<String, RuntimeError> {
        let dir_str = dir.to_string_lossy().into_owned();
        let mut env = self.settings.env_file.clone();
        env.extend(job.env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut binds = vec![format!("{dir_str}:{dir_str}")];
        binds.extend(self.settings.volumes.iter().cloned());
        let labels = HashMap::from([
            ("kernelci.node_id".to_string(), job.node_id.clone()),
            ("kernelci.runtime".to_string(), self.name.clone()),
            ("kernelci.job_name".to_string(), job.job_name.clone()),
            (LABEL_DIR.to_string(), dir_str.clone()),
        ]);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            cmd: Some(vec![COMMAND.into()]),
            working_dir: Some(dir_str),
            env: Some(env),
            labels: Some(labels),
            user: self.settings.user.clone(),
            attach_stdin: Some(false),
            open_stdin: Some(false),
            tty: Some(false),
            host_config: Some(HostConfig {
                binds: Some(binds),
                extra_hosts: Some(vec!["host.docker.internal:host-gateway".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let docker = self.engine.docker.clone();
        let created = self
            .engine
            .call(async move {
                docker
                    .create_container(None::<CreateContainerOptions>, body)
                    .await
            })
            .map_err(self.engine_err(format!("create a container of {image}")))?;
        let id = created.id;
        let docker = self.engine.docker.clone();
        let start_id = id.clone();
        let started = self.engine.call(async move {
            docker
                .start_container(&start_id, None::<StartContainerOptions>)
                .await
        });
        if let Err(e) = started {
            let _ = self.engine.remove(&id);
            return Err(self.engine_err(format!("start container {id}"))(e));
        }
        Ok(id)
    }

    fn arm_timer(&self, id: &str, entry: &Arc<JobEntry>, timeout: Duration) {
        if timeout.is_zero() {
            return;
        }
        let engine = Arc::downgrade(&self.engine);
        let (id, weak_entry) = (id.to_string(), Arc::downgrade(entry));
        let task = self.engine.bridge.spawn(async move {
            tokio::time::sleep(timeout).await;
            // The kill itself blocks on the engine: off this runtime's only thread.
            let _ = tokio::task::spawn_blocking(move || {
                if let (Some(engine), Some(entry)) = (engine.upgrade(), weak_entry.upgrade()) {
                    let _ = kill_container(&engine, &id, Some(&entry), JobStatus::TimedOut);
                }
            })
            .await;
        });
        *lock(&entry.timer) = Some(task.abort_handle());
    }
}

/// Kills container `id` if it runs, with `why` recorded on `entry`; waits up to 10 s for the
/// engine to report it stopped.
fn kill_container(
    engine: &Engine,
    id: &str,
    entry: Option<&JobEntry>,
    why: JobStatus,
) -> Result<(), CallError> {
    let info = match engine.inspect(id) {
        Ok(i) => i,
        Err(e) if e.not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    if !state_running(&info) {
        return Ok(());
    }
    if let Some(entry) = entry {
        let mut stopping = lock(&entry.stopping);
        if stopping.is_none() {
            *stopping = Some(why);
        }
    }
    match engine.kill(id) {
        Ok(()) => {}
        // Gone or no longer running: it ended by itself just now.
        Err(e) if e.not_found() || e.conflict() => {
            if let Some(entry) = entry
                && !engine
                    .inspect(id)
                    .map(|i| state_running(&i))
                    .unwrap_or(false)
            {
                // Ended on its own before the kill: its own exit code stands.
                let mut stopping = lock(&entry.stopping);
                if *stopping == Some(why) {
                    *stopping = None;
                }
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match engine.inspect(id) {
            Ok(i) if state_running(&i) => std::thread::sleep(Duration::from_millis(50)),
            _ => break,
        }
    }
    Ok(())
}

fn state_running(info: &bollard::models::ContainerInspectResponse) -> bool {
    let Some(state) = &info.state else {
        return false;
    };
    match state.status {
        Some(
            ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::DEAD
            | ContainerStateStatusEnum::REMOVING,
        ) => false,
        Some(_) => true,
        None => state.running.unwrap_or(false),
    }
}

impl Runtime for DockerRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn lab_type(&self) -> &str {
        "docker"
    }

    fn submit(&self, job: &JobSubmission) -> Result<JobHandle, RuntimeError> {
        if job.node_id.is_empty() || job.job_name.is_empty() {
            return Err(RuntimeError::InvalidSubmission(
                "node id and job name must not be empty".into(),
            ));
        }
        let Some(image) = job.image.as_deref().filter(|i| !i.is_empty()) else {
            return Err(RuntimeError::InvalidSubmission(format!(
                "job {} has no image: jobs of a docker runtime need `image:`",
                job.job_name
            )));
        };
        let dir = self.job_dir(&job.node_id);
        {
            let busy: Vec<String> = lock(&self.jobs)
                .iter()
                .filter(|(_, e)| e.dir == dir)
                .map(|(id, _)| id.clone())
                .collect();
            for id in busy {
                if self
                    .engine
                    .inspect(&id)
                    .map(|i| state_running(&i))
                    .unwrap_or(false)
                {
                    return Err(RuntimeError::InvalidSubmission(format!(
                        "a job is already running in {} (container {id})",
                        dir.display()
                    )));
                }
            }
        }
        // Never pull: the image must be there.
        let docker = self.engine.docker.clone();
        let name = image.to_string();
        match self
            .engine
            .call(async move { docker.inspect_image(&name).await })
        {
            Ok(_) => {}
            Err(e) if e.not_found() => {
                return Err(RuntimeError::InvalidSubmission(format!(
                    "image {image} is not present in the Docker engine at {} (this runtime never pulls: build or load it there first)",
                    self.engine.socket
                )));
            }
            Err(e) => return Err(self.engine_err(format!("inspect image {image}"))(e)),
        }
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(Self::io_err(format!("remove {}", dir.display())))?;
        }
        fs::create_dir_all(&dir).map_err(Self::io_err(format!("create {}", dir.display())))?;
        if self.settings.user.is_some() {
            // Another user in the container must be able to write artifacts/.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))
                .map_err(Self::io_err(format!("chmod {}", dir.display())))?;
        }
        let script = dir.join("job.sh");
        fs::write(&script, &job.definition)
            .map_err(Self::io_err(format!("write {}", script.display())))?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .map_err(Self::io_err(format!("chmod {}", script.display())))?;
        let id = match self.create(job, image, &dir) {
            Ok(id) => id,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let entry = Arc::new(JobEntry {
            dir,
            stopping: Mutex::new(None),
            timer: Mutex::new(None),
        });
        lock(&self.jobs).insert(id.clone(), Arc::clone(&entry));
        self.arm_timer(&id, &entry, job.timeout);
        Ok(JobHandle {
            runtime: self.name.clone(),
            job_id: id,
        })
    }

    fn status(&self, handle: &JobHandle) -> Result<JobStatus, RuntimeError> {
        let entry = self.check(handle)?;
        let info = match self.engine.inspect(&handle.job_id) {
            Ok(i) => i,
            Err(e) if e.not_found() => return Ok(JobStatus::Lost),
            Err(e) => {
                return Err(self
                    .engine_err(format!("inspect container {}", handle.job_id))(
                    e
                ));
            }
        };
        if state_running(&info) {
            return Ok(JobStatus::Running);
        }
        if let Some(why) = entry.as_ref().and_then(|e| *lock(&e.stopping)) {
            return Ok(why);
        }
        let state = info.state.unwrap_or_default();
        let code = state.exit_code.unwrap_or(-1);
        let code = if state.oom_killed == Some(true) && code == 0 {
            137
        } else {
            i32::try_from(code).unwrap_or(-1)
        };
        Ok(JobStatus::Finished { exit_code: code })
    }

    fn cancel(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        let entry = self.check(handle)?;
        self.kill_job(&handle.job_id, entry.as_deref(), JobStatus::Cancelled)
    }

    fn logs(&self, handle: &JobHandle) -> Result<Vec<u8>, RuntimeError> {
        self.check(handle)?;
        let docker = self.engine.docker.clone();
        let id = handle.job_id.clone();
        let collected = self.engine.call(async move {
            let mut stream = docker.logs(
                &id,
                Some(LogsOptions {
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                }),
            );
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(chunk?.as_ref());
            }
            Ok(out)
        });
        let mut out = match collected {
            Ok(out) => out,
            Err(e) if e.not_found() => return Err(RuntimeError::UnknownJob(handle.job_id.clone())),
            Err(e) => {
                return Err(self
                    .engine_err(format!("logs of container {}", handle.job_id))(
                    e
                ));
            }
        };
        if let Ok(info) = self.engine.inspect(&handle.job_id)
            && info.state.and_then(|s| s.oom_killed) == Some(true)
        {
            out.extend_from_slice(b"\n[kernelci docker runtime] the container was OOM-killed\n");
        }
        Ok(out)
    }

    fn workdir(&self, handle: &JobHandle) -> Option<PathBuf> {
        match self.check(handle).ok()? {
            Some(e) => Some(e.dir.clone()),
            None => self.labelled_dir(&handle.job_id),
        }
    }

    fn release(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        let entry = self.check(handle)?;
        let dir = match &entry {
            Some(e) => Some(e.dir.clone()),
            None => self.labelled_dir(&handle.job_id),
        };
        if let Some(e) = &entry
            && let Some(timer) = lock(&e.timer).take()
        {
            timer.abort();
        }
        // Force-removal kills a running container.
        match self.engine.remove(&handle.job_id) {
            Ok(()) => {}
            Err(e) if e.not_found() => {}
            Err(e) => {
                return Err(self
                    .engine_err(format!("remove container {}", handle.job_id))(
                    e
                ));
            }
        }
        lock(&self.jobs).remove(&handle.job_id);
        if let Some(dir) = dir
            && dir.exists()
        {
            fs::remove_dir_all(&dir).map_err(Self::io_err(format!("remove {}", dir.display())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_fields() {
        let fields: Map<String, Value> = serde_json::from_str(
            r#"{"user": "1000:1000", "volumes": ["/data:/data:ro", "/cache:/cache"], "timeout": 30}"#,
        )
        .expect("json");
        let (s, t) = Settings::from_fields(&fields).expect("settings");
        assert_eq!(s.user.as_deref(), Some("1000:1000"));
        assert_eq!(s.volumes, ["/data:/data:ro", "/cache:/cache"]);
        assert_eq!(t, Duration::from_secs(30));
        let bad: Map<String, Value> =
            serde_json::from_str(r#"{"volumes": ["nocolon"]}"#).expect("json");
        let e = Settings::from_fields(&bad).expect_err("bad volume");
        assert!(e.to_string().contains("host:container"), "{e}");
        let bad: Map<String, Value> = serde_json::from_str(r#"{"timeout": "x"}"#).expect("json");
        assert!(Settings::from_fields(&bad).is_err());
    }

    #[test]
    fn env_file_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("env");
        fs::write(&p, "# comment\n\nA=1\nexport B=two words\nC=\n").expect("write");
        assert_eq!(
            read_env_file(&p).expect("env"),
            ["A=1", "B=two words", "C="]
        );
        fs::write(&p, "oops\n").expect("write");
        let e = read_env_file(&p).expect_err("bad line");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn unreachable_engine_names_the_socket() {
        let fields = Map::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let e = DockerRuntime::with_socket(
            "docker",
            dir.path(),
            &fields,
            "unix:///nonexistent/kernelci/docker.sock",
        )
        .expect_err("no engine");
        assert!(
            e.to_string().contains("/nonexistent/kernelci/docker.sock"),
            "{e}"
        );
        let e = DockerRuntime::with_socket("docker", dir.path(), &fields, "tcp://h:2375")
            .expect_err("tcp");
        assert!(e.to_string().contains("unix://"), "{e}");
    }
}
