//! The scheduler role (specs/pipeline.md §1.3): node events in, job nodes out, each job
//! rendered from its template and submitted to a runtime; then the job is watched and its
//! results collected: from its job directory for local runtimes (shell, docker:
//! [`crate::collect`]), from what it uploaded for runtimes without one (Kubernetes:
//! [`crate::remote_artifacts`]). LAVA jobs call back instead.
//!
//! Idempotent by design (upstream's pain point §11.1-2):
//! - every job node carries `data.schedule_key = <parent>/<job>/<runtime>/<platform>/<retry>`,
//!   unique in the store: a second scheduler, a redelivered event or an `available` parent
//!   updated again can never create the job twice (the create answers 409);
//! - events come from durable subscriptions (`scheduler:node`, `scheduler:retry`) that are
//!   acknowledged only by the next poll, so a scheduler killed mid-way gets the event again;
//!   a job node that exists but was never submitted (killed between create and submit) is
//!   found by its key and submitted then, once it is [`ABANDONED_AFTER`] old (younger, it is
//!   another scheduler's job being submitted: we wait for its job id instead of running the
//!   job twice);
//! - every skip is logged with its reason (rules, filters, frequency), not only in debug.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use kernelci_sched::runtime::{JobHandle, JobStatus, JobSubmission, Runtime};
use kernelci_sched::template::JobContext;
use serde_json::{Map, Value, json};

use crate::client::ApiError;
use crate::events::EventStream;
use crate::{Ctx, iso, iso_in};

/// Jobs of one event planned (created, rendered, submitted) at the same time.
const PLAN_CONCURRENCY: usize = 16;

/// A job node still without a job id this long after its creation was abandoned by its
/// scheduler (killed between create and submit); a younger one is being submitted.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// A job this scheduler submitted and still watches.
#[derive(Debug, Clone)]
struct InFlight {
    node_id: String,
    kind: String,
    runtime: String,
    handle: JobHandle,
    /// The job uploads its own artifacts ([`crate::remote_artifacts`]).
    remote: bool,
}

/// The scheduler's runtimes and the jobs it watches.
#[derive(Clone)]
pub struct Scheduler {
    ctx: Ctx,
    runtimes: Arc<HashMap<String, Arc<dyn Runtime>>>,
    in_flight: Arc<Mutex<Vec<InFlight>>>,
}

/// What happened to one planned job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// Created and submitted (node id).
    Submitted(String),
    /// Not created, and why.
    Skipped(String),
    /// Created but the submission failed (node id, reason); the node is `done/incomplete`.
    Failed(String, String),
}

