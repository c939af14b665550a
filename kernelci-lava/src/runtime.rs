//! `LavaRuntime` (feature `runtime`): a LAVA lab behind the scheduler's `Runtime` trait.
//!
//! - `submit`: the rendered definition is checked and normalized ([`crate::normalize`]),
//!   then posted; the handle's `job_id` is LAVA's job id. A lab without `url` ("pull LAVA":
//!   upstream stores the definition in storage for the lab to fetch) is refused: not
//!   implemented. LAVA refusing the definition (HTTP 4xx) is an invalid submission; an
//!   unreachable lab or a 5xx an I/O error.
//! - `status`: `Submitted`, `Scheduling`, `Scheduled`, `Running`, `Canceling` (and states
//!   we do not know) → running; `Finished` with health `Complete` → finished with exit code
//!   0, `Canceled` → cancelled, `Incomplete` (or any other health) → exit code 2, the
//!   kbuild convention for an infrastructure failure; a job LAVA does not know (404) → lost.
//!   Results do not come from here but from the notify callback.
//! - `cancel`: LAVA's cancel (accepted for a finished job); 404 → unknown job.
//! - `logs`: the serial console of the job's log so far ([`LavaLog::target_text`]), whole
//!   lines only (a running job's last line may be half written); empty while LAVA has no
//!   log.
//! - `workdir`: none (nothing runs locally); `release`: nothing to clean.
//! - `template_vars`: [`LabConfig::template_vars`]; `queue_check`: the queue gate
//!   ([`crate::queue`]) — skipped with `disable_queue_limit`, refuses when no device of the
//!   type is online or the queue is full, and answers `Ok` (fail open) whenever LAVA cannot
//!   be asked.
//!
//! Every HTTP call runs on a short-lived thread of its own: reqwest's blocking client
//! panics when used from an async task, and the trait's methods may be called from one. A
//! panic there is caught and reported as an error: these methods never panic.

use std::path::PathBuf;
use std::time::Duration;

use kernelci_sched::runtime::{JobHandle, JobStatus, JobSubmission, Runtime, RuntimeError};
use serde_json::{Map, Value};

use crate::client::{LavaClient, LavaError};
use crate::definition::normalize;
use crate::lab::LabConfig;
use crate::log::LavaLog;
use crate::queue::{device_online, queue_limit};

/// A LAVA lab as a scheduler runtime.
#[derive(Debug)]
pub struct LavaRuntime {
    config: LabConfig,
    client: Option<LavaClient>,
}

/// Runs `f` on a thread of its own (never inside an async runtime); a panic becomes `None`.
fn off_thread<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|s| s.spawn(f).join().ok())
}

fn io_error(context: String, err: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Io {
        context,
        source: std::io::Error::other(err.to_string()),
    }
}

fn panicked(context: &str) -> RuntimeError {
    io_error(context.to_string(), "the HTTP client panicked")
}

impl LavaRuntime {
    /// A runtime for `config`; the HTTP client is set up when the lab has a URL.
    pub fn new(config: LabConfig) -> Result<LavaRuntime, LavaError> {
        let client = match config.api_url() {
            Some(api) => {
                let token = config.secrets.runtime_token.clone();
                let built = off_thread(|| LavaClient::new(&api, token.as_deref()))
                    .unwrap_or_else(|| Err(LavaError::Setup("the HTTP client panicked".into())))?;
                Some(built)
            }
            None => None,
        };
        Ok(LavaRuntime { config, client })
    }

    /// The lab's configuration.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// The REST client, when the lab has a URL.
    pub fn client(&self) -> Option<&LavaClient> {
        self.client.as_ref()
    }

    fn check_handle(&self, handle: &JobHandle) -> Result<i64, RuntimeError> {
        if handle.runtime != self.config.name {
            return Err(RuntimeError::WrongRuntime {
                runtime: self.config.name.clone(),
                handle_runtime: handle.runtime.clone(),
            });
        }
        handle
            .job_id
            .trim()
            .parse::<i64>()
            .map_err(|_| RuntimeError::UnknownJob(handle.job_id.clone()))
    }

