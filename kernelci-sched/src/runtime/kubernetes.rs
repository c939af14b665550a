//! The kubernetes runtime: each job is a Kubernetes `batch/v1` Job (feature `kubernetes`).
//!
//! **What a job must do here.** The Job's pod runs on a cluster node, not on the scheduler's
//! host, so [`Runtime::workdir`] is `None` and the scheduler cannot read its `artifacts/`:
//! the job uploads them itself. The scheduler puts `KCI_ARTIFACTS_URL` and
//! `KCI_ARTIFACTS_TOKEN` in the submission's `env` (a per-node token of the pipeline API);
//! our bash templates (`templates/shell/*.jinja2`, used as `shell/kbuild.jinja2` etc.) then
//! `PUT` every file of `artifacts/` there when they end, and `artifacts.json` last, from
//! which the scheduler collects the node as for a local job. The pod only needs network
//! access to the instance's public URL. Without a manifest, only the exit code and the logs
//! count ([`Runtime::status`], [`Runtime::logs`]).
//!
//! The Job (built with the typed `k8s_openapi` structs, so it is always a valid manifest):
//! named `kci-<node id>-<job name>` (lowercased, `[a-z0-9-]`, at most 63 characters; a long
//! name is cut and ends with 8 hex digits of a hash of the whole name, so it stays
//! deterministic: submitting the same node twice is refused with `AlreadyExists`), in the
//! configured namespace, labels `kernelci.org/node-id`, `kernelci.org/runtime` and
//! `kernelci.org/job-name` (on the Job and its pod), `backoffLimit: 0`, `completions: 1`,
//! `activeDeadlineSeconds` from [`JobSubmission::timeout`] (none for zero),
//! `ttlSecondsAfterFinished`, one container `kernelci` of [`JobSubmission::image`] with the
//! submission's `env`, `restartPolicy: Never`, `terminationGracePeriodSeconds: 10`, the
//! configured `resources`.
//!
//! The rendered definition is passed as an argument:
//! `sh -c 'command -v bash >/dev/null && exec bash -c "$1" kci-job || exec sh -c "$1" kci-job' kci-job <definition>`
//! (bash when the image has it, as the docker runtime does). No ConfigMap, so one request per
//! submission and nothing else to clean up; the price is Linux's limit of 128 KiB for one
//! argument, so a definition larger than [`MAX_DEFINITION`] is refused with an error saying so.
//!
//! Runtime configuration keys (`runtimes.<name>`, specs/pipeline.md §2.4): `context` (a
//! kubeconfig context, or a list of them: each submission goes to the one with the fewest
//! `Pending` pods in the namespace, as upstream: 3 attempts per context, an unreachable one
//! counts as 1000, stop early at 0), `api_timeout` (seconds for one API request, default 30),
//! and ours: `kubeconfig` (a kubeconfig file; default `KUBECONFIG`, else `~/.kube/config`),
//! `namespace` (default `default`), `ttl_seconds_after_finished` (default 1800, as
//! upstream; the scheduler reads the status well before), `resources` (a Kubernetes
//! `ResourceRequirements` object, e.g. `{requests: {cpu: "7", memory: 8Gi}, limits: {cpu: "8"}}`).
//!
//! The job id is `<context>/<job name>` (split at the last `/`: context names may contain
//! `/`), so a handle stays valid across restarts of the caller. Status is a GET of the Job:
//! condition `Complete` or `status.succeeded` → exit code 0; condition `Failed` with reason
//! `DeadlineExceeded` → [`JobStatus::TimedOut`]; `Failed` or `status.failed` → the exit code
//! of the pod's `kernelci` container when readable, else 1; otherwise running (or pending).
//! A Job that is gone is [`JobStatus::Lost`] ([`JobStatus::Cancelled`] if this process
//! cancelled it). Logs are those of the Job's newest pod (`job-name=<name>`), empty while no
//! pod exists. [`Runtime::cancel`] and [`Runtime::release`] delete the Job with
//! `propagationPolicy: Background` (the pod goes with it).
//!
//! kube-rs is async; [`Runtime`] is sync: every request runs on a private current-thread tokio
//! runtime ([`super::bridge`]), bounded by `api_timeout`.
//!
//! RBAC needed in the namespace: `create`, `get`, `delete` on `jobs.batch`; `list` on
//! `pods`; `get` on `pods/log`.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Pod, PodSpec, PodTemplateSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::{Map, Value};