impl Scheduler {
    /// A scheduler over `runtimes` (name -> runtime).
    pub fn new(ctx: Ctx, runtimes: HashMap<String, Arc<dyn Runtime>>) -> Scheduler {
        Scheduler {
            ctx,
            runtimes: Arc::new(runtimes),
            in_flight: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The durable streams the scheduler reads: `scheduler:node` and `scheduler:retry`.
    pub async fn subscribe(ctx: &Ctx) -> (EventStream, EventStream) {
        (
            EventStream::opened(ctx.api.clone(), "node", "scheduler:node").await,
            EventStream::opened(ctx.api.clone(), "retry", "scheduler:retry").await,
        )
    }

    /// Run the two event loops and the job watcher until the task is dropped.
    pub async fn run(self, streams: (EventStream, EventStream)) {
        self.recover_lost_jobs().await;
        // One task (not three spawned ones): aborting it stops every loop, so a shutting
        // down server is not kept waiting by their long polls.
        tokio::join!(
            self.clone().event_loop(streams.0),
            self.clone().event_loop(streams.1),
            self.clone().watch_loop()
        );
    }

    /// Process events forever.
    async fn event_loop(self, mut events: EventStream) {
        loop {
            if let Some(ev) = events.next().await {
                for outcome in self.handle_event(&ev).await {
                    tracing::info!("scheduler: {outcome:?}");
                }
            }
        }
    }

    /// Plan, create and submit the jobs one event calls for.
    pub async fn handle_event(&self, ev: &Value) -> Vec<Planned> {
        let loaded = kernelci_sched::matching::LoadedRuntimes::new(
            self.runtimes
                .iter()
                .map(|(n, r)| (n.clone(), r.lab_type().to_string())),
        );
        let config = self.ctx.config.clone();
        let (plans, dropped) = kernelci_sched::matching::explain_schedule(&config, &loaded, ev);
        for d in dropped {
            tracing::debug!("scheduler: {d:?}");
        }
        if plans.is_empty() {
            return Vec::new();
        }
        let Some(id) = ev.get("id").and_then(Value::as_str) else {
            return vec![Planned::Skipped("event without a node id".into())];
        };
        let mut input = match self.ctx.api.node(id).await {
            Ok(Some(n)) => n,
            Ok(None) => return vec![Planned::Skipped(format!("node {id} is gone"))],
            Err(e) => return vec![Planned::Skipped(format!("node {id}: {e}"))],
        };
        // Retry events carry the filters of the retry on the event itself.
        for key in ["jobfilter", "platform_filter"] {
            if let Some(v) = ev.get(key).filter(|v| !v.is_null()) {
                input[key] = v.clone();
            }
        }
        let retry_counter = ev.get("retry_counter").and_then(Value::as_i64).unwrap_or(0);
        // Rules look fields up through ancestors: fetch the input's chain once per event.
        // The input's rules see its ancestors; a candidate's rules also see the input.
        let input_chain = crate::ancestry::Ancestors::new(&self.ctx.api)
            .prefetch(&input)
            .await;
        let mut child_chain = input_chain.clone();
        child_chain.insert(input.clone());
        let chains = (input_chain, child_chain);
        // One event can expand into hundreds of jobs: plan them concurrently. (The futures
        // are collected first: a closure inside the stream trips the `Send` check.)
        let mut planned = Vec::with_capacity(plans.len());
        for plan in &plans {
            planned.push(self.plan_one(&input, plan, &chains, retry_counter));
        }
        futures_util::stream::iter(planned)
            .buffer_unordered(PLAN_CONCURRENCY)
            .collect()
            .await
    }

    async fn plan_one(
        &self,
        input: &Value,
        plan: &kernelci_sched::matching::ScheduledJob<'_>,
        chains: &(crate::ancestry::Chain, crate::ancestry::Chain),
        retry_counter: i64,
    ) -> Planned {
        let cfg = &self.ctx.config;
        let job = plan.job;
        let job_name = job.name.clone();
        let platform = plan.platform;
        let platform_name = platform.name.clone();
        let Some(runtime) = self.runtimes.get(&plan.runtime).cloned() else {
            return Planned::Skipped(format!("runtime {} is not loaded", plan.runtime));
        };
        let parent_id = input["id"].as_str().unwrap_or_default().to_string();

        // Job frequency (per tree/branch/platform).
        if let Some(freq) = job
            .params
            .get("frequency")
            .and_then(Value::as_str)
            .and_then(kernelci_sched::matching::parse_frequency)
        {
            let rev = &input["data"]["kernel_revision"];
            let since = crate::ago(freq);
            let recent = self
                .ctx
                .api
                .count(&[
                    ("name", job_name.clone()),
                    (
                        "data.kernel_revision.tree",
                        rev["tree"].as_str().unwrap_or_default().into(),
                    ),
                    (
                        "data.kernel_revision.branch",
                        rev["branch"].as_str().unwrap_or_default().into(),
                    ),
                    ("data.platform", platform_name.clone()),
                    ("created__gte", iso(since)),
                ])
                .await
                .unwrap_or(0);
            if recent > 0 {
                return Planned::Skipped(format!("{}: ran less than {freq} s ago", job_name));
            }
        }
        let mut node = match admit(cfg, input, plan, chains, retry_counter) {
            Ok(node) => node,
            Err(why) => return Planned::Skipped(why),
        };
        // A platform the lab keeps failing on (its runtime's `hold_back` policy).
        let hold_back = cfg.runtimes.get(&plan.runtime).and_then(|r| {
            kernelci_sched::health::HoldBack::from_fields(&r.name, &r.fields)
                .map_err(|e| tracing::warn!("scheduler: {e}"))
                .ok()
                .flatten()
        });
        if let Some(policy) = hold_back
            && let Some(why) = self
                .ctx
                .settings
                .health
                .held_back(&plan.runtime, &platform_name, &policy)
                .await
        {
            return Planned::Skipped(format!("{job_name}: {why}"));
        }
        if let Some(priority) = tree_priority(&self.ctx, input) {
            node["data"]["tree_priority"] = priority.into();
        }
        // The lab's queue limit (LAVA, specs/pipeline.md §3.4), before any node exists: a
        // skipped job is not retried, as upstream. The device type is the one the job
        // definition asks for (params.device_type, else the platform's base_name, else its
        // name); upstream checks the platform name even when base_name differs.
        let base_priority = job_base_priority(&node, input, job);
        let device_type = job
            .params
            .get("device_type")
            .and_then(Value::as_str)
            .or(platform.base_name.as_deref())
            .unwrap_or(&platform_name)
            .to_string();
        let check = {
            let rt = runtime.clone();
            tokio::task::spawn_blocking(move || rt.queue_check(&device_type, base_priority)).await
        };
        if let Ok(Err(why)) = check {
            return Planned::Skipped(format!("{}: {why}", job_name));
        }
        let key = format!(
            "{parent_id}/{}/{}/{}/{retry_counter}",
            job_name, plan.runtime, platform_name
        );
        node["data"]["schedule_key"] = key.clone().into();
        let created = match self.ctx.api.create_keyed(&node).await {
            Ok(n) => n,
            Err(ApiError::Conflict(_)) => {
                // Already scheduled; submit it only if a previous run died before that.
                match self.unsubmitted(&key).await {
                    Some(n) => n,
                    None => {
                        return Planned::Skipped(format!(
                            "{}: already scheduled ({key})",
                            job_name
                        ));
                    }
                }
            }
            Err(e) => {
                return Planned::Skipped(format!("{}: cannot create the node: {e}", job_name));
            }
        };
        self.submit(created, input, job, runtime, platform_value(platform))
            .await
    }

    /// The node with this schedule key if its creator died before submitting it: still
    /// running, no job id, and created [`ABANDONED_AFTER`] ago. A younger such node is being
    /// submitted by another scheduler right now: wait for its job id (then `None`: it is
    /// scheduled) rather than submitting the job a second time.
    async fn unsubmitted(&self, key: &str) -> Option<Value> {
        loop {
            let found = self
                .ctx
                .api
                .find(&[("data.schedule_key", key.to_string())])
                .await
                .ok()?;
            let node = found
                .into_iter()
                .find(|n| n["state"] == "running" && n["data"]["job_id"].is_null())?;
            let age = age(&node).unwrap_or(ABANDONED_AFTER);
            if age >= ABANDONED_AFTER {
                return Some(node);
            }
            tokio::time::sleep((ABANDONED_AFTER - age).min(Duration::from_millis(300))).await;
        }
    }

    async fn submit(
        &self,
        mut node: Value,
        input: &Value,
        job: &kernelci_sched::config::JobConfig,
        runtime: Arc<dyn Runtime>,
        platform: Value,
    ) -> Planned {
        let id = node["id"].as_str().unwrap_or_default().to_string();
        let job_name = job.name.as_str();
        // Templates see the parent's artifacts (tarball, kernel, modules, ...).
        let mut view = node.clone();
        view["artifacts"] = input["artifacts"].clone();
        let params = match job_params(&self.ctx, job, &platform) {
            Ok(p) => p,
            Err(why) => return self.fail(node, "invalid_job_params", &why).await,
        };
        let fragment_configs = params.get("fragment_configs").cloned().unwrap_or(json!({}));
        // Runtime variables (LAVA: priority, notify) go in before the job's own params:
        // a job may still set its own.
        let mut params = params;
        for (k, v) in runtime.template_vars(job_base_priority(&node, input, job)) {
            params.entry(k).or_insert(v);
        }
        let mut context = JobContext::new(job_name, runtime.lab_type())
            .node(view.clone())
            .platform(platform.clone())
            .params(Value::Object(params))
            .fragment_configs(fragment_configs)
            .api_config(json!({"name": "local", "url": self.ctx.settings.public_api_url(), "version": "latest", "timeout": 60}))
            .storage_config(json!({"name": "local", "storage_type": "local", "base_url": self.ctx.settings.storage_url()}))
            .instance(None, Some(format!("{}/pipeline", self.ctx.settings.public_url)));
        if let Some(image) = &job.image {
            context = context.runtime_image(image.clone());
        }
        let definition =
            match self
                .ctx
                .templates
                .render(runtime.lab_type(), &job.template, &context.build())
            {
                Ok(d) if d.trim().is_empty() => {
                    return self
                        .fail_result(
                            node,
                            "fail",
                            "job_generation_error",
                            "the template rendered nothing",
                        )
                        .await;
                }
                Ok(d) => d,
                Err(e) => {
                    return self
                        .fail(node, "job_generation_error", &e.to_string())
                        .await;
                }
            };
        let timeout = job_timeout(&self.ctx, job);
        let mut env = vec![
            ("KCI_NODE_ID".into(), id.clone()),
            ("KCI_API_URL".into(), self.ctx.settings.public_api_url()),
        ];
        // A job out of the scheduler's sight uploads its artifacts itself.
        let remote = crate::remote_artifacts::uploads_itself(runtime.lab_type());
        if remote {
            match crate::remote_artifacts::job_env(&self.ctx, &id, timeout) {
                Some(vars) => env.extend(vars),
                None => tracing::warn!(
                    "scheduler: {id}: no pipeline API secret in this process: the job cannot \
                     upload its artifacts (only its exit code and logs will count)"
                ),
            }
        }
        let submission = JobSubmission {
            node_id: id.clone(),
            job_name: job_name.to_string(),
            definition,
            timeout,
            env,
            image: job.image.clone(),
        };
        let rt = runtime.clone();
        let handle = match tokio::task::spawn_blocking(move || rt.submit(&submission)).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return self.fail(node, "submit_error", &e.to_string()).await,
            Err(e) => return self.fail(node, "submit_error", &e.to_string()).await,
        };
        node["data"]["job_id"] = handle.job_id.clone().into();
        // Which scheduler runs it: after a restart, this one recognises its own lost jobs
        // (and leaves other schedulers' alone).
        node["data"]["scheduler"] = self.ctx.settings.instance.clone().into();
        // No event for this update: the node stays `running`, no consumer acts on a job id,
        // and an event per job would halve the scheduling rate (one serialized event commit
        // each).
        let mut recorded = self.ctx.api.update_quiet(&node).await;
        for _ in 0..3 {
            if recorded.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            recorded = self.ctx.api.update_quiet(&node).await;
        }
        if let Err(e) = recorded {
            // Without its job id the node would look abandoned and be submitted again.
            tracing::error!(
                "scheduler: {id}: cannot record job id {}: {e}",
                handle.job_id
            );
        }
        if (remote || runtime.workdir(&handle).is_some())
            && let Ok(mut v) = self.in_flight.lock()
        {
            v.push(InFlight {
                node_id: id.clone(),
                kind: node["kind"].as_str().unwrap_or("job").to_string(),
                runtime: runtime.name().to_string(),
                handle,
                remote,
            });
        }
        crate::telemetry::emit(
            &self.ctx,
            vec![crate::telemetry::event("job_submission", &node)],
        );
        Planned::Submitted(id)
    }

    async fn fail(&self, node: Value, code: &str, msg: &str) -> Planned {
        self.fail_result(node, "incomplete", code, msg).await
    }

    async fn fail_result(&self, mut node: Value, result: &str, code: &str, msg: &str) -> Planned {
        let id = node["id"].as_str().unwrap_or_default().to_string();
        node["state"] = "done".into();
        node["result"] = result.into();
        node["data"]["error_code"] = code.into();
        node["data"]["error_msg"] = msg.chars().take(1000).collect::<String>().into();
        if let Err(e) = self.ctx.api.update(&node).await {
            tracing::warn!("scheduler: {id}: cannot mark failed: {e}");
        }
        if code == "submit_error" {
            let runtime = node["data"]["runtime"]
                .as_str()
                .unwrap_or("unknown")
                .to_string();
            crate::telemetry::emit(
                &self.ctx,
                vec![crate::telemetry::runtime_error(&runtime, &node, msg)],
            );
        }
        crate::telemetry::emit(
            &self.ctx,
            vec![crate::telemetry::event("job_result", &node)],
        );
        Planned::Failed(id, format!("{code}: {msg}"))
    }

    /// Jobs of our local runtimes that were running when this scheduler (same
    /// [`crate::Settings::instance`]) stopped. A shell job cannot be followed any more: it is
    /// marked incomplete at once (job-retry reruns it) instead of waiting hours for its
    /// timeout. A docker job's container outlives the scheduler: while the engine still has
    /// it (running or ended), it is watched again and collected as usual (its run time limit
    /// is then only the node's timeout); only a job whose container is gone is failed like a
    /// shell job. An engine that does not answer leaves the node to the timeout role. Jobs
    /// that upload their own artifacts (Kubernetes) are followed again like docker ones.
    async fn recover_lost_jobs(&self) {
        for (name, rt) in self.runtimes.iter() {
            let remote = crate::remote_artifacts::uploads_itself(rt.lab_type());
            let follow = match rt.lab_type() {
                "shell" => false,
                "docker" => true,
                _ if remote => true,
                _ => continue,
            };
            let Ok(nodes) = self
                .ctx
                .api
                .find(&[
                    ("state", "running".into()),
                    ("data.runtime", name.clone()),
                    ("data.scheduler", self.ctx.settings.instance.clone()),
                ])
                .await
            else {
                continue;
            };
            for node in nodes {
                if node["data"]["job_id"].is_null() {
                    continue;
                }
                if follow {
                    let handle = JobHandle {
                        runtime: name.clone(),
                        job_id: match &node["data"]["job_id"] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    };
                    let status = {
                        let (rt, handle) = (rt.clone(), handle.clone());
                        tokio::task::spawn_blocking(move || rt.status(&handle)).await
                    };
                    match status {
                        Ok(Ok(JobStatus::Lost)) => {}
                        Ok(Ok(_)) => {
                            let node_id = node["id"].as_str().unwrap_or_default().to_string();
                            tracing::info!(
                                "scheduler: {node_id}: job {} still known to the runtime; watching it again",
                                handle.job_id
                            );
                            if let Ok(mut v) = self.in_flight.lock() {
                                v.push(InFlight {
                                    node_id,
                                    kind: node["kind"].as_str().unwrap_or("job").to_string(),
                                    runtime: name.clone(),
                                    handle,
                                    remote,
                                });
                            }
                            continue;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(
                                "scheduler: {}: cannot check container {}: {e}",
                                node["id"].as_str().unwrap_or_default(),
                                handle.job_id
                            );
                            continue;
                        }
                        Err(_) => continue,
                    }
                }
                let _ = self
                    .fail(
                        node,
                        "Infrastructure",
                        "job lost: the scheduler restarted while it ran",
                    )
                    .await;
            }
        }
    }

    async fn watch_loop(self) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let jobs: Vec<InFlight> = match self.in_flight.lock() {
                Ok(v) => v.clone(),
                Err(_) => continue,
            };
            for job in jobs {
                let Some(rt) = self.runtimes.get(&job.runtime).cloned() else {
                    continue;
                };
                let handle = job.handle.clone();
                let status = tokio::task::spawn_blocking({
                    let rt = rt.clone();
                    move || rt.status(&handle)
                })
                .await;
                let status = match status {
                    Ok(Ok(JobStatus::Running)) => continue,
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::warn!("scheduler: status of {}: {e}", job.node_id);
                        JobStatus::Lost
                    }
                    Err(_) => JobStatus::Lost,
                };
                if let Ok(mut v) = self.in_flight.lock() {
                    v.retain(|j| j.node_id != job.node_id);
                }
                let workdir = rt.workdir(&job.handle);
                let log = {
                    let (rt, handle) = (rt.clone(), job.handle.clone());
                    tokio::task::spawn_blocking(move || rt.logs(&handle).unwrap_or_default())
                        .await
                        .unwrap_or_default()
                };
                let collected = if job.remote {
                    let ctx = &self.ctx;
                    crate::remote_artifacts::collect(ctx, &job.node_id, &job.kind, &status, &log)
                        .await
                } else {
                    let dir = workdir.as_deref();
                    crate::collect::collect(&self.ctx, &job.node_id, &job.kind, &status, dir, &log)
                        .await
                };
                if let Err(e) = collected {
                    tracing::error!("scheduler: collecting {}: {e:#}", job.node_id);
                }
                // Deleting a kernel build directory takes seconds: not on the way of the
                // next finished job's results.
                let handle = job.handle.clone();
                drop(tokio::task::spawn_blocking(move || rt.release(&handle)));
            }
        }
    }
}