    fn need_client(&self) -> Result<&LavaClient, RuntimeError> {
        self.client.as_ref().ok_or_else(|| {
            RuntimeError::InvalidSubmission(format!(
                "runtime {} has no url: pull-LAVA (job definitions left in storage) is not implemented",
                self.config.name
            ))
        })
    }
}

/// LAVA's job state and health as a [`JobStatus`].
pub fn job_status(state: &str, health: &str) -> JobStatus {
    if state != "Finished" {
        return JobStatus::Running;
    }
    match health {
        "Complete" => JobStatus::Finished { exit_code: 0 },
        "Canceled" => JobStatus::Cancelled,
        _ => JobStatus::Finished { exit_code: 2 },
    }
}

impl Runtime for LavaRuntime {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn lab_type(&self) -> &str {
        "lava"
    }

    fn submit(&self, job: &JobSubmission) -> Result<JobHandle, RuntimeError> {
        let client = self.need_client()?;
        let definition = normalize(&job.definition)
            .map_err(|e| RuntimeError::InvalidSubmission(e.to_string()))?;
        let context = format!(
            "submitting {} to LAVA lab {}",
            job.job_name, self.config.name
        );
        let id =
            off_thread(|| client.submit(&definition.yaml)).ok_or_else(|| panicked(&context))?;
        match id {
            Ok(id) => Ok(JobHandle {
                runtime: self.config.name.clone(),
                job_id: id.to_string(),
            }),
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
                Err(RuntimeError::InvalidSubmission(format!(
                    "lab {} refused the job: {e}",
                    self.config.name
                )))
            }
            Err(e) => Err(io_error(context, e)),
        }
    }

    fn status(&self, handle: &JobHandle) -> Result<JobStatus, RuntimeError> {
        let id = self.check_handle(handle)?;
        let client = self.need_client()?;
        let context = format!("LAVA lab {}: job {id}", self.config.name);
        match off_thread(|| client.job(id)).ok_or_else(|| panicked(&context))? {
            Ok(info) => Ok(job_status(&info.state, &info.health)),
            Err(e) if e.status() == Some(404) => Ok(JobStatus::Lost),
            Err(e) => Err(io_error(context, e)),
        }
    }

    fn cancel(&self, handle: &JobHandle) -> Result<(), RuntimeError> {
        let id = self.check_handle(handle)?;
        let client = self.need_client()?;
        let context = format!("LAVA lab {}: cancelling job {id}", self.config.name);
        match off_thread(|| client.cancel(id)).ok_or_else(|| panicked(&context))? {
            Ok(()) => Ok(()),
            Err(e) if e.status() == Some(404) => {
                Err(RuntimeError::UnknownJob(handle.job_id.clone()))
            }
            Err(e) => Err(io_error(context, e)),
        }
    }

    fn logs(&self, handle: &JobHandle) -> Result<Vec<u8>, RuntimeError> {
        let id = self.check_handle(handle)?;
        let client = self.need_client()?;
        let context = format!("LAVA lab {}: log of job {id}", self.config.name);
        let text = match off_thread(|| client.logs(id)).ok_or_else(|| panicked(&context))? {
            Ok(text) => text,
            Err(e) if e.status() == Some(404) => return Ok(Vec::new()),
            Err(e) => return Err(io_error(context, e)),
        };
        // A running job's log may end inside a line being written: whole lines only.
        let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
        if complete.trim().is_empty() {
            return Ok(Vec::new());
        }
        let log = LavaLog::parse(complete).map_err(|e| io_error(context, e))?;
        Ok(log.target_text().into_bytes())
    }

    fn workdir(&self, _handle: &JobHandle) -> Option<PathBuf> {
        None
    }

    fn release(&self, _handle: &JobHandle) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn template_vars(&self, base_priority: u8) -> Map<String, Value> {
        self.config.template_vars(base_priority)
    }

    fn queue_check(&self, device_type: &str, base_priority: u8) -> Result<(), String> {
        if self.config.disable_queue_limit {
            return Ok(());
        }
        let Some(client) = &self.client else {
            return Ok(());
        };
        let name = &self.config.name;
        let devices = match off_thread(|| client.devices(device_type)) {
            Some(Ok(devices)) => devices,
            // LAVA 2023.01 answers a filter on a device type it does not have with 400
            // `{"device_type": ["Select a valid choice. ..."]}`: no job of that type can
            // run there (upstream fails open here and the lab then refuses the job).
            Some(Err(LavaError::Http {
                status: 400, body, ..
            })) if body.contains("device_type") => {
                return Err(format!("lab {name} has no device type {device_type}"));
            }
            _ => return Ok(()),
        };
        let online = devices
            .iter()
            .filter(|d| device_online(d.health.as_deref()))
            .count();
        if online == 0 {
            return Err(format!(
                "no online device of type {device_type} in lab {name}"
            ));
        }
        let Some(Ok(queued)) = off_thread(|| client.queued(device_type)) else {
            return Ok(());
        };
        let limit = queue_limit(
            self.config.max_queue_depth,
            u32::try_from(online).unwrap_or(u32::MAX),
            base_priority,
            self.config.max_queue_depth_priority_factor,
        );
        if queued >= limit {
            return Err(format!(
                "lab {name}: {queued} jobs queued for {device_type}, limit {limit}"
            ));
        }
        Ok(())
    }
}

