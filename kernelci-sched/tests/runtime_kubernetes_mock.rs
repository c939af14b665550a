//! The kubernetes runtime against a recorded-exchange mock transport (no API server can run
//! here: specs/real-peers.md §6.1).
//!
//! Each scenario (`tests/data/k8s/*.json`) is an ordered list of exchanges: the request the
//! runtime must send (context, method, path, query, JSON body compared structurally) and the
//! canned response. Any unexpected request, and any request left over at the end, fails the
//! test. A response `{"error": "..."}` is a transport error (a refused connection).
#![cfg(feature = "kubernetes")]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use kernelci_sched::runtime::{
    ClientFactory, JobHandle, JobStatus, JobSubmission, KubernetesRuntime, Runtime, RuntimeError,
};
use kube::client::Body;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Deserialize)]
struct Scenario {
    /// What the recording shows.
    #[allow(dead_code)]
    description: String,
    /// The runtime's configuration keys.
    #[serde(default)]
    fields: Map<String, Value>,
    /// The contexts, in configuration order.
    contexts: Vec<String>,
    exchanges: Vec<Exchange>,
}

#[derive(Debug, Clone, Deserialize)]
struct Exchange {
    context: String,
    request: ExpectedRequest,
    response: CannedResponse,
}

#[derive(Debug, Clone, Deserialize)]
struct ExpectedRequest {
    method: String,
    path: String,
    #[serde(default)]
    query: BTreeMap<String, String>,
    /// The JSON body; absent: the request must have no body.
    #[serde(default)]
    body: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct CannedResponse {
    #[serde(default = "ok")]
    status: u16,
    /// A JSON body.
    #[serde(default)]
    body: Option<Value>,
    /// A text body (logs).
    #[serde(default)]
    text: Option<String>,
    /// A transport error instead of a response.
    #[serde(default)]
    error: Option<String>,
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<Exchange>,
    failures: Vec<String>,
    /// The JSON bodies received, in order.
    bodies: Vec<Value>,
}

/// The shared recording all contexts' services replay.
#[derive(Debug, Clone, Default)]
struct Replay(Arc<Mutex<State>>);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Replay {
    fn answer(
        &self,
        context: &str,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<http::Response<Body>, BoxError> {
        let query: BTreeMap<String, String> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let json: Option<Value> = if body.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice(body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into())),
            )
        };
        let seen = format!(
            "{context}: {} {} {query:?} body {}",
            parts.method,
            parts.uri.path(),
            json.as_ref().map_or("none".into(), Value::to_string)
        );
        let mut state = self.0.lock().unwrap();
        if let Some(j) = &json {
            state.bodies.push(j.clone());
        }
        let Some(next) = state.pending.pop_front() else {
            let failure = format!("unexpected request {seen}");
            state.failures.push(failure.clone());
            return Ok(status(500, &failure));
        };
        let want = &next.request;
        if next.context != context
            || want.method != parts.method.as_str()
            || want.path != parts.uri.path()
            || want.query != query
            || want.body != json
        {
            let failure = format!(
                "request {seen}\n  expected {}: {} {} {:?} body {}",
                next.context,
                want.method,
                want.path,
                want.query,
                want.body.as_ref().map_or("none".into(), Value::to_string)
            );
            state.failures.push(failure.clone());
            return Ok(status(500, &failure));
        }
        let r = next.response;
        if let Some(e) = r.error {
            return Err(e.into());
        }
        let (ctype, bytes) = match (r.body, r.text) {
            (Some(b), _) => ("application/json", serde_json::to_vec(&b).unwrap()),
            (None, Some(t)) => ("text/plain", t.into_bytes()),
            (None, None) => ("application/json", b"{}".to_vec()),
        };
        Ok(http::Response::builder()
            .status(r.status)
            .header("content-type", ctype)
            .body(Body::from(bytes))
            .unwrap())
    }

    /// Fails if a request did not match or was not made.
    fn finish(&self) {
        let state = self.0.lock().unwrap();
        assert!(state.failures.is_empty(), "{}", state.failures.join("\n"));
        assert!(
            state.pending.is_empty(),
            "requests not made: {:#?}",
            state.pending
        );
    }
}

fn status(code: u16, message: &str) -> http::Response<Body> {
    let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "InternalError", "message": message, "code": code});
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

/// One context's transport.
#[derive(Clone)]
struct MockService {
    context: String,
    replay: Replay,
}

impl tower::Service<http::Request<Body>> for MockService {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let (replay, context) = (self.replay.clone(), self.context.clone());
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await?;
            replay.answer(&context, &parts, &bytes)
        })
    }
}

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/k8s")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn runtime(name: &str) -> (KubernetesRuntime, Replay) {
    let scenario = load(name);
    let replay = Replay::default();
    replay.0.lock().unwrap().pending = scenario.exchanges.into();
    let factories: Vec<(String, ClientFactory)> = scenario
        .contexts
        .iter()
        .map(|c| {
            let service = MockService {
                context: c.clone(),
                replay: replay.clone(),
            };
            let make: ClientFactory = Box::new(move || Ok(kube::Client::new(service, "default")));
            (c.clone(), make)
        })
        .collect();
    let rt = KubernetesRuntime::with_clients("k8s-test", &scenario.fields, factories).unwrap();
    (rt, replay)
}