/// The deliberate filters a planned job goes through (the checkout's architecture filter,
/// the entry's, job's, runtime's and platform's rules, the jobfilter and the platform
/// filter): the job node to create, or why the job is not wanted. Pure given the input's
/// ancestor chains, so that the missing-results check replays exactly what the scheduler
/// decided (`crate::missing`).
pub fn admit(
    cfg: &kernelci_sched::config::PipelineConfig,
    input: &Value,
    plan: &kernelci_sched::matching::ScheduledJob<'_>,
    chains: &(crate::ancestry::Chain, crate::ancestry::Chain),
    retry_counter: i64,
) -> Result<Value, String> {
    let job = plan.job;
    let job_name = job.name.clone();
    let platform = plan.platform;
    let platform_name = platform.name.clone();
    // Architecture filter of the checkout (build_config `architectures`).
    if job.kind == "kbuild"
        && let Some(archs) = input["data"]["architecture_filter"].as_array()
        && let Some(arch) = job.params.get("arch").and_then(Value::as_str)
        && !archs.iter().any(|a| a == arch)
    {
        return Err(format!(
            "{}: arch {arch} not in the architecture filter",
            job_name
        ));
    }
    // Scheduler-entry rules, on the input node.
    if let Err(why) = decide(plan.rules, input, &chains.0) {
        return Err(format!("{}: scheduler rules: {why}", job_name));
    }
    let mut node = new_job_node(input, &job_name, &job.kind, retry_counter);
    // jobfilter
    let path: Vec<String> = node["path"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let jobfilter: Option<Vec<String>> = input["jobfilter"].as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    });
    if !kernelci_sched::matching::jobfilter_allows(jobfilter.as_deref(), &job_name, &path) {
        return Err(format!("{}: not in the jobfilter", job_name));
    }
    if let Err(why) = decide(job.rules.as_ref(), &node, &chains.1) {
        return Err(format!("{}: job rules: {why}", job_name));
    }
    if node["kind"] == "job" {
        for key in [
            "kernel_type",
            "arch",
            "defconfig",
            "config_full",
            "compiler",
        ] {
            if let Some(v) = input["data"].get(key) {
                node["data"][key] = v.clone();
            }
        }
    }
    node["data"]["runtime"] = plan.runtime.clone().into();
    let runtime_rules = cfg
        .runtimes
        .get(&plan.runtime)
        .and_then(|r| r.rules.clone());
    if let Err(why) = decide(runtime_rules.as_ref(), &node, &chains.1) {
        return Err(format!("{}: runtime rules: {why}", job_name));
    }
    let platform_filter: Option<Vec<String>> = input["platform_filter"]
        .as_array()
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        });
    if node["kind"] == "job"
        && !kernelci_sched::matching::platform_filter_allows(
            platform_filter.as_deref(),
            &job.kind,
            &platform_name,
        )
    {
        return Err(format!(
            "{}: platform {} not in the platform filter",
            job_name, platform_name
        ));
    }
    node["data"]["platform"] = platform_name.clone().into();
    let platform_rules = platform.rules.clone();
    if let Err(why) = decide(platform_rules.as_ref(), &node, &chains.1) {
        return Err(format!("{}: platform rules: {why}", job_name));
    }
    Ok(node)
}

