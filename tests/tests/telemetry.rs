//! The telemetry endpoints (spec §2.8) over real HTTP: insert, list with filters and paging,
//! stats, anomalies, and every refused input. Each test runs on a fresh database (SQLite, or
//! PostgreSQL with `KERNELCI_TEST_DATABASE_URL`).
#![allow(clippy::unwrap_used)] // a panic is how a test reports a failure

use chrono::TimeDelta;
use kernelci_model::telemetry::EVENT_KEYS;
use kernelci_model::time;
use kernelci_tests::TestApp;
use serde_json::{Value, json};

/// An ISO time `minutes` ago.
fn ago(minutes: i64) -> String {
    ago_secs(minutes * 60)
}

/// An ISO time `seconds` ago.
fn ago_secs(seconds: i64) -> String {
    time::format(&(time::now() - TimeDelta::seconds(seconds)))
}

fn job(runtime: &str, device: &str, result: &str, infra: bool, minutes_ago: i64) -> Value {
    json!({
        "kind": "job_result", "runtime": runtime, "device_type": "board",
        "device_id": device, "job_name": "baseline", "result": result,
        "is_infra_error": infra, "ts": ago(minutes_ago),
    })
}

async fn post(app: &TestApp, events: &Value) -> (u16, Value) {
    app.send_json("POST", "/telemetry", Some(&app.admin_token), events)
        .await
}

async fn insert(app: &TestApp, events: Value) {
    let n = events.as_array().unwrap().len();
    let (status, body) = post(app, &events).await;
    assert_eq!((status, body), (200, json!({ "inserted": n })));
}

/// `(status, detail)` of a GET.
async fn detail(app: &TestApp, path: &str) -> (u16, Value) {
    let (status, body) = app.get(path, None).await;
    (status, body["detail"].clone())
}

async fn total(app: &TestApp, query: &str) -> i64 {
    let (status, body) = app.get(&format!("/telemetry?{query}"), None).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["total"].as_i64().unwrap()
}

