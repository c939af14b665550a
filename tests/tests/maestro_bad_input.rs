//! Bad input to the Maestro API: every malformed, mistyped, oversized or hostile request gets
//! a 4xx with a precise `detail`, and nothing is stored or changed (the node table, the event
//! history and the nodes themselves are compared before and after).
#![allow(clippy::unwrap_used)] // a panic is how a test reports a failure

use kernelci_tests::{TestApp, send};
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

fn bad_id_msg(raw: &str) -> String {
    format!(
        "'{raw}' is not a valid ObjectId, it must be a 12-byte input or a 24-character hex string"
    )
}

fn checkout_body() -> Value {
    json!({
        "kind": "checkout",
        "name": "checkout",
        "path": ["checkout"],
        "data": {"kernel_revision": {
            "tree": "mainline",
            "url": "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git",
            "branch": "master",
            "commit": "2a987e65025e2b79c6d453b78cb5985ac6e5eb26",
            "version": {"version": 6, "patchlevel": 7}
        }}
    })
}

fn kbuild_body() -> Value {
    json!({"kind": "kbuild", "name": "kbuild-gcc-12-x86", "path": ["checkout", "kbuild-gcc-12-x86"],
           "data": {"arch": "x86_64"}})
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

fn detail(v: &Value) -> &str {
    v["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no string detail in {v}"))
}

/// The first FastAPI-style validation error of a 422 body.
fn first_error(v: &Value) -> &Value {
    let errors = v["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("no error list in {v}"));
    assert!(!errors.is_empty(), "{v}");
    for e in errors {
        assert!(
            e["type"].is_string() && e["loc"].is_array() && e["msg"].is_string(),
            "{e}"
        );
    }
    &errors[0]
}

/// `loc` joined with dots (`body.name`).
fn loc(e: &Value) -> String {
    let parts: Vec<String> = e["loc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| p.to_string())
        })
        .collect();
    parts.join(".")
}

async fn create(app: &TestApp, body: &Value) -> Value {
    let (status, v) = app.post_admin("/node", body).await;
    assert_eq!(status, 200, "POST /node {body}: {v}");
    v
}

/// Everything a bad request must leave alone: the node count, every node, every event.
async fn snapshot(app: &TestApp) -> Value {
    let (s1, count) = app.get("/count", None).await;
    let (s2, nodes) = app.get("/nodes/fast", None).await;
    let (s3, events) = app.get("/events", None).await;
    assert_eq!((s1, s2, s3), (200, 200, 200), "{count} {nodes} {events}");
    json!({"count": count, "nodes": nodes, "events": events})
}

/// A store with a checkout and a kbuild (child of the checkout).
async fn seeded() -> (TestApp, Value, Value) {
    let app = TestApp::start().await;
    let checkout = create(&app, &checkout_body()).await;
    let mut k = kbuild_body();
    k["parent"] = json!(id_of(&checkout));
    let kbuild = create(&app, &k).await;
    (app, checkout, kbuild)
}

async fn post_raw(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let req = app
        .client
        .post(app.url(path))
        .bearer_auth(&app.admin_token)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    send(req).await
}

async fn query(app: &TestApp, path: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    send(app.client.get(app.url(path)).query(pairs)).await
}

// ------------------------------------------------------------------------------------------
// Bodies