/// Time since the node was created (zero if its `created` is in our future).
fn age(node: &Value) -> Option<Duration> {
    let created = node["created"].as_str()?;
    let created = chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some(
        (chrono::Utc::now().naive_utc() - created)
            .to_std()
            .unwrap_or_default(),
    )
}

/// Evaluate rules on `node`, whose ancestors are in `chain`.
fn decide(
    rules: Option<&Value>,
    node: &Value,
    chain: &crate::ancestry::Chain,
) -> Result<(), String> {
    let Some(rules) = rules.filter(|r| !r.is_null()) else {
        return Ok(());
    };
    match kernelci_sched::rules::should_create_node(rules, node, chain) {
        kernelci_sched::rules::Decision::Allow => Ok(()),
        kernelci_sched::rules::Decision::Deny(why) => Err(why),
    }
}

/// The platform as templates see it (`platform_config`).
fn platform_value(p: &kernelci_sched::config::PlatformConfig) -> Value {
    let dtb = p.dtb.as_ref().map(|d| match d {
        kernelci_sched::config::Dtb::One(s) => Value::from(s.clone()),
        kernelci_sched::config::Dtb::Many(v) => json!(v),
    });
    json!({
        "name": p.name, "arch": p.arch, "base_name": p.base_name.clone().unwrap_or_else(|| p.name.clone()),
        "boot_method": p.boot_method, "mach": p.mach, "context": p.context,
        "compatible": p.compatible, "dtb": dtb, "flash_image": p.flash_image,
        "params": p.params, "rules": p.rules,
    })
}