#[tokio::test]
async fn insert_then_list_with_filters_and_paging() {
    let app = TestApp::start().await;
    let (_, token) = app.add_user("lab-bot", false).await;
    let events = json!([
        {"kind": "job_submission", "runtime": "lava-a", "job_name": "baseline",
         "ts": ago(30), "retry": 1, "unknown": "dropped"},
        job("lava-a", "board-01", "fail", true, 20),
        {"kind": "test_result", "runtime": "lava-b", "test_name": "login", "result": "pass",
         "ts": ago(10), "extra": {"log": "ok"}},
    ]);
    let (status, body) = app
        .send_json("POST", "/telemetry", Some(&token), &events)
        .await;
    assert_eq!((status, body), (200, json!({"inserted": 3})));

    let (status, page) = app.get("/telemetry", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["total"].clone(), page["limit"].clone()),
        (json!(3), json!(50))
    );
    assert_eq!(page["offset"], 0);
    let items = page["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["job_submission", "job_result", "test_result"]);
    let keys: Vec<&str> = items[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, EVENT_KEYS);
    assert_eq!(items[0]["retry"], 1);
    assert_eq!(items[0]["is_infra_error"], false);
    assert_eq!(items[0]["extra"], json!({}));
    assert_eq!(items[0]["device_id"], Value::Null);
    assert_eq!(items[0]["id"].as_str().unwrap().len(), 24);
    assert_eq!(items[2]["extra"], json!({"log": "ok"}));

    assert_eq!(total(&app, "runtime=lava-a").await, 2);
    assert_eq!(total(&app, "runtime=lava-a&kind=job_result").await, 1);
    assert_eq!(total(&app, "is_infra_error=true").await, 1);
    assert_eq!(total(&app, "is_infra_error=False").await, 2);
    assert_eq!(total(&app, "retry=1").await, 1);
    assert_eq!(total(&app, "device_id=board-01&result=fail").await, 1);
    assert_eq!(total(&app, "runtime=lava-a&runtime=lava-b").await, 1);
    assert_eq!(total(&app, "runtime=nowhere").await, 0);
    // Keys that are not filterable fields match nothing, like Mongo on a missing field.
    assert_eq!(total(&app, "lab=lava-a").await, 0);
    assert_eq!(total(&app, "retry=x").await, 0);
    let (status, body) = app.get("/telemetry?runtime=%00", None).await;
    assert_eq!(status, 400, "NUL in a URL: {body}");

    let since = ago(25).replace(':', "%3A");
    let until = ago(15).replace(':', "%3A");
    assert_eq!(total(&app, &format!("since={since}")).await, 2);
    assert_eq!(total(&app, &format!("until={until}")).await, 2);
    assert_eq!(
        total(&app, &format!("since={since}&until={until}")).await,
        1
    );

    let (_, page) = app.get("/telemetry?limit=1&offset=1", None).await;
    assert_eq!(
        (page["total"].clone(), page["limit"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["kind"], "job_result");
    let (_, page) = app.get("/telemetry?offset=5", None).await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["total"], 3);
}

#[tokio::test]
async fn refused_inputs_store_nothing() {
    let app = TestApp::start().await;
    let (status, _) = app
        .send_json(
            "POST",
            "/telemetry",
            None,
            &json!([job("a", "d", "pass", false, 1)]),
        )
        .await;
    assert_eq!(status, 401);

    let (status, body) = post(&app, &json!([])).await;
    assert_eq!(
        (status, body),
        (400, json!({"detail": "Events list cannot be empty"}))
    );

    let (status, body) = post(&app, &json!({"kind": "job_result"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "list_type");

    // One bad event refuses the batch: the good one before it is not stored.
    let batch = json!([job("a", "d", "pass", false, 1), {"kind": "bogus", "runtime": "a"}]);
    let (status, body) = post(&app, &batch).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "Invalid telemetry event: 1 validation error for TelemetryEvent\nkind: Input should \
         be 'runtime_error', 'job_submission', 'job_skip', 'job_result' or 'test_result'"
    );
    let (status, body) = post(&app, &json!([{"kind": "job_skip"}])).await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .ends_with("\nruntime: Field required"),
        "{body}"
    );
    let (status, body) = post(
        &app,
        &json!([{"kind": "job_skip", "runtime": "a", "ts": "x"}]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(total(&app, "").await, 0);

    assert_eq!(
        detail(&app, "/telemetry?is_infra_error=yes").await,
        (
            400,
            json!("Bad is_infra_error value, use 'true' or 'false'")
        )
    );
    assert_eq!(
        detail(&app, "/telemetry?since=yesterday").await,
        (400, json!("Invalid isoformat string: 'yesterday'"))
    );
    let (status, body) = app.get("/telemetry?limit=0", None).await;
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["query", "limit"]))
    );
    let (status, _) = app.get("/telemetry?offset=-1", None).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn large_batches_are_stored_in_one_go() {
    let app = TestApp::start().await;
    let events: Vec<Value> = (0..1201)
        .map(|i| json!({"kind": "test_result", "runtime": "lava-a", "test_name": format!("t{i}")}))
        .collect();
    insert(&app, Value::Array(events)).await;
    let (_, page) = app.get("/telemetry?limit=2000&offset=1199", None).await;
    assert_eq!(page["total"], 1201);
    let names: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["test_name"])
        .collect();
    assert_eq!(names, [&json!("t1199"), &json!("t1200")]);
}

#[tokio::test]
async fn events_past_retention_are_purged() {
    let app = TestApp::start().await;
    let old = time::format(&(time::now() - TimeDelta::days(15)));
    let events = json!([
        {"kind": "runtime_error", "runtime": "a", "ts": old},
        {"kind": "runtime_error", "runtime": "a"},
    ]);
    insert(&app, events).await;
    assert_eq!(
        total(&app, "").await,
        2,
        "kept until the next housekeeping round"
    );
    kernelci_api::housekeeping_once(&app.state).await;
    assert_eq!(total(&app, "").await, 1);
}