/// How long [`wait`] sleeps between polls.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Polls a job's status until it is final or `timeout` passed; returns the last status.
/// For tests and tools: the pipeline reads results from the callback instead.
pub fn wait(
    runtime: &LavaRuntime,
    handle: &JobHandle,
    timeout: Duration,
) -> Result<JobStatus, RuntimeError> {
    let start = std::time::Instant::now();
    loop {
        let status = runtime.status(handle)?;
        if status.is_final() || start.elapsed() >= timeout {
            return Ok(status);
        }
        std::thread::sleep(POLL_INTERVAL.min(timeout.saturating_sub(start.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::LabSecrets;
    use serde_json::json;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    fn lab(fields: Value) -> LabConfig {
        let Value::Object(map) = fields else {
            panic!("object")
        };
        LabConfig::from_runtime("lava-test", &map, LabSecrets::default()).unwrap()
    }

    /// Answers every request with the next canned reply.
    fn serve(replies: Vec<(u16, &'static str)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (status, body) in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}/")
    }

    #[test]
    fn states_map_to_job_status() {
        for state in [
            "Submitted",
            "Scheduling",
            "Scheduled",
            "Running",
            "Canceling",
            "New",
        ] {
            assert_eq!(job_status(state, "Unknown"), JobStatus::Running);
        }
        assert_eq!(
            job_status("Finished", "Complete"),
            JobStatus::Finished { exit_code: 0 }
        );
        assert_eq!(
            job_status("Finished", "Incomplete"),
            JobStatus::Finished { exit_code: 2 }
        );
        assert_eq!(job_status("Finished", "Canceled"), JobStatus::Cancelled);
    }

    #[test]
    fn pull_lava_is_refused_and_handles_are_checked() {
        let rt = LavaRuntime::new(lab(json!({}))).unwrap();
        let job = JobSubmission {
            node_id: "n".into(),
            job_name: "baseline".into(),
            definition: "job_name: j".into(),
            timeout: Duration::ZERO,
            env: vec![],
            image: None,
        };
        let e = rt.submit(&job).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid submission: runtime lava-test has no url: pull-LAVA (job definitions left in storage) is not implemented"
        );
        let other = JobHandle {
            runtime: "shell".into(),
            job_id: "1".into(),
        };
        assert!(matches!(
            rt.status(&other),
            Err(RuntimeError::WrongRuntime { .. })
        ));
        let bad = JobHandle {
            runtime: "lava-test".into(),
            job_id: "x".into(),
        };
        assert!(matches!(rt.status(&bad), Err(RuntimeError::UnknownJob(_))));
        assert_eq!(rt.queue_check("qemu", 40), Ok(()));
        assert_eq!(rt.lab_type(), "lava");
        assert!(rt.workdir(&bad).is_none());
        assert!(rt.template_vars(80).contains_key("notify"));
    }

    #[test]
    fn invalid_definitions_never_reach_the_lab() {
        let rt = LavaRuntime::new(lab(json!({"url": "http://127.0.0.1:9/"}))).unwrap();
        let job = JobSubmission {
            node_id: "n".into(),
            job_name: "baseline".into(),
            definition: "job_name: j\ndevice_type: qemu\n".into(),
            timeout: Duration::ZERO,
            env: vec![],
            image: None,
        };
        let e = rt.submit(&job).unwrap_err().to_string();
        assert_eq!(e, "invalid submission: job definition: actions: missing");
    }

    #[test]
    fn queue_gate() {
        let devices = r#"{"count":2,"next":null,"results":[
            {"hostname":"a","device_type":"qemu","health":"Good","state":"Idle"},
            {"hostname":"b","device_type":"qemu","health":"Maintenance","state":"Idle"}]}"#;
        // One online device, max depth 2, factor 2: limit 2 at priority 0, 3 at 50.
        let url = serve(vec![
            (200, devices),
            (200, r#"{"count":2,"results":[]}"#),
            (200, devices),
            (200, r#"{"count":2,"results":[]}"#),
            (200, r#"{"count":0,"next":null,"results":[]}"#),
            (500, "boom"),
        ]);
        let rt = LavaRuntime::new(lab(json!({"url": url, "max_queue_depth": 2}))).unwrap();
        assert_eq!(
            rt.queue_check("qemu", 0),
            Err("lab lava-test: 2 jobs queued for qemu, limit 2".into())
        );
        assert_eq!(rt.queue_check("qemu", 50), Ok(()));
        assert_eq!(
            rt.queue_check("qemu", 50),
            Err("no online device of type qemu in lab lava-test".into())
        );
        // HTTP 500: fail open.
        assert_eq!(rt.queue_check("qemu", 50), Ok(()));
        // Nothing listening any more: fail open too.
        assert_eq!(rt.queue_check("qemu", 50), Ok(()));
        let disabled = LavaRuntime::new(lab(
            json!({"url": "http://127.0.0.1:9/", "disable_queue_limit": true}),
        ))
        .unwrap();
        assert_eq!(disabled.queue_check("qemu", 0), Ok(()));
    }

    #[test]
    fn status_and_logs_over_http() {
        let log = "- {\"dt\": \"t\", \"lvl\": \"target\", \"msg\": \"Linux version 6.1\"}\n\
                   - {\"dt\": \"t\", \"lvl\": \"info\", \"msg\": \"start\"}\n\
                   - {\"dt\": \"t\", \"lvl\": \"target\", \"msg\": \"half wri";
        let log: &'static str = Box::leak(log.to_string().into_boxed_str());
        let url = serve(vec![
            (
                200,
                r#"{"id":3,"state":"Running","health":"Unknown","actual_device":null}"#,
            ),
            (404, r#"{"detail":"Not found."}"#),
            (200, log),
            (404, "{}"),
            (201, r#"{"job_ids":[9]}"#),
            (400, r#"{"message":"Problem with submitted job data"}"#),
        ]);
        let rt = LavaRuntime::new(lab(json!({"url": url}))).unwrap();
        let handle = JobHandle {
            runtime: "lava-test".into(),
            job_id: "3".into(),
        };
        assert_eq!(rt.status(&handle).unwrap(), JobStatus::Running);
        assert_eq!(rt.status(&handle).unwrap(), JobStatus::Lost);
        assert_eq!(rt.logs(&handle).unwrap(), b"Linux version 6.1\n");
        assert_eq!(rt.logs(&handle).unwrap(), b"");
        let job = JobSubmission {
            node_id: "n".into(),
            job_name: "baseline".into(),
            definition:
                "job_name: j\ndevice_type: qemu\nactions: [x]\ntimeouts: {job: {minutes: 1}}\n"
                    .into(),
            timeout: Duration::ZERO,
            env: vec![],
            image: None,
        };
        assert_eq!(rt.submit(&job).unwrap().job_id, "9");
        let e = rt.submit(&job).unwrap_err();
        assert!(matches!(e, RuntimeError::InvalidSubmission(_)), "{e}");
        assert!(e.to_string().contains("Problem with submitted job data"));
    }
}