/// upstream `create_job_node`: the child of `input` for job `name`.
fn new_job_node(input: &Value, name: &str, kind: &str, retry_counter: i64) -> Value {
    let mut path: Vec<Value> = input["path"].as_array().cloned().unwrap_or_default();
    path.push(name.into());
    let mut node = json!({
        "kind": kind,
        "parent": input["id"],
        "name": name,
        "path": path,
        "group": name,
        "artifacts": {},
        "data": {"kernel_revision": input["data"]["kernel_revision"]},
        "retry_counter": retry_counter,
        "submitter": input.get("submitter").cloned().unwrap_or(Value::Null),
        "treeid": input.get("treeid").cloned().unwrap_or(Value::Null),
        "timeout": iso_in(Duration::from_secs(6 * 3600)),
    });
    for key in ["jobfilter", "platform_filter"] {
        if let Some(v) = input.get(key).filter(|v| !v.is_null()) {
            node[key] = v.clone();
        }
    }
    node
}

/// The job's base priority (0-100): the job node's, with a user request's own
/// `data.priority` taken from the node it was made from.
fn job_base_priority(node: &Value, input: &Value, job: &kernelci_sched::config::JobConfig) -> u8 {
    let mut view = node.clone();
    if let Some(p) = input["data"].get("priority").filter(|p| !p.is_null()) {
        view["data"]["priority"] = p.clone();
    }
    kernelci_sched::runtime::priority::base_priority(&view, job.priority)
}

