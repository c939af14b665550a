//! Pipeline telemetry (specs/pipeline.md §1.10): `job_submission`, `runtime_error`,
//! `job_result` and `test_result` events posted to the API's `POST telemetry`, which
//! serves them back aggregated (`/telemetry/stats`, `/telemetry/anomalies`).
//!
//! Posting never blocks or fails a role: events go out on a task of their own and a
//! failure is only logged (upstream falls back to a local file).

use serde_json::{Map, Value};

use crate::Ctx;

/// Error codes that mean the infrastructure failed, not the kernel or the test.
const INFRA: [&str; 7] = [
    "Infrastructure",
    "kbuild_internal_error",
    "submit_error",
    "node_timeout",
    "LAVATimeout",
    "Canceled",
    "job_generation_error",
];

/// One event of `kind` about `node` (a job node as the API returns it).
pub fn event(kind: &str, node: &Value) -> Value {
    let data = &node["data"];
    let rev = &data["kernel_revision"];
    let mut e = Map::new();
    e.insert("kind".into(), kind.into());
    e.insert(
        "runtime".into(),
        data["runtime"].as_str().unwrap_or("unknown").into(),
    );
    let mut put = |key: &str, v: &Value| {
        if !v.is_null() {
            e.insert(key.into(), v.clone());
        }
    };
    put("device_type", &data["platform"]);
    put("job_name", &node["name"]);
    put("node_id", &node["id"]);
    put("job_id", &data["job_id"]);
    put("tree", &rev["tree"]);
    put("branch", &rev["branch"]);
    put("arch", &data["arch"]);
    put("result", &node["result"]);
    put("error_type", &data["error_code"]);
    put("error_msg", &data["error_msg"]);
    put("retry", &node["retry_counter"]);
    if kind == "job_result" {
        let infra = data["error_code"]
            .as_str()
            .is_some_and(|c| INFRA.contains(&c));
        e.insert("is_infra_error".into(), infra.into());
    }
    Value::Object(e)
}

/// `test_result` events for the tests of a hierarchy (`{node, child_nodes}`), each named
/// by its path below the job.
pub fn test_results(job: &Value, hierarchy: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![(hierarchy.clone(), Vec::<String>::new())];
    while let Some((h, prefix)) = stack.pop() {
        for child in h["child_nodes"].as_array().into_iter().flatten() {
            let name = child["node"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut path = prefix.clone();
            path.push(name);
            if child["node"]["kind"] == "test" {
                let mut e = event("test_result", job);
                e["test_name"] = path.join(".").into();
                e["result"] = child["node"]["result"].clone();
                out.push(e);
            }
            stack.push((child.clone(), path));
        }
    }
    out
}

/// Post `events` in the background.
pub fn emit(ctx: &Ctx, events: Vec<Value>) {
    if events.is_empty() {
        return;
    }
    let api = ctx.api.clone();
    tokio::spawn(async move {
        if let Err(e) = api.telemetry(&events).await {
            tracing::warn!("telemetry: {} events not posted: {e}", events.len());
        }
    });
}

/// A `runtime_error` event.
pub fn runtime_error(runtime: &str, node: &Value, msg: &str) -> Value {
    let mut e = event("runtime_error", node);
    e["runtime"] = runtime.into();
    e["error_msg"] = msg.into();
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_carry_the_node_fields() {
        let job = json!({"id": "n1", "name": "baseline-x86", "result": "incomplete",
            "retry_counter": 1, "data": {"runtime": "shell", "platform": "qemu-x86_64",
            "arch": "x86_64", "job_id": "42", "error_code": "Infrastructure",
            "kernel_revision": {"tree": "mainline", "branch": "master"}}});
        let e = event("job_result", &job);
        assert_eq!(e["runtime"], "shell");
        assert_eq!(e["device_type"], "qemu-x86_64");
        assert_eq!(e["retry"], 1);
        assert_eq!(e["is_infra_error"], true);
        assert!(e.get("error_msg").is_none());
        let h = json!({"node": {}, "child_nodes": [{"node": {"name": "baseline", "kind": "job"},
            "child_nodes": [{"node": {"name": "login", "kind": "test", "result": "pass"}, "child_nodes": []}]}]});
        let tests = test_results(&job, &h);
        assert_eq!(tests.len(), 1);
        assert_eq!(tests[0]["test_name"], "baseline.login");
        assert_eq!(tests[0]["result"], "pass");
    }
}