fn submission() -> JobSubmission {
    JobSubmission {
        node_id: "65a1b2c3d4e5f6a7b8c9d0e1".into(),
        job_name: "kbuild-gcc-12-x86".into(),
        definition: "#!/bin/bash\nset -e\necho hello from kernelci\n".into(),
        timeout: Duration::from_secs(3600),
        env: vec![
            ("KCI_API_URL".into(), "http://api.example:8001".into()),
            ("KCI_NODE_ID".into(), "65a1b2c3d4e5f6a7b8c9d0e1".into()),
        ],
        image: Some("kernelci/gcc-12:x86-kselftest".into()),
    }
}

const JOB: &str = "kci-65a1b2c3d4e5f6a7b8c9d0e1-kbuild-gcc-12-x86";

fn handle(context: &str) -> JobHandle {
    JobHandle {
        runtime: "k8s-test".into(),
        job_id: format!("{context}/{JOB}"),
    }
}

#[test]
fn submit_creates_the_job() {
    let (rt, replay) = runtime("submit_created.json");
    let h = rt.submit(&submission()).unwrap();
    assert_eq!(h, handle("kind-a"));
    replay.finish();
    // The body the runtime sent, beyond the structural comparison with the recording.
    let body = replay.0.lock().unwrap().bodies[0].clone();
    assert_eq!(body["metadata"]["name"], JOB);
    assert_eq!(body["metadata"]["namespace"], "default");
    assert_eq!(
        body["metadata"]["labels"]["kernelci.org/node-id"],
        "65a1b2c3d4e5f6a7b8c9d0e1"
    );
    assert_eq!(
        body["metadata"]["labels"]["kernelci.org/runtime"],
        "k8s-test"
    );
    let spec = &body["spec"];
    assert_eq!(spec["backoffLimit"], 0);
    assert_eq!(spec["activeDeadlineSeconds"], 3600);
    assert_eq!(spec["ttlSecondsAfterFinished"], 1800);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "kernelci/gcc-12:x86-kselftest");
    assert_eq!(c["command"][0], "sh");
    assert_eq!(c["command"][4], submission().definition);
    assert_eq!(
        c["env"][0],
        serde_json::json!({"name": "KCI_API_URL", "value": "http://api.example:8001"})
    );
    // Every field is one k8s-openapi knows: the body round-trips through the typed Job.
    let typed: k8s_openapi::api::batch::v1::Job = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), body);
}

#[test]
fn built_job_round_trips_through_k8s_openapi() {
    let (rt, replay) = runtime("none.json");
    let job = rt.build_job(&submission()).unwrap();
    let json = serde_json::to_value(&job).unwrap();
    let back: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, job);
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
    // No image: a clear error, and no request.
    let mut s = submission();
    s.image = None;
    let e = rt.submit(&s).unwrap_err();
    assert!(e.to_string().contains("need `image:`"), "{e}");
    replay.finish();
}

#[test]
fn submit_already_exists() {
    let (rt, replay) = runtime("submit_conflict.json");
    let e = rt.submit(&submission()).unwrap_err();
    assert!(matches!(e, RuntimeError::InvalidSubmission(_)), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("already exists") && m.contains(JOB), "{m}");
    replay.finish();
}

#[test]
fn submit_errors_name_the_context() {
    let (rt, replay) = runtime("submit_errors.json");
    for code in ["401", "403", "422", "500"] {
        let e = rt.submit(&submission()).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("kind-a") && m.contains(code), "{m}");
    }
    let e = rt.submit(&submission()).unwrap_err();
    assert!(e.to_string().contains("kind-a"), "{e}");
    replay.finish();
}

#[test]
fn least_loaded_context() {
    let (rt, replay) = runtime("least_loaded.json");
    // a: 2 pending, b: unreachable 3 times (1000), c: 1 pending -> c.
    assert_eq!(rt.submit(&submission()).unwrap(), handle("kind-c"));
    // a: 0 pending -> a, without asking b and c.
    assert_eq!(rt.submit(&submission()).unwrap(), handle("kind-a"));
    replay.finish();
}

#[test]
fn status_of_jobs() {
    let (rt, replay) = runtime("status.json");
    let h = handle("kind-a");
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Running);
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Finished { exit_code: 0 });
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Finished { exit_code: 2 });
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Finished { exit_code: 1 });
    assert_eq!(rt.status(&h).unwrap(), JobStatus::TimedOut);
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Lost);
    // A handle of another context or runtime: no request.
    assert!(matches!(
        rt.status(&handle("kind-zz")),
        Err(RuntimeError::UnknownJob(_))
    ));
    let mut other = handle("kind-a");
    other.runtime = "shell".into();
    assert!(matches!(
        rt.status(&other),
        Err(RuntimeError::WrongRuntime { .. })
    ));
    replay.finish();
}

#[test]
fn logs_of_the_jobs_pod() {
    let (rt, replay) = runtime("logs.json");
    let h = handle("kind-a");
    assert_eq!(rt.logs(&h).unwrap(), b"hello from kernelci\n");
    // No pod yet: no logs.
    assert_eq!(rt.logs(&h).unwrap(), b"");
    assert_eq!(rt.workdir(&h), None);
    replay.finish();
}

#[test]
fn cancel_and_release_delete_the_job() {
    let (rt, replay) = runtime("delete.json");
    let h = handle("kind-a");
    rt.cancel(&h).unwrap();
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Cancelled);
    // Already gone: fine.
    rt.release(&h).unwrap();
    assert_eq!(rt.status(&h).unwrap(), JobStatus::Lost);
    replay.finish();
}

#[test]
fn the_mock_fails_on_unexpected_requests() {
    let (rt, replay) = runtime("none.json");
    assert!(rt.status(&handle("kind-a")).is_err());
    let failures = replay.0.lock().unwrap().failures.clone();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("unexpected request"), "{failures:?}");
}