use super::bridge::{Bridge, Stalled};
use super::{JobHandle, JobStatus, JobSubmission, Runtime, RuntimeError};

/// The largest definition passed as a container argument (Linux: 128 KiB per argument).
pub const MAX_DEFINITION: usize = 120 * 1024;
/// The container's name in the pod.
const CONTAINER: &str = "kernelci";
/// What the container runs; `$1` is the definition.
const WRAPPER: &str =
    r#"command -v bash >/dev/null && exec bash -c "$1" kci-job || exec sh -c "$1" kci-job"#;
/// Default seconds for one API request (upstream's `api_timeout`).
const DEFAULT_API_TIMEOUT: u64 = 30;
/// Default `ttlSecondsAfterFinished` (upstream's template).
const DEFAULT_TTL: i32 = 1800;
/// Attempts to count the Pending pods of a context.
const LOAD_ATTEMPTS: usize = 3;
/// The load of a context that cannot be reached.
const UNREACHABLE_LOAD: usize = 1000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A kubeconfig context and its client.
struct Cluster {
    context: String,
    client: kube::Client,
}

/// The runtime configuration keys this runtime reads.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    contexts: Vec<String>,
    kubeconfig: Option<String>,
    namespace: String,
    api_timeout: Duration,
    ttl: i32,
    resources: Option<ResourceRequirements>,
}

fn invalid(key: &str, what: &str, got: &Value) -> RuntimeError {
    RuntimeError::InvalidSubmission(format!("runtime key {key}: expected {what}, got {got}"))
}

impl Settings {
    fn from_fields(fields: &Map<String, Value>) -> Result<Settings, RuntimeError> {
        let contexts = match fields.get("context") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    other => Err(invalid("context", "a list of context names", other)),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid("context", "a context name or a list", other)),
        };
        let kubeconfig = match fields.get("kubeconfig") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(other) => return Err(invalid("kubeconfig", "a file path", other)),
        };
        let namespace = match fields.get("namespace") {
            None | Some(Value::Null) => "default".to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => return Err(invalid("namespace", "a namespace name", other)),
        };
        let api_timeout = match fields.get("api_timeout") {
            None | Some(Value::Null) => DEFAULT_API_TIMEOUT,
            Some(v) => v
                .as_f64()
                .filter(|t| *t >= 1.0)
                .map(|t| t as u64)
                .ok_or_else(|| invalid("api_timeout", "a number of seconds >= 1", v))?,
        };
        let ttl = match fields.get("ttl_seconds_after_finished") {
            None | Some(Value::Null) => DEFAULT_TTL,
            Some(v) => v
                .as_i64()
                .and_then(|t| i32::try_from(t).ok())
                .filter(|t| *t >= 0)
                .ok_or_else(|| invalid("ttl_seconds_after_finished", "seconds >= 0", v))?,
        };
        let resources = match fields.get("resources") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value::<ResourceRequirements>(v.clone()).map_err(|e| {
                    RuntimeError::InvalidSubmission(format!(
                        "runtime key resources: not a Kubernetes ResourceRequirements: {e}"
                    ))
                })?,
            ),
        };
        Ok(Settings {
            contexts,
            kubeconfig,
            namespace,
            api_timeout: Duration::from_secs(api_timeout),
            ttl,
            resources,
        })
    }
}