#[tokio::test]
async fn malformed_json_is_422_and_stores_nothing() {
    let (app, checkout, _) = seeded().await;
    let before = snapshot(&app).await;
    for body in [
        r#"{"kind": "checkout","#,
        "{'kind': 'checkout'}",
        "{\"name\": \"x\"} trailing",
        "nul",
    ] {
        let (status, v) = post_raw(&app, "/node", body).await;
        assert_eq!(status, 422, "{body}: {v}");
        let e = first_error(&v);
        assert_eq!(e["type"], "json_invalid", "{body}");
        assert!(
            e["msg"].as_str().unwrap().starts_with("JSON decode error"),
            "{e}"
        );
        assert_eq!(e["loc"][0], "body");
    }
    let id = id_of(&checkout);
    let req = app
        .client
        .put(app.url(&format!("/node/{id}")))
        .bearer_auth(&app.admin_token)
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"kind": "checkout", "state": "done""#);
    let (status, v) = send(req).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(first_error(&v)["type"], "json_invalid");
    let (status, v) = post_raw(&app, "/node", "").await;
    assert_eq!(status, 422);
    assert_eq!(
        (first_error(&v)["type"].clone(), loc(first_error(&v))),
        (json!("missing"), "body".into())
    );
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn non_object_body_is_422() {
    let (app, checkout, _) = seeded().await;
    let before = snapshot(&app).await;
    let id = id_of(&checkout);
    for body in [
        json!([1, 2]),
        json!("checkout"),
        json!(5),
        Value::Null,
        json!(true),
    ] {
        let (status, v) = app.post_admin("/node", &body).await;
        assert_eq!(status, 422, "POST {body}: {v}");
        let e = first_error(&v);
        assert_eq!(e["type"], "model_attributes_type", "{body}");
        assert_eq!(loc(e), "body");
        let (status, _) = app
            .send_json("PUT", &format!("/node/{id}"), Some(&app.admin_token), &body)
            .await;
        assert_eq!(status, 422, "PUT {body}");
        let (status, _) = app
            .send_json(
                "PATCH",
                &format!("/node/{id}"),
                Some(&app.admin_token),
                &body,
            )
            .await;
        assert_eq!(status, 422, "PATCH {body}");
        let (status, _) = app
            .send_json(
                "PUT",
                &format!("/nodes/{id}"),
                Some(&app.admin_token),
                &body,
            )
            .await;
        assert_eq!(status, 422, "PUT /nodes {body}");
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn wrong_field_types_are_422_with_the_field_location() {
    let (app, _, _) = seeded().await;
    let before = snapshot(&app).await;
    let cases = [
        ("name", json!(5), "string_type", "body.name"),
        ("path", json!("checkout"), "list_type", "body.path"),
        (
            "retry_counter",
            json!("1"),
            "int_type",
            "body.retry_counter",
        ),
        (
            "retry_counter",
            json!(1.0),
            "int_type",
            "body.retry_counter",
        ),
        (
            "retry_counter",
            json!(true),
            "int_type",
            "body.retry_counter",
        ),
        (
            "artifacts",
            json!({"log": "not a url"}),
            "url_parsing",
            "body.artifacts.log",
        ),
        (
            "artifacts",
            json!({"log": "ftp://files.example.org/log"}),
            "url_parsing",
            "body.artifacts.log",
        ),
        (
            "artifacts",
            json!({"log": 5}),
            "url_type",
            "body.artifacts.log",
        ),
        (
            "artifacts",
            json!(["https://x.org/"]),
            "dict_type",
            "body.artifacts",
        ),
        ("data", json!("x"), "dict_type", "body.data"),
        ("state", json!("bogus"), "enum", "body.state"),
        ("result", json!("maybe"), "enum", "body.result"),
        (
            "created",
            json!("bad"),
            "datetime_from_date_parsing",
            "body.created",
        ),
        ("timeout", json!(12), "datetime_type", "body.timeout"),
        (
            "processed_by_kcidb_bridge",
            json!("yes"),
            "bool_type",
            "body.processed_by_kcidb_bridge",
        ),
        ("kind", json!(5), "string_type", "body.kind"),
        (
            "user_groups",
            json!(["a", "a"]),
            "value_error",
            "body.user_groups",
        ),
    ];
    for (field, value, kind, at) in cases {
        let mut body = checkout_body();
        body[field] = value.clone();
        let (status, v) = app.post_admin("/node", &body).await;
        assert_eq!(status, 422, "{field}={value}: {v}");
        let e = first_error(&v);
        assert_eq!(
            (e["type"].as_str().unwrap(), loc(e).as_str()),
            (kind, at),
            "{field}={value}: {v}"
        );
    }
    let mut body = checkout_body();
    body.as_object_mut().unwrap().remove("name");
    body.as_object_mut().unwrap().remove("path");
    let (status, v) = app.post_admin("/node", &body).await;
    assert_eq!(status, 422);
    let locs: Vec<String> = v["detail"].as_array().unwrap().iter().map(loc).collect();
    assert_eq!(
        locs,
        ["body.name", "body.path"],
        "every problem is reported"
    );
    assert!(
        v["detail"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] == "missing" && e["msg"] == "Field required")
    );
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn nested_field_errors_have_fastapi_locations() {
    let app = TestApp::start().await;
    let mut body = checkout_body();
    body["artifacts"] = json!({"log": "not a url"});
    let (status, v) = app.post_admin("/node", &body).await;
    assert_eq!(status, 422);
    assert_eq!(first_error(&v)["loc"], json!(["body", "artifacts", "log"]));
    let mut body = checkout_body();
    body["path"] = json!(["checkout", 5]);
    let (status, v) = app.post_admin("/node", &body).await;
    assert_eq!(status, 422);
    assert_eq!(first_error(&v)["loc"], json!(["body", "path", 1]));
}

#[tokio::test]
async fn unknown_kind_is_400() {
    let (app, _, _) = seeded().await;
    let before = snapshot(&app).await;
    for (kind, name) in [
        (Some("node"), "node"),
        (Some("foo"), "foo"),
        (None, "node"),
        (Some(""), ""),
    ] {
        let mut body = checkout_body();
        match kind {
            Some(k) => body["kind"] = json!(k),
            None => {
                body.as_object_mut().unwrap().remove("kind");
            }
        }
        let (status, v) = app.post_admin("/node", &body).await;
        assert_eq!(status, 400, "{kind:?}: {v}");
        assert_eq!(detail(&v), format!("Unsupported node kind: {name}"));
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn kind_specific_data_errors_are_400_naming_the_field() {
    let (app, _, kbuild) = seeded().await;
    let before = snapshot(&app).await;
    let cases = [
        (
            json!({"kind": "kbuild", "name": "k", "path": ["k"], "data": {"arch": 5}}),
            "data.arch: Input should be a valid string",
        ),
        (
            json!({"kind": "kbuild", "name": "k", "path": ["k"], "data": {"error_code": "nope"}}),
            "data.error_code: Input should be one of",
        ),
        (
            json!({"kind": "checkout", "name": "c", "path": ["c"], "data": {"error_code": "Infrastructure"}}),
            "data.error_code: Input should be one of 'node_timeout', 'git_checkout_failure'",
        ),
        (
            json!({"kind": "checkout", "name": "c", "path": ["c"], "data": {"kernel_revision": {"tree": "t", "branch": "b", "commit": "c"}}}),
            "data.kernel_revision.url: Field required",
        ),
        (
            json!({"kind": "checkout", "name": "c", "path": ["c"], "data": {"kernel_revision": {"tree": "t", "url": "u", "branch": "b", "commit": "c", "version": {"version": "six", "patchlevel": 1}}}}),
            "data.kernel_revision.version.version: Input should be a valid integer",
        ),
        (
            json!({"kind": "test", "name": "t", "path": ["t"], "data": {"misc": 5}}),
            "data.misc: Input should be a valid dictionary",
        ),
        (
            json!({"kind": "job", "name": "j", "path": ["j"], "data": {"test_source": "not a url"}}),
            "data.test_source: Input should be a valid URL",
        ),
        (
            json!({"kind": "regression", "name": "r", "path": ["r"], "data": {"fail_node": "xyz"}}),
            "data.fail_node: 'xyz' is not a valid ObjectId",
        ),
    ];
    for (body, needle) in cases {
        let (status, v) = app.post_admin("/node", &body).await;
        assert_eq!(status, 400, "{body}: {v}");
        let d = detail(&v);
        assert!(d.contains(needle), "{body}: {d}");
        assert!(d.contains("validation error"), "{d}");
    }
    // The same rules on PUT and PATCH of an existing kbuild.
    let id = id_of(&kbuild);
    let mut put = kbuild.clone();
    put["data"]["arch"] = json!(5);
    let (status, v) = app
        .send_json("PUT", &format!("/node/{id}"), Some(&app.admin_token), &put)
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(detail(&v).contains("data.arch"), "{v}");
    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&app.admin_token),
            &json!({"data": {"arch": 5}}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(detail(&v).contains("data.arch"), "{v}");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn oversized_body_is_413_with_json_detail() {
    let app = TestApp::start().await;
    let before = snapshot(&app).await;
    let blob = "a".repeat(33 * 1024 * 1024);
    let body = format!(
        r#"{{"kind": "checkout", "name": "big", "path": ["big"], "debug": {{"blob": "{blob}"}}}}"#
    );
    let (status, v) = post_raw(&app, "/node", &body).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(detail(&v), "Request body too large (limit 33554432 bytes)");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn large_body_under_the_limit_is_accepted() {
    let app = TestApp::start().await;
    let blob = "a".repeat(4 * 1024 * 1024);
    let body = json!({"kind": "process", "name": "big", "path": ["big"], "debug": {"blob": blob}});
    let (status, v) = app.post_admin("/node", &body).await;
    assert_eq!(status, 200, "4 MiB is below the 32 MiB limit");
    let (_, got) = app.get(&format!("/node/{}", id_of(&v)), None).await;
    assert_eq!(
        got["debug"]["blob"].as_str().map(str::len),
        Some(4 * 1024 * 1024)
    );
}

// ------------------------------------------------------------------------------------------
// Ids, parents, transitions

#[tokio::test]
async fn invalid_ids_in_paths_are_400() {
    let (app, checkout, _) = seeded().await;
    let before = snapshot(&app).await;
    let token = Some(app.admin_token.as_str());
    for raw in [
        "xyz",
        "65a1355ee98651d0fe81e50",
        "65a1355ee98651d0fe81e50g",
        "65a1355ee98651d0fe81e5000",
    ] {
        let (status, v) = app.get(&format!("/node/{raw}"), None).await;
        assert_eq!(
            (status, detail(&v)),
            (400, bad_id_msg(raw).as_str()),
            "GET {raw}"
        );
        let (status, v) = app
            .send_json("PUT", &format!("/node/{raw}"), token, &checkout)
            .await;
        assert_eq!(
            (status, detail(&v)),
            (400, bad_id_msg(raw).as_str()),
            "PUT {raw}"
        );
        let (status, v) = app
            .send_json(
                "PATCH",
                &format!("/node/{raw}"),
                token,
                &json!({"state": "done"}),
            )
            .await;
        assert_eq!(
            (status, detail(&v)),
            (400, bad_id_msg(raw).as_str()),
            "PATCH {raw}"
        );
        let hierarchy = json!({"node": checkout, "child_nodes": []});
        let (status, v) = app
            .send_json("PUT", &format!("/nodes/{raw}"), token, &hierarchy)
            .await;
        assert_eq!(
            (status, detail(&v)),
            (400, bad_id_msg(raw).as_str()),
            "PUT /nodes {raw}"
        );
        let batch = json!({"nodes": [raw], "field": "processed_by_kcidb_bridge", "value": "true"});
        let (status, v) = app.send_json("PUT", "/batch/nodeset", token, &batch).await;
        assert_eq!(
            (status, detail(&v)),
            (400, bad_id_msg(raw).as_str()),
            "batch {raw}"
        );
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn invalid_parent_is_rejected() {
    let (app, _, _) = seeded().await;
    let before = snapshot(&app).await;
    let mut body = kbuild_body();
    body["parent"] = json!("xyz");
    let (status, v) = app.post_admin("/node", &body).await;
    assert_eq!(status, 422, "{v}");
    let e = first_error(&v);
    assert_eq!(loc(e), "body.parent");
    assert!(
        e["msg"].as_str().unwrap().contains(&bad_id_msg("xyz")),
        "{e}"
    );
    body["parent"] = json!(5);
    let (status, _) = app.post_admin("/node", &body).await;
    assert_eq!(status, 422);
    body["parent"] = json!("65a1355ee98651d0fe81e500");
    let (status, v) = app.post_admin("/node", &body).await;
    assert_eq!(
        (status, detail(&v)),
        (404, "Parent not found with id: 65a1355ee98651d0fe81e500")
    );
    for q in ["parent=xyz", "parent__in=xyz", "parent__ne=12"] {
        let (status, v) = app.get(&format!("/nodes?{q}"), None).await;
        assert_eq!(status, 400, "{q}: {v}");
        assert!(
            detail(&v).ends_with(
                "is not a valid ObjectId, it must be a 12-byte input or a 24-character hex string"
            ),
            "{q}: {v}"
        );
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn invalid_state_transitions_change_nothing() {
    let (app, checkout, _) = seeded().await;
    let id = id_of(&checkout);
    let (status, done) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&app.admin_token),
            &json!({"state": "done", "result": "pass"}),
        )
        .await;
    assert_eq!(status, 200);
    let before = snapshot(&app).await;
    for state in ["running", "available", "closing"] {
        let mut put = done.clone();
        put["state"] = json!(state);
        put["result"] = json!("fail");
        let (status, v) = app
            .send_json("PUT", &format!("/node/{id}"), Some(&app.admin_token), &put)
            .await;
        assert_eq!(
            (status, detail(&v)),
            (
                400,
                format!("Transition not allowed with state: {state}").as_str()
            )
        );
        let patch = json!({"state": state, "result": "fail"});
        let (status, v) = app
            .send_json(
                "PATCH",
                &format!("/node/{id}"),
                Some(&app.admin_token),
                &patch,
            )
            .await;
        assert_eq!(
            (status, detail(&v)),
            (
                400,
                format!("Transition not allowed with state: {state}").as_str()
            )
        );
    }
    let (_, now) = app.get(&format!("/node/{id}"), None).await;
    assert_eq!(now, done, "the node is unchanged");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn bad_patch_values_are_422() {
    let (app, checkout, _) = seeded().await;
    let before = snapshot(&app).await;
    let id = id_of(&checkout);
    let cases = [
        (json!({"state": "bogus"}), "body.state"),
        (json!({"state": null}), "body.state"),
        (json!({"result": "maybe"}), "body.result"),
        (json!({"timeout": "notatime"}), "body.timeout"),
        (json!({"holdoff": 5}), "body.holdoff"),
        (json!({"data": 5}), "body.data"),
        (json!({"debug": [1]}), "body.debug"),
        (json!({"artifacts": {"log": "nope"}}), "body.artifacts.log"),
        (json!({"jobfilter": "baseline"}), "body.jobfilter"),
        (
            json!({"processed_by_kcidb_bridge": "true"}),
            "body.processed_by_kcidb_bridge",
        ),
        (json!({"retry_counter": 1.5}), "body.retry_counter"),
        (json!({"state": "done", "result": "maybe"}), "body.result"),
    ];
    for (body, at) in cases {
        let (status, v) = app
            .send_json(
                "PATCH",
                &format!("/node/{id}"),
                Some(&app.admin_token),
                &body,
            )
            .await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(loc(first_error(&v)), at, "{body}");
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn bad_put_bodies_change_nothing() {
    let (app, checkout, _) = seeded().await;
    let before = snapshot(&app).await;
    let id = id_of(&checkout);
    let path = format!("/node/{id}");
    let token = Some(app.admin_token.as_str());
    let mut missing = checkout.clone();
    missing.as_object_mut().unwrap().remove("name");
    let (status, v) = app.send_json("PUT", &path, token, &missing).await;
    assert_eq!(status, 422);
    assert_eq!(loc(first_error(&v)), "body.name");
    let mut bad_kind = checkout.clone();
    bad_kind["kind"] = json!("node");
    let (status, v) = app.send_json("PUT", &path, token, &bad_kind).await;
    assert_eq!((status, detail(&v)), (400, "Unsupported node kind: node"));
    let (status, v) = app
        .send_json("PUT", &format!("{path}?noevent=maybe"), token, &checkout)
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(loc(first_error(&v)), "query.noevent");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn bad_hierarchies_write_nothing() {
    let (app, _, kbuild) = seeded().await;
    let before = snapshot(&app).await;
    let id = id_of(&kbuild);
    let path = format!("/nodes/{id}");
    let token = Some(app.admin_token.as_str());
    let mut root = kbuild.clone();
    root["state"] = json!("done");
    let good_child =
        json!({"node": {"kind": "test", "name": "ok", "path": ["ok"]}, "child_nodes": []});
    let cases = [
        (
            json!({"kind": "foo", "name": "t", "path": ["t"]}),
            400,
            "Unsupported node kind: foo",
        ),
        (
            json!({"kind": "test", "name": "t", "path": ["t"], "data": {"misc": 1}}),
            400,
            "data.misc",
        ),
        (json!({"kind": "test", "name": 5, "path": ["t"]}), 422, ""),
        (
            json!({"id": "xyz", "kind": "test", "name": "t", "path": ["t"]}),
            400,
            "'xyz' is not a valid ObjectId",
        ),
    ];
    for (bad, status_expected, needle) in cases {
        // The bad node is the last one of the tree: earlier nodes must not be written either.
        let body =
            json!({"node": root, "child_nodes": [good_child, {"node": bad, "child_nodes": []}]});
        let (status, v) = app.send_json("PUT", &path, token, &body).await;
        assert_eq!(status, status_expected, "{bad}: {v}");
        if status == 400 {
            assert!(detail(&v).contains(needle), "{bad}: {v}");
        }
    }
    let ghost =
        json!({"id": "65a1355ee98651d0fe81e500", "kind": "test", "name": "t", "path": ["t"]});
    let body =
        json!({"node": root, "child_nodes": [good_child, {"node": ghost, "child_nodes": []}]});
    let (status, v) = app.send_json("PUT", &path, token, &body).await;
    assert_eq!(status, 404, "a child id that does not exist: {v}");
    detail(&v);
    let missing_children = json!({"node": root, "child_nodes": [{"node": {"kind": "test", "name": "t", "path": ["t"]}}]});
    let (status, v) = app.send_json("PUT", &path, token, &missing_children).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(first_error(&v)["type"], "missing");
    let (status, v) = app
        .send_json("PUT", &path, token, &json!({"node": root}))
        .await;
    assert_eq!(status, 422, "{v}");
    let (status, _) = app
        .send_json(
            "PUT",
            &path,
            token,
            &json!({"node": root, "child_nodes": {}}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn bad_batch_nodeset_changes_nothing() {
    let (app, checkout, _) = seeded().await;
    let before = snapshot(&app).await;
    let id = id_of(&checkout);
    let token = Some(app.admin_token.as_str());
    let cases = [
        (
            json!({"nodes": [id], "field": "state", "value": "true"}),
            400,
        ),
        (
            json!({"nodes": [id], "field": "processed_by_kcidb_bridge", "value": "yes"}),
            400,
        ),
        (
            json!({"nodes": [id], "field": "processed_by_kcidb_bridge", "value": true}),
            422,
        ),
        (
            json!({"nodes": id, "field": "processed_by_kcidb_bridge", "value": "true"}),
            422,
        ),
        (
            json!({"nodes": [5], "field": "processed_by_kcidb_bridge", "value": "true"}),
            422,
        ),
        (
            json!({"field": "processed_by_kcidb_bridge", "value": "true"}),
            422,
        ),
        (json!({"nodes": [id], "value": "true"}), 422),
        (
            json!({"nodes": ["65a1355ee98651d0fe81e500"], "field": "processed_by_kcidb_bridge", "value": "true"}),
            404,
        ),
    ];
    for (body, expected) in cases {
        let (status, v) = app.send_json("PUT", "/batch/nodeset", token, &body).await;
        assert_eq!(status, expected, "{body}: {v}");
        if expected == 422 {
            first_error(&v);
        } else {
            detail(&v);
        }
    }
    assert_eq!(snapshot(&app).await, before);
}

// ------------------------------------------------------------------------------------------
// Query strings

#[tokio::test]
async fn sql_injection_in_filters_matches_nothing_and_harms_nothing() {
    let (app, checkout, _) = seeded().await;
    let before = snapshot(&app).await;
    let hostile: [(&str, &str); 14] = [
        ("name", "x' OR '1'='1"),
        ("name", "checkout' --"),
        ("data.x'); DROP TABLE nodes;--", "1"),
        ("kind__in", "a') OR 1=1--"),
        ("kind__nin", "checkout') OR ('1'='1"),
        ("owner", "admin\" OR \"1\"=\"1"),
        ("treeid", "1; DELETE FROM nodes"),
        ("data.kernel_revision.tree' || '", "mainline"),
        ("data.kernel_revision.tree", "mainline' OR '1'='1"),
        ("name__re", "' OR 1=1 --"),
        ("data.$where", "1"),
        ("data.a->>'b'", "1"),
        ("group__ne", "x'); DROP TABLE events;--"),
        ("data.arch__lt", "0) OR (1=1"),
    ];
    for (key, value) in hostile {
        for path in ["/nodes", "/count", "/nodes/fast"] {
            let (status, v) = query(&app, path, &[(key, value)]).await;
            assert!(
                status == 200 || status == 400,
                "{path} {key}={value}: {status} {v}"
            );
            if status == 400 {
                detail(&v);
                continue;
            }
            let n = match path {
                "/nodes" => v["total"].as_i64().unwrap(),
                "/count" => v.as_i64().unwrap(),
                _ => v.as_array().unwrap().len() as i64,
            };
            let expected = match key {
                // Negative conditions hold for every node: the value is just an odd string.
                "kind__nin" | "group__ne" => 2,
                _ => 0,
            };
            assert_eq!(n, expected, "{path} {key}={value}: {v}");
        }
    }
    for (key, value) in [
        ("name", "x' OR '1'='1"),
        ("data.x'); DROP TABLE events;--", "1"),
        ("path", "') OR 1=1--"),
        ("kind__in", "a') OR 1=1--"),
    ] {
        let (status, v) = query(&app, "/events", &[(key, value)]).await;
        assert!(
            status == 200 || status == 400,
            "/events {key}={value}: {status} {v}"
        );
        if status == 200 {
            assert_eq!(v, json!([]), "/events {key}={value}");
        }
    }
    assert_eq!(snapshot(&app).await, before, "tables intact");
    let (status, v) = app.post_admin("/node", &checkout_body()).await;
    assert_eq!(status, 200, "the store still works: {v}");
    let (_, got) = app.get(&format!("/node/{}", id_of(&checkout)), None).await;
    assert_eq!(got, checkout);
}

#[tokio::test]
async fn hostile_strings_are_stored_verbatim() {
    let app = TestApp::start().await;
    let name = "x'); DROP TABLE nodes;-- \"quoted\" \\ back ☃";
    let body = json!({"kind": "process", "name": name, "path": [name], "group": "' OR 1=1",
                      "data": {"k'ey\"": "va'l\"ue"}});
    let node = create(&app, &body).await;
    let (status, v) = query(&app, "/nodes", &[("name", name)]).await;
    assert_eq!(status, 200);
    assert_eq!(v["items"], json!([node]));
    let (_, v) = query(&app, "/count", &[("group", "' OR 1=1")]).await;
    assert_eq!(v, json!(1));
    let (_, v) = query(&app, "/count", &[("data.k'ey", "va'l\"ue")]).await;
    assert_eq!(v, json!(0), "a different key");
    let (_, v) = query(&app, "/nodes/fast", &[("path", name)]).await;
    assert_eq!(v, json!([node]));
}

#[tokio::test]
async fn bad_filter_values_are_400() {
    let (app, _, _) = seeded().await;
    let before = snapshot(&app).await;
    let cases: [(&str, &str, &str); 10] = [
        ("created__gt", "bad", "Invalid isoformat string: 'bad'"),
        (
            "created",
            "2024-13-45",
            "Invalid isoformat string: '2024-13-45'",
        ),
        ("updated__gte", "", "Invalid isoformat string: ''"),
        (
            "timeout__lt",
            "2024-01-01T25:00:00",
            "Invalid isoformat string: '2024-01-01T25:00:00'",
        ),
        (
            "holdoff__in",
            "2024-01-01,yesterday",
            "Invalid isoformat string: 'yesterday'",
        ),
        (
            "created__gt",
            "2024-01-01' OR '1'='1",
            "Invalid isoformat string: '2024-01-01' OR '1'='1'",
        ),
        (
            "retry_counter",
            "one",
            "invalid literal for int() with base 10: 'one'",
        ),
        (
            "data.x__int",
            "1 OR 1=1",
            "invalid literal for int() with base 10: '1 OR 1=1'",
        ),
        (
            "processed_by_kcidb_bridge",
            "maybe",
            "Invalid boolean value for processed_by_kcidb_bridge: 'maybe', use 'true' or 'false'",
        ),
        (
            "name__foo",
            "x",
            "Unsupported filter operator 'foo' in 'name__foo'",
        ),
    ];
    for (key, value, msg) in cases {
        for path in ["/nodes", "/count", "/nodes/fast"] {
            let (status, v) = query(&app, path, &[(key, value)]).await;
            assert_eq!(status, 400, "{path} {key}={value}: {v}");
            assert_eq!(detail(&v), msg, "{path} {key}={value}");
        }
    }
    for key in ["data.x\"y", "data..x", "data.", "data.x\\y"] {
        let (status, v) = query(&app, "/nodes", &[(key, "1")]).await;
        assert_eq!(status, 400, "{key}: {v}");
        assert_eq!(detail(&v), format!("Invalid filter field name: '{key}'"));
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn bad_regex_is_400() {
    let (app, _, _) = seeded().await;
    let long = "a".repeat(1001);
    for (key, pattern) in [
        ("name__re", "("),
        ("data.arch__re", "[a-"),
        ("path__re", "x{2,1}"),
        ("name__re", long.as_str()),
    ] {
        for path in ["/nodes", "/count", "/nodes/fast"] {
            let (status, v) = query(&app, path, &[(key, pattern)]).await;
            assert_eq!(status, 400, "{path} {key}={pattern}: {v}");
            assert!(
                detail(&v).starts_with("Invalid regular expression '"),
                "{v}"
            );
        }
    }
    let (status, v) = query(&app, "/events", &[("path", "(")]).await;
    assert_eq!(status, 400, "{v}");
    assert!(detail(&v).starts_with("Invalid regular expression"), "{v}");
}

#[tokio::test]
async fn bad_paging_is_422() {
    let (app, _, _) = seeded().await;
    let cases = [
        (
            "/nodes",
            "limit",
            "0",
            "greater_than_equal",
            "Input should be greater than or equal to 1",
        ),
        (
            "/nodes",
            "limit",
            "-5",
            "greater_than_equal",
            "Input should be greater than or equal to 1",
        ),
        (
            "/nodes",
            "offset",
            "-1",
            "greater_than_equal",
            "Input should be greater than or equal to 0",
        ),
        (
            "/nodes",
            "limit",
            "abc",
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            "/nodes",
            "limit",
            "1.5",
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            "/nodes/fast",
            "limit",
            "0",
            "greater_than_equal",
            "Input should be greater than or equal to 1",
        ),
        (
            "/nodes/fast",
            "offset",
            "x",
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
    ];
    for (path, key, value, kind, msg) in cases {
        let (status, v) = query(&app, path, &[(key, value)]).await;
        assert_eq!(status, 422, "{path} {key}={value}: {v}");
        let e = first_error(&v);
        assert_eq!(e["type"], kind, "{path} {key}={value}");
        assert_eq!(e["msg"], msg);
        assert_eq!(e["loc"], json!(["query", key]));
        assert_eq!(e["input"], value);
    }
    for (q, msg) in [
        ("limit=abc", "invalid literal for int() with base 10: 'abc'"),
        (
            "offset=1.5",
            "invalid literal for int() with base 10: '1.5'",
        ),
    ] {
        let (status, v) = app.get(&format!("/events?{q}"), None).await;
        assert_eq!(status, 400, "/events?{q}: {v}");
        assert!(detail(&v).starts_with(msg), "{v}");
    }
}

// ------------------------------------------------------------------------------------------
// Auth and pub/sub

#[tokio::test]
async fn missing_or_bad_token_is_401_before_body_validation() {
    let (app, checkout, _) = seeded().await;
    let before = snapshot(&app).await;
    let unauthorized = json!({"detail": "Unauthorized"});
    let url = app.url("/node");
    let requests = [
        app.client.post(&url).json(&checkout_body()),
        app.client
            .post(&url)
            .bearer_auth("not-a-jwt")
            .json(&checkout_body()),
        app.client
            .post(&url)
            .header("Authorization", "Basic YWRtaW46YWRtaW4=")
            .json(&checkout_body()),
        app.client
            .post(&url)
            .header("Authorization", "Bearer")
            .json(&checkout_body()),
        app.client
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body("{not json"),
        app.client
            .put(app.url(&format!("/node/{}", id_of(&checkout))))
            .json(&json!({"state": "done"})),
        app.client
            .patch(app.url(&format!("/node/{}", id_of(&checkout))))
            .json(&json!({"state": "done"})),
        app.client.put(app.url("/batch/nodeset")).json(&json!({})),
        app.client
            .post(app.url("/publish/node"))
            .json(&json!({"data": {"x": 1}})),
    ];
    for req in requests {
        let (status, v) = send(req).await;
        assert_eq!((status, &v), (401, &unauthorized));
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn non_admin_on_admin_routes_is_403() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let (status, v) = app
        .send_json("POST", "/user-groups", Some(&alice), &json!({"name": "x"}))
        .await;
    assert_eq!((status, v), (403, json!({"detail": "Forbidden"})));
    let (status, v) = app.get("/stats/subscriptions", Some(&alice)).await;
    assert_eq!((status, v), (403, json!({"detail": "Forbidden"})));
    let (status, v) = app.get("/user-groups", Some(&app.admin_token)).await;
    assert_eq!(status, 200);
    assert_eq!(v["total"], 1, "no group was created");
}

#[tokio::test]
async fn bad_subscription_ids_are_422() {
    let app = TestApp::start().await;
    let token = app.admin_token.as_str();
    for raw in ["abc", "1.5", "1e3", "-"] {
        let (status, v) = app.get(&format!("/listen/{raw}"), Some(token)).await;
        assert_eq!(status, 422, "listen {raw}: {v}");
        let e = first_error(&v);
        assert_eq!(e["loc"], json!(["path", "sub_id"]));
        assert_eq!(e["type"], "int_parsing");
        let (status, _) = send(
            app.client
                .post(app.url(&format!("/unsubscribe/{raw}")))
                .bearer_auth(token),
        )
        .await;
        assert_eq!(status, 422, "unsubscribe {raw}");
    }
    let (status, v) = send(
        app.client
            .post(app.url("/subscribe/node?promisc=maybe"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(first_error(&v)["loc"], json!(["query", "promisc"]));
    let (_, subs) = app.get("/stats/subscriptions", Some(token)).await;
    assert_eq!(subs, json!([]), "no subscription was created");
}

#[tokio::test]
async fn bad_publish_and_push_bodies_store_nothing() {
    let app = TestApp::start().await;
    let before = snapshot(&app).await;
    let token = Some(app.admin_token.as_str());
    let cases = [
        ("/publish/test_channel", json!({"data": {}}), "body.data"),
        ("/publish/test_channel", json!({"data": null}), "body.data"),
        ("/publish/test_channel", json!({"data": ""}), "body.data"),
        (
            "/publish/test_channel",
            json!({"data": {"x": 1}, "type": 5}),
            "body.type",
        ),
        (
            "/publish/test_channel",
            json!({"data": {"x": 1}, "attributes": [1]}),
            "body.attributes",
        ),
        ("/publish/test_channel", json!([{"data": 1}]), "body"),
        ("/push/list", json!({"type": "x"}), "body.data"),
        ("/push/list", json!("data"), "body"),
    ];
    for (path, body, at) in cases {
        let (status, v) = app.send_json("POST", path, token, &body).await;
        assert_eq!(status, 422, "{path} {body}: {v}");
        assert_eq!(loc(first_error(&v)), at, "{path} {body}");
    }
    let (status, _) = post_raw(&app, "/publish/test_channel", "{\"data\":").await;
    assert_eq!(status, 422);
    assert_eq!(snapshot(&app).await, before, "no event stored");
}

#[tokio::test]
async fn bad_kv_values_change_nothing() {
    let app = TestApp::start().await;
    let token = Some(app.admin_token.as_str());
    app.send_json("POST", "/kv/ns/key", token, &json!("kept"))
        .await;
    for body in [json!(5), json!({"v": 1}), json!(["a"]), json!(true)] {
        let (status, v) = app.send_json("POST", "/kv/ns/key", token, &body).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(first_error(&v)["type"], "string_type");
    }
    let (status, v) = post_raw(&app, "/kv/ns/key", "\"unterminated").await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(app.get("/kv/ns/key", token).await, (200, json!("kept")));
}

// ------------------------------------------------------------------------------------------
// Backend differences

/// Rust-syntax patterns are translated for PostgreSQL where the spelling differs and refused
/// (400 with the reason) where the meaning would differ, so every backend agrees.
#[tokio::test]
async fn regex_filters_behave_the_same_on_every_backend() {
    let (app, _, _) = seeded().await;
    let cases: [(&str, &str, Option<i64>); 11] = [
        ("name__re", r"\bgcc\b", Some(1)),
        ("name__re", r"(?P<c>gcc)", Some(1)),
        ("name__re", r"(?<c>gcc)", Some(1)),
        ("name__re", r"x86\z", Some(1)),
        ("name__re", r"^\pL+$", None),
        ("name__re", r"(?i:KBUILD)", None),
        ("name__re", r"(?i)CHECKOUT", Some(1)),
        ("name__re", r"gcc-\d+", Some(1)),
        ("data.arch__re", r"\b64\b", Some(0)),
        ("data.arch__re", r"_64\z", Some(1)),
        ("path__re", r"\bkbuild", Some(1)),
    ];
    for (key, pattern, expected) in cases {
        let (status, v) = query(&app, "/count", &[(key, pattern)]).await;
        match expected {
            Some(n) => assert_eq!((status, v.clone()), (200, json!(n)), "{key}={pattern}: {v}"),
            None => {
                assert_eq!(status, 400, "{key}={pattern}: {v}");
                let detail = v["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("not supported in filters"), "{detail}");
            }
        }
    }
    let (status, v) = query(&app, "/events", &[("path", r"\bgcc\b")]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
}

/// PostgreSQL text cannot hold NUL, so no backend accepts it: URLs carrying `%00` are a 400,
/// body strings and keys with NUL a 422 naming the field; nothing is stored or changed.
#[tokio::test]
async fn nul_bytes_are_refused_everywhere() {
    let (app, _, _) = seeded().await;
    let before = snapshot(&app).await;
    let url_detail = json!({"detail": "NUL characters (%00) are not allowed in URLs"});
    let lookups: [(&str, (&str, &str)); 5] = [
        ("/nodes/fast", ("name", "checkout\u{0}")),
        ("/count", ("data.arch", "x86_64\u{0}")),
        ("/count", ("name__re", "\u{0}")),
        ("/events", ("name", "checkout\u{0}")),
        ("/events", ("node_id", "\u{0}")),
    ];
    for (path, pair) in lookups {
        let (status, v) = query(&app, path, &[pair]).await;
        assert_eq!((status, &v), (400, &url_detail), "{path} {pair:?}");
    }
    let form = [("username", "admin\u{0}"), ("password", "admin")];
    let (status, v) = send(app.client.post(app.url("/user/login")).form(&form)).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["detail"][0]["loc"], json!(["body", "username"]));
    assert_eq!(v["detail"][0]["type"], "string_nul");
    assert_eq!(
        app.get("/kv/ns/a%00b", Some(&app.admin_token)).await,
        (400, url_detail.clone())
    );

    let token = Some(app.admin_token.as_str());
    let writes = [
        (
            "/node",
            json!({"kind": "process", "name": "n\u{0}", "path": ["n"]}),
            json!(["body", "name"]),
        ),
        (
            "/node",
            json!({"kind": "process", "name": "n", "path": ["n"], "data": {"k\u{0}": 1}}),
            json!(["body", "data", "k\u{0}"]),
        ),
        (
            "/publish/ch",
            json!({"data": {"m": "a\u{0}b"}}),
            json!(["body", "data", "m"]),
        ),
        ("/kv/ns/k", json!("a\u{0}b"), json!(["body"])),
        (
            "/user-groups",
            json!({"name": "g\u{0}"}),
            json!(["body", "name"]),
        ),
        (
            "/node",
            json!({"kind": "process", "name": "n", "path": ["a", "b\u{0}"]}),
            json!(["body", "path", 1]),
        ),
    ];
    for (path, body, loc) in writes {
        let (status, v) = app.send_json("POST", path, token, &body).await;
        assert_eq!(status, 422, "{path} {body}: {v}");
        assert_eq!(v["detail"][0]["loc"], loc, "{path}");
    }
    let (status, v) = send(
        app.client
            .post(app.url("/subscribe/a%00b"))
            .bearer_auth(&app.admin_token),
    )
    .await;
    assert_eq!((status, v), (400, url_detail));
    assert_eq!(snapshot(&app).await, before);
}

// ------------------------------------------------------------------------------------------
// Users

async fn users_snapshot(app: &TestApp) -> Value {
    let (s1, users) = app.get("/users", Some(&app.admin_token)).await;
    let (s2, groups) = app.get("/user-groups", Some(&app.admin_token)).await;
    assert_eq!((s1, s2), (200, 200));
    json!({"users": users, "groups": groups})
}

#[tokio::test]
async fn bad_user_requests_change_nothing() {
    let app = TestApp::start().await;
    let (alice, alice_token) = app.add_user("alice", false).await;
    let before = users_snapshot(&app).await;
    let admin = Some(app.admin_token.as_str());
    let alice_path = format!("/user/{}", alice.id);

    let (status, v) = app
        .send_json(
            "PATCH",
            &alice_path,
            admin,
            &json!({"groups": ["no-such-group"]}),
        )
        .await;
    assert_eq!(
        (status, v),
        (
            400,
            json!({"detail": "User group does not exist with name: no-such-group"})
        )
    );
    let (status, v) = app
        .send_json("PATCH", &alice_path, admin, &json!({"username": "admin"}))
        .await;
    assert_eq!(
        (status, v),
        (400, json!({"detail": "Username already exists: admin"}))
    );
    let (status, v) = app
        .send_json(
            "PATCH",
            &alice_path,
            admin,
            &json!({"email": "not-an-email"}),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(loc(first_error(&v)), "body.email");
    let (status, v) = app
        .send_json(
            "PATCH",
            "/user/65a1355ee98651d0fe81e500",
            admin,
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(
        (status, v),
        (
            404,
            json!({"detail": "User not found with id: 65a1355ee98651d0fe81e500"})
        )
    );
    let (status, v) = app
        .send_json(
            "PATCH",
            &alice_path,
            Some(&alice_token),
            &json!({"is_superuser": true}),
        )
        .await;
    assert_eq!((status, v), (403, json!({"detail": "Forbidden"})));
    let (status, v) = app
        .send_json(
            "PATCH",
            "/user/me",
            Some(&alice_token),
            &json!({"groups": ["node:edit:any"]}),
        )
        .await;
    assert_eq!(
        (status, v),
        (
            400,
            json!({"detail": "User groups can only be updated by an admin user"})
        )
    );

    let invites = [
        (json!({"username": "u1", "email": "bad"}), 422),
        (json!({"email": "u1@example.org"}), 422),
        (
            json!({"username": "u1", "email": "u1@example.org", "groups": ["no-such-group"]}),
            400,
        ),
        (
            json!({"username": "u1", "email": "u1@example.org", "groups": ["node:edit:any", "node:edit:any"]}),
            422,
        ),
        (
            json!({"username": "alice", "email": "other@example.org"}),
            400,
        ),
    ];
    for (body, expected) in invites {
        let (status, v) = app.post_admin("/user/invite", &body).await;
        assert_eq!(status, expected, "{body}: {v}");
    }
    let (status, v) = app
        .send_json(
            "POST",
            "/user/invite",
            Some(&alice_token),
            &json!({"username": "u2", "email": "u2@example.org"}),
        )
        .await;
    assert_eq!((status, v), (403, json!({"detail": "Forbidden"})));

    let (status, v) = app
        .send_json(
            "POST",
            "/user/accept-invite",
            None,
            &json!({"token": "garbage", "password": "x"}),
        )
        .await;
    assert_eq!(
        (status, v),
        (400, json!({"detail": "Invalid or expired invite token"}))
    );
    let (status, v) = app
        .send_json(
            "POST",
            "/user/accept-invite",
            None,
            &json!({"token": "garbage"}),
        )
        .await;
    assert_eq!(status, 422, "{v}");

    for body in [json!({}), json!({"name": 5}), json!(["x"])] {
        let (status, v) = app.post_admin("/user-groups", &body).await;
        assert_eq!(status, 422, "{body}: {v}");
    }
    let (status, v) = app.get("/user-groups/xyz", admin).await;
    assert_eq!((status, detail(&v)), (400, bad_id_msg("xyz").as_str()));
    let (status, v) = send(
        app.client
            .delete(app.url("/user-groups/65a1355ee98651d0fe81e500"))
            .bearer_auth(&app.admin_token),
    )
    .await;
    assert_eq!(
        (status, v),
        (
            404,
            json!({"detail": "User group not found with id: 65a1355ee98651d0fe81e500"})
        )
    );

    assert_eq!(users_snapshot(&app).await, before);
    assert_eq!(
        app.get("/whoami", Some(&alice_token)).await.1["username"],
        "alice"
    );
}