async fn stats(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/telemetry/stats?{query}"), None).await;
    assert_eq!(status, 200, "{query}: {body}");
    body.as_array().unwrap().clone()
}

#[tokio::test]
async fn stats_group_filter_and_sort() {
    let app = TestApp::start().await;
    insert(
        &app,
        json!([
            job("lava-a", "board-01", "incomplete", true, 5),
            job("lava-a", "board-01", "incomplete", true, 4),
            job("lava-a", "board-02", "pass", false, 3),
            job("lava-b", "board-03", "fail", false, 2),
            job("lava-b", "board-03", "skip", false, 1),
            job("lava-b", "board-03", "pass", false, 1),
            {"kind": "runtime_error", "runtime": "lava-b", "error_type": "online_check"},
        ]),
    )
    .await;

    assert_eq!(
        stats(&app, "group_by=lab").await,
        [
            json!({"lab": "lava-b", "total": 4, "pass": 1, "fail": 1, "incomplete": 0,
                   "skip": 1, "infra_error": 0}),
            json!({"lab": "lava-a", "total": 3, "pass": 1, "fail": 0, "incomplete": 2,
                   "skip": 0, "infra_error": 2}),
        ]
    );
    assert_eq!(
        stats(
            &app,
            "group_by=lab,device_id&kind=job_result&lab=lava-a&device_id=board-01"
        )
        .await,
        [
            json!({"lab": "lava-a", "device_id": "board-01", "total": 2, "pass": 0, "fail": 0,
                "incomplete": 2, "skip": 0, "infra_error": 2})
        ]
    );
    let rows = stats(&app, "group_by=runtime,kind&runtime=lava-b&lab=lava-b").await;
    let groups: Vec<(Value, Value)> = rows
        .iter()
        .map(|r| (r["kind"].clone(), r["total"].clone()))
        .collect();
    assert_eq!(
        groups,
        [
            (json!("job_result"), json!(3)),
            (json!("runtime_error"), json!(1))
        ]
    );
    let rows = stats(&app, "group_by=error_type&kind=runtime_error").await;
    assert_eq!(rows[0]["error_type"], "online_check");
    let since = ago_secs(210).replace(':', "%3A");
    let rows = stats(
        &app,
        &format!("group_by=device_id&kind=job_result&since={since}"),
    )
    .await;
    let devices: Vec<&Value> = rows.iter().map(|r| &r["device_id"]).collect();
    assert_eq!(devices, [&json!("board-03"), &json!("board-02")]);
    assert_eq!(
        stats(&app, "group_by=arch&tree=none").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn stats_refuses_bad_parameters() {
    let app = TestApp::start().await;
    let required = json!("'group_by' parameter is required");
    assert_eq!(
        detail(&app, "/telemetry/stats").await,
        (400, required.clone())
    );
    assert_eq!(
        detail(&app, "/telemetry/stats?group_by=").await,
        (400, required)
    );
    assert_eq!(
        detail(&app, "/telemetry/stats?group_by=runtime,platform").await,
        (400, json!("Invalid group_by fields: {'platform'}"))
    );
    assert_eq!(
        detail(
            &app,
            "/telemetry/stats?group_by=lab&lab=lava-collabora&runtime=lava-cip"
        )
        .await,
        (
            400,
            json!("'lab' and 'runtime' must match when both are provided")
        )
    );
    assert_eq!(
        detail(&app, "/telemetry/stats?group_by=lab&until=soon").await,
        (400, json!("Invalid isoformat string: 'soon'"))
    );
}

async fn anomalies(app: &TestApp, query: &str) -> Value {
    let (status, body) = app
        .get(&format!("/telemetry/anomalies?{query}"), None)
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

#[tokio::test]
async fn anomalies_by_device_and_errors() {
    let app = TestApp::start().await;
    let mut events = Vec::new();
    for (i, msg) in [
        "first",
        "second",
        "bootloader-commands timed out after 180 seconds",
    ]
    .iter()
    .enumerate()
    {
        let mut e = job("lava-test", "board-01", "incomplete", true, 30 - i as i64);
        e["error_type"] = json!("Infrastructure");
        e["error_msg"] = json!(msg);
        events.push(e);
    }
    for _ in 0..3 {
        events.push(job("lava-test", "board-02", "pass", false, 20));
    }
    // Outside the default 6h window: not counted.
    events.push(job("lava-test", "board-01", "pass", false, 7 * 60));
    for _ in 0..7 {
        events.push(json!({"kind": "runtime_error", "runtime": "lava-x",
                           "error_type": "online_check", "ts": ago(10)}));
    }
    events.push(json!({"kind": "job_skip", "runtime": "lava-y", "error_type": "offline"}));
    insert(&app, Value::Array(events)).await;

    let body = anomalies(&app, "scope=device&window=6h&threshold=1.0&min_total=3").await;
    assert_eq!(body["window"], "6h");
    assert_eq!(body["threshold"], 1.0);
    assert_eq!(body["min_total"], 3);
    assert_eq!(body["scope"], "device");
    assert!(body["since"].as_str().unwrap().ends_with("+00:00"));
    let found = body["result_anomalies"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{body}");
    let mut row = found[0].clone();
    let last_seen = row.as_object_mut().unwrap().remove("last_seen").unwrap();
    assert!(time::parse_iso(last_seen.as_str().unwrap()).is_ok());
    assert_eq!(
        row,
        json!({"runtime": "lava-test", "lab": "lava-test", "device_type": "board",
               "device_id": "board-01", "total": 3, "pass": 0, "fail": 0, "incomplete": 3,
               "skip": 0, "infra_error": 3, "infra_rate": 1.0, "fail_rate": 1.0,
               "constant_failure": true, "constant_infra_failure": true,
               "latest_error_type": "Infrastructure",
               "latest_error_msg": "bootloader-commands timed out after 180 seconds"})
    );
    assert_eq!(
        body["error_anomalies"],
        json!([{"runtime": "lava-x", "error_type": "online_check", "count": 7}])
    );

    // Defaults: 6h window, threshold 0.5, min_total 3, per device type.
    let body = anomalies(&app, "").await;
    assert_eq!(
        (
            &body["window"],
            &body["threshold"],
            &body["min_total"],
            &body["scope"]
        ),
        (&json!("6h"), &json!(0.5), &json!(3), &json!("device_type"))
    );
    let found = body["result_anomalies"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{body}");
    assert_eq!(
        (&found[0]["total"], &found[0]["fail_rate"]),
        (&json!(6), &json!(0.5))
    );
    assert!(found[0].get("device_id").is_none());
    assert_eq!(found[0]["constant_failure"], false);
    // Newer events of the group come later: the newest is a pass without error.
    assert_eq!(found[0]["latest_error_type"], Value::Null);

    let body = anomalies(&app, "min_total=1&threshold=0.9").await;
    assert_eq!(body["result_anomalies"], json!([]));
    let counts: Vec<&Value> = body["error_anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["count"])
        .collect();
    assert_eq!(counts, [&json!(7), &json!(1)]);
    let body = anomalies(&app, "window=12h&scope=device&threshold=0").await;
    assert_eq!(body["result_anomalies"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn anomalies_refuse_bad_parameters() {
    let app = TestApp::start().await;
    let (status, body) = app.get("/telemetry/anomalies?scope=lab", None).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "scope"]));
    assert_eq!(
        detail(&app, "/telemetry/anomalies?window=2h").await,
        (
            400,
            json!("Invalid window '2h'. Use: 1h, 3h, 6h, 12h, 24h, 48h")
        )
    );
    for query in [
        "threshold=1.5",
        "threshold=-0.1",
        "threshold=x",
        "threshold=nan",
        "min_total=0",
    ] {
        let (status, body) = app
            .get(&format!("/telemetry/anomalies?{query}"), None)
            .await;
        assert_eq!(status, 422, "{query}: {body}");
    }
}