/// Makes a client for one context; called with the runtime's private tokio runtime entered
/// (`kube::Client::new` spawns its buffer task there).
pub type ClientFactory = Box<dyn FnOnce() -> Result<kube::Client, String> + Send>;

/// Jobs as Kubernetes Jobs (see the module documentation).
pub struct KubernetesRuntime {
    name: String,
    settings: Settings,
    clusters: Vec<Cluster>,
    /// Job ids this process cancelled (their Job is gone: reported as `Cancelled`).
    cancelled: Mutex<HashSet<String>>,
    /// Last: the clients' tasks end with it.
    bridge: Bridge,
}

impl std::fmt::Debug for KubernetesRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRuntime")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why a request failed.
enum CallError {
    Kube(kube::Error),
    Stalled(Stalled),
}

impl CallError {
    fn code(&self) -> Option<u16> {
        match self {
            CallError::Kube(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            CallError::Kube(kube::Error::Api(s)) => {
                format!("HTTP {} {}: {}", s.code, s.reason, s.message)
            }
            CallError::Kube(e) => e.to_string(),
            CallError::Stalled(Stalled::Timeout(t)) => format!("no answer within {t:?}"),
            CallError::Stalled(Stalled::Stopped) => "the client runtime stopped".into(),
        }
    }
}

/// `kci-<node id>-<job name>` as a DNS-1123 label (see the module documentation).
pub fn job_object_name(node_id: &str, job_name: &str) -> String {
    let raw = format!("kci-{node_id}-{job_name}");
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    let mut name = name.trim_end_matches('-').to_string();
    if name.len() > 63 {
        // FNV-1a of the whole raw name: deterministic and distinct for distinct nodes.
        let mut h: u32 = 0x811c_9dc5;
        for b in raw.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        name.truncate(54);
        let cut = name.trim_end_matches('-').len();
        name.truncate(cut);
        name = format!("{name}-{h:08x}");
    }
    name
}

/// A label value: `[A-Za-z0-9._-]`, at most 63 characters, alphanumeric at both ends.
fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

impl KubernetesRuntime {
    /// A kubernetes runtime named `name` configured by the runtime entry's keys; one client
    /// per context named in `context`, from the kubeconfig (the `kubeconfig` key, else
    /// `KUBECONFIG`, else `~/.kube/config`). A context that cannot be loaded is an error
    /// naming it.
    pub fn from_kubeconfig(
        name: impl Into<String>,
        fields: &Map<String, Value>,
    ) -> Result<KubernetesRuntime, RuntimeError> {
        let name = name.into();
        let settings = Settings::from_fields(fields)?;
        if settings.contexts.is_empty() {
            return Err(RuntimeError::InvalidSubmission(format!(
                "runtime {name}: no `context` (a kubeconfig context or a list of them)"
            )));
        }
        let bridge = start_bridge(&name)?;
        let mut clusters = Vec::new();
        for context in &settings.contexts {
            let options = kube::config::KubeConfigOptions {
                context: Some(context.clone()),
                ..Default::default()
            };
            let limit = settings.api_timeout;
            let file = settings.kubeconfig.clone();
            let loaded = bridge
                .call(limit, async move {
                    match file {
                        Some(path) => {
                            let kc = kube::config::Kubeconfig::read_from(&path)?;
                            kube::Config::from_custom_kubeconfig(kc, &options).await
                        }
                        None => kube::Config::from_kubeconfig(&options).await,
                    }
                })
                .map_err(|s| CallError::Stalled(s).message())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .and_then(|mut config| {
                    config.read_timeout = Some(limit);
                    bridge.enter(|| kube::Client::try_from(config).map_err(|e| e.to_string()))
                });
            let client = loaded.map_err(|message| RuntimeError::Engine {
                context: format!("runtime {name}: kubeconfig context {context}"),
                message,
            })?;
            clusters.push(Cluster {
                context: context.clone(),
                client,
            });
        }
        Ok(KubernetesRuntime {
            name,
            settings,
            clusters,
            cancelled: Mutex::new(HashSet::new()),
            bridge,
        })
    }