/// The build config priority of the input's tree/branch.
fn tree_priority(ctx: &Ctx, input: &Value) -> Option<String> {
    let rev = &input["data"]["kernel_revision"];
    ctx.config
        .build_configs
        .values()
        .find(|bc| rev["tree"] == bc.tree.as_str() && rev["branch"] == bc.branch.as_str())
        .and_then(|bc| bc.priority.clone())
}

/// Job parameters: platform params, then job params, rootfs_ref, `{placeholders}` filled,
/// and `fragment_configs` resolved from the `fragments` section.
fn job_params(
    ctx: &Ctx,
    job: &kernelci_sched::config::JobConfig,
    platform: &Value,
) -> Result<Map<String, Value>, String> {
    let mut params = Map::new();
    if let Some(p) = platform.get("params").and_then(Value::as_object) {
        params.extend(p.clone());
    }
    params.extend(job.params.clone());
    if let Some(r) = params
        .get("rootfs_ref")
        .and_then(Value::as_str)
        .map(String::from)
    {
        let Some(rootfs) = ctx.config.rootfs.get(&r) else {
            return Err(format!("rootfs_ref {r:?} is not in the rootfs section"));
        };
        for (k, v) in rootfs {
            params.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // A map of the named fragments: the template merges them in the order of
    // `params.fragments`, where a `CONFIG_...` entry is a one-line fragment of its own.
    let mut fragment_configs = Map::new();
    if let Some(frags) = params.get("fragments").and_then(Value::as_array) {
        for f in frags.iter().filter_map(Value::as_str) {
            if f.starts_with("CONFIG_") {
                continue;
            }
            let Some(frag) = ctx.config.fragments.get(f) else {
                return Err(format!("fragment {f:?} is not in the fragments section"));
            };
            fragment_configs.insert(f.to_string(), json!({"configs": frag.configs}));
        }
    }
    params.insert("fragment_configs".into(), fragment_configs.into());
    Ok(params)
}

/// The job's time limit: `params.job_timeout` minutes, else the settings' default.
fn job_timeout(ctx: &Ctx, job: &kernelci_sched::config::JobConfig) -> Duration {
    job.params
        .get("job_timeout")
        .and_then(Value::as_u64)
        .map(|m| Duration::from_secs(m.saturating_mul(60)))
        .unwrap_or(ctx.settings.job_timeout)
}