    /// A kubernetes runtime with clients made by `factories` (context name, client maker)
    /// instead of the kubeconfig: for tests with a mock transport
    /// (`kube::Client::new(service, namespace)`) or callers with their own client stack.
    /// The `context` key of `fields` is ignored.
    pub fn with_clients(
        name: impl Into<String>,
        fields: &Map<String, Value>,
        factories: Vec<(String, ClientFactory)>,
    ) -> Result<KubernetesRuntime, RuntimeError> {
        let name = name.into();
        let mut settings = Settings::from_fields(fields)?;
        if factories.is_empty() {
            return Err(RuntimeError::InvalidSubmission(format!(
                "runtime {name}: no cluster"
            )));
        }
        let bridge = start_bridge(&name)?;
        let mut clusters = Vec::new();
        for (context, make) in factories {
            let client = bridge.enter(make).map_err(|message| RuntimeError::Engine {
                context: format!("runtime {name}: context {context}"),
                message,
            })?;
            clusters.push(Cluster { context, client });
        }
        settings.contexts = clusters.iter().map(|c| c.context.clone()).collect();
        Ok(KubernetesRuntime {
            name,
            settings,
            clusters,
            cancelled: Mutex::new(HashSet::new()),
            bridge,
        })
    }

    /// The Job this runtime submits for `job` (public so that tests and operators can look
    /// at the manifest).
    pub fn build_job(&self, job: &JobSubmission) -> Result<Job, RuntimeError> {
        if job.node_id.is_empty() || job.job_name.is_empty() {
            return Err(RuntimeError::InvalidSubmission(
                "node id and job name must not be empty".into(),
            ));
        }
        let Some(image) = job.image.as_deref().filter(|i| !i.is_empty()) else {
            return Err(RuntimeError::InvalidSubmission(format!(
                "job {} has no image: jobs of a kubernetes runtime need `image:`",
                job.job_name
            )));
        };
        if job.definition.len() > MAX_DEFINITION {
            return Err(RuntimeError::InvalidSubmission(format!(
                "job {}: the rendered definition is {} bytes, more than the {MAX_DEFINITION} a kubernetes job can take as its argument",
                job.job_name,
                job.definition.len()
            )));
        }
        let name = job_object_name(&job.node_id, &job.job_name);
        let labels = BTreeMap::from([
            (
                "kernelci.org/node-id".to_string(),
                label_value(&job.node_id),
            ),
            ("kernelci.org/runtime".to_string(), label_value(&self.name)),
            (
                "kernelci.org/job-name".to_string(),
                label_value(&job.job_name),
            ),
        ]);
        let env: Vec<EnvVar> = job
            .env
            .iter()
            .map(|(k, v)| EnvVar {
                name: k.clone(),
                value: Some(v.clone()),
                ..Default::default()
            })
            .collect();
        let deadline = i64::try_from(job.timeout.as_secs()).unwrap_or(i64::MAX);
        Ok(Job {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(self.settings.namespace.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                completions: Some(1),
                active_deadline_seconds: (!job.timeout.is_zero()).then_some(deadline.max(1)),
                ttl_seconds_after_finished: Some(self.settings.ttl),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".into()),
                        termination_grace_period_seconds: Some(10),
                        containers: vec![Container {
                            name: CONTAINER.into(),
                            image: Some(image.to_string()),
                            command: Some(vec![
                                "sh".into(),
                                "-c".into(),
                                WRAPPER.into(),
                                "kci-job".into(),
                                job.definition.clone(),
                            ]),
                            env: (!env.is_empty()).then_some(env),
                            resources: self.settings.resources.clone(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        })
    }

    fn call<T, F>(&self, fut: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, kube::Error>> + Send + 'static,
    {
        match self.bridge.call(self.settings.api_timeout, fut) {
            Ok(r) => r.map_err(CallError::Kube),
            Err(s) => Err(CallError::Stalled(s)),
        }
    }

    fn engine_err(&self, context: &str, what: String) -> impl FnOnce(CallError) -> RuntimeError {
        let context = format!(
            "Kubernetes context {context}, namespace {}: {what}",
            self.settings.namespace
        );
        move |e| RuntimeError::Engine {
            context,
            message: e.message(),
        }
    }

    fn jobs(&self, cluster: &Cluster) -> Api<Job> {
        Api::namespaced(cluster.client.clone(), &self.settings.namespace)
    }

    fn pods(&self, cluster: &Cluster) -> Api<Pod> {
        Api::namespaced(cluster.client.clone(), &self.settings.namespace)
    }

    /// Pending pods in the namespace, up to [`LOAD_ATTEMPTS`] tries; unreachable: 1000.
    fn load(&self, cluster: &Cluster) -> usize {
        let lp = ListParams::default().fields("status.phase=Pending");
        for _ in 0..LOAD_ATTEMPTS {
            let pods = self.pods(cluster);
            let lp = lp.clone();
            if let Ok(list) = self.call(async move { pods.list(&lp).await }) {
                return list.items.len();
            }
        }
        UNREACHABLE_LOAD
    }

    /// The least loaded cluster (the only one without asking when there is one).
    fn pick(&self) -> &Cluster {
        if self.clusters.len() == 1 {
            return &self.clusters[0];
        }
        let mut best: Option<(usize, &Cluster)> = None;
        for cluster in &self.clusters {
            let load = self.load(cluster);
            if best.is_none_or(|(b, _)| load < b) {
                best = Some((load, cluster));
            }
            if load == 0 {
                break;
            }
        }
        best.map_or(&self.clusters[0], |(_, c)| c)
    }

    /// The handle's cluster and Job name.
    fn locate(&self, handle: &JobHandle) -> Result<(&Cluster, String), RuntimeError> {
        if handle.runtime != self.name {
            return Err(RuntimeError::WrongRuntime {
                runtime: self.name.clone(),
                handle_runtime: handle.runtime.clone(),
            });
        }
        let unknown = || RuntimeError::UnknownJob(handle.job_id.clone());
        let (context, job) = handle.job_id.rsplit_once('/').ok_or_else(unknown)?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.context == context)
            .ok_or_else(unknown)?;
        Ok((cluster, job.to_string()))
    }

    /// The Job's pods, newest first.
    fn job_pods(&self, cluster: &Cluster, job: &str) -> Result<Vec<Pod>, CallError> {
        let pods = self.pods(cluster);
        let lp = ListParams::default().labels(&format!("job-name={job}"));
        let mut items = self.call(async move { pods.list(&lp).await })?.items;
        items.sort_by(|a, b| {
            b.metadata
                .creation_timestamp
                .cmp(&a.metadata.creation_timestamp)
        });
        Ok(items)
    }

    /// The exit code of the Job's container, if a pod says.
    fn exit_code(&self, cluster: &Cluster, job: &str) -> Option<i32> {
        let pods = self.job_pods(cluster, job).ok()?;
        pods.iter().find_map(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find(|s| s.name == CONTAINER)?
                .state
                .as_ref()?
                .terminated
                .as_ref()
                .map(|t| t.exit_code)
        })
    }

    fn delete(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        let (cluster, job) = self.locate(handle)?;
        let api = self.jobs(cluster);
        let name = job.clone();
        match self.call(async move { api.delete(&name, &DeleteParams::background()).await }) {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(404) => Ok(()),
            Err(e) => Err(self
                .engine_err(&cluster.context, format!("delete Job {job}"))(
                e
            )),
        }
    }
}

fn start_bridge(name: &str) -> Result<Bridge, RuntimeError> {
    Bridge::start("kubernetes-runtime").map_err(|e| RuntimeError::Engine {
        context: format!("runtime {name}"),
        message: format!("cannot start the client runtime: {e}"),
    })
}

impl Runtime for KubernetesRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn lab_type(&self) -> &str {
        "kubernetes"
    }

    fn submit(&self, job: &JobSubmission) -> Result<JobHandle, RuntimeError> {
        let manifest = self.build_job(job)?;
        let name = manifest.metadata.name.clone().unwrap_or_default();
        let cluster = self.pick();
        let api = self.jobs(cluster);
        match self.call(async move { api.create(&PostParams::default(), &manifest).await }) {
            Ok(_) => {}
            Err(e) if e.code() == Some(409) => {
                return Err(RuntimeError::InvalidSubmission(format!(
                    "Job {name} already exists in Kubernetes context {}, namespace {} (node {} was submitted already; release that job first)",
                    cluster.context, self.settings.namespace, job.node_id
                )));
            }
            Err(e) => {
                return Err(self
                    .engine_err(&cluster.context, format!("create Job {name}"))(
                    e
                ));
            }
        }
        let job_id = format!("{}/{name}", cluster.context);
        lock(&self.cancelled).remove(&job_id);
        Ok(JobHandle {
            runtime: self.name.clone(),
            job_id,
        })
    }

    fn status(&self, handle: &JobHandle) -> Result<JobStatus, RuntimeError> {
        let (cluster, job) = self.locate(handle)?;
        let api = self.jobs(cluster);
        let name = job.clone();
        let found = match self.call(async move { api.get(&name).await }) {
            Ok(j) => j,
            Err(e) if e.code() == Some(404) => {
                return Ok(if lock(&self.cancelled).contains(&handle.job_id) {
                    JobStatus::Cancelled
                } else {
                    JobStatus::Lost
                });
            }
            Err(e) => {
                return Err(self.engine_err(&cluster.context, format!("get Job {job}"))(
                    e,
                ));
            }
        };
        let status = found.status.unwrap_or_default();
        let conditions = status.conditions.unwrap_or_default();
        let is_true = |c: &&k8s_openapi::api::batch::v1::JobCondition| c.status == "True";
        let complete = conditions
            .iter()
            .filter(is_true)
            .any(|c| c.type_ == "Complete");
        let failed = conditions
            .iter()
            .filter(is_true)
            .find(|c| c.type_ == "Failed");
        if complete || status.succeeded.unwrap_or(0) > 0 {
            return Ok(JobStatus::Finished { exit_code: 0 });
        }
        if let Some(c) = failed
            && c.reason.as_deref() == Some("DeadlineExceeded")
        {
            return Ok(JobStatus::TimedOut);
        }
        if failed.is_some() || status.failed.unwrap_or(0) > 0 {
            let code = self.exit_code(cluster, &job).filter(|c| *c != 0);
            return Ok(JobStatus::Finished {
                exit_code: code.unwrap_or(1),
            });
        }
        Ok(JobStatus::Running)
    }

    fn cancel(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        self.delete(handle)?;
        lock(&self.cancelled).insert(handle.job_id.clone());
        Ok(())
    }

    fn logs(&self, handle: &JobHandle) -> Result<Vec<u8>, RuntimeError> {
        let (cluster, job) = self.locate(handle)?;
        let pods = self
            .job_pods(cluster, &job)
            .map_err(self.engine_err(&cluster.context, format!("pods of Job {job}")))?;
        let Some(pod) = pods.first().and_then(|p| p.metadata.name.clone()) else {
            return Ok(Vec::new());
        };
        let api = self.pods(cluster);
        let lp = LogParams {
            container: Some(CONTAINER.into()),
            ..Default::default()
        };
        let p = pod.clone();
        match self.call(async move { api.logs(&p, &lp).await }) {
            Ok(text) => Ok(text.into_bytes()),
            Err(e) if e.code() == Some(404) => Err(RuntimeError::UnknownJob(handle.job_id.clone())),
            Err(e) => Err(self
                .engine_err(&cluster.context, format!("logs of pod {pod}"))(
                e
            )),
        }
    }

    fn workdir(&self, _handle: &JobHandle) -> Option<std::path::PathBuf> {
        // The job runs on a cluster node: it uploads its artifacts itself.
        None
    }

    fn release(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        self.delete(handle)?;
        lock(&self.cancelled).remove(&handle.job_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(
            job_object_name("65a1b2c3d4e5f6a7b8c9d0e1", "kbuild-gcc-12_x86"),
            "kci-65a1b2c3d4e5f6a7b8c9d0e1-kbuild-gcc-12-x86"
        );
        let long = job_object_name("65a1b2c3d4e5f6a7b8c9d0e1", &"Very+Long:Name/".repeat(8));
        assert!(long.len() <= 63, "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert!(!long.starts_with('-') && !long.ends_with('-'));
        let other = job_object_name("65a1b2c3d4e5f6a7b8c9d0e2", &"Very+Long:Name/".repeat(8));
        assert_ne!(long, other);
        assert_eq!(label_value("__a/b__"), "a-b");
    }

    #[test]
    fn settings_from_fields() {
        let fields: Map<String, Value> = serde_json::from_str(
            r#"{"context": ["a", "b"], "api_timeout": 10, "namespace": "kci",
                "resources": {"requests": {"cpu": "7.1", "memory": "8Gi"}, "limits": {"cpu": "8"}}}"#,
        )
        .expect("json");
        let s = Settings::from_fields(&fields).expect("settings");
        assert_eq!(s.contexts, ["a", "b"]);
        assert_eq!(s.namespace, "kci");
        assert_eq!(s.api_timeout, Duration::from_secs(10));
        assert_eq!(s.ttl, DEFAULT_TTL);
        assert!(s.resources.is_some());
        let one: Map<String, Value> = serde_json::from_str(r#"{"context": "a"}"#).expect("json");
        assert_eq!(Settings::from_fields(&one).expect("one").contexts, ["a"]);
        for bad in [
            r#"{"context": 3}"#,
            r#"{"api_timeout": "x"}"#,
            r#"{"resources": {"requests": 3}}"#,
        ] {
            let f: Map<String, Value> = serde_json::from_str(bad).expect("json");
            assert!(Settings::from_fields(&f).is_err(), "{bad}");
        }
    }

    #[test]
    fn kubeconfig_contexts_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: a\n\
             clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n\
             users:\n- name: u\n  user: {token: t}\n\
             contexts:\n- name: a\n  context: {cluster: c, user: u}\n\
             - name: b\n  context: {cluster: c, user: u, namespace: kci}\n",
        )
        .expect("write");
        let mut fields: Map<String, Value> =
            serde_json::from_str(r#"{"context": ["a", "b"]}"#).expect("json");
        fields.insert(
            "kubeconfig".into(),
            Value::String(path.display().to_string()),
        );
        let rt = KubernetesRuntime::from_kubeconfig("k8s", &fields).expect("runtime");
        assert_eq!(rt.clusters.len(), 2);
        assert_eq!(rt.lab_type(), "kubernetes");
        fields.insert("context".into(), serde_json::json!(["a", "nope"]));
        let e = KubernetesRuntime::from_kubeconfig("k8s", &fields).expect_err("no context");
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn missing_context_is_named() {
        // A context no kubeconfig has (or no kubeconfig at all): the error names it.
        let fields: Map<String, Value> =
            serde_json::from_str(r#"{"context": "kernelci-no-such-context", "api_timeout": 2}"#)
                .expect("json");
        let e = KubernetesRuntime::from_kubeconfig("k8s", &fields).expect_err("no context");
        assert!(e.to_string().contains("kernelci-no-such-context"), "{e}");
    }
}
