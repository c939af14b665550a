//! Conformance of the Maestro API with upstream kernelci-api (spec §8 checklist, plus the
//! checks the spec adds from the code), over real HTTP on a real port. Each test starts its
//! own server on a fresh database (SQLite, or PostgreSQL with `KERNELCI_TEST_DATABASE_URL`).
#![allow(clippy::unwrap_used)] // a panic is how a test reports a failure

use std::time::{Duration, Instant};

use kernelci_api::JwtKeys;
use kernelci_tests::{TestApp, TestOptions, send};
use serde_json::{Value, json};

/// The keys of every node response, in upstream order (spec §3.1).
const NODE_KEYS: [&str; 23] = [
    "id",
    "kind",
    "name",
    "path",
    "group",
    "parent",
    "state",
    "result",
    "artifacts",
    "data",
    "debug",
    "jobfilter",
    "platform_filter",
    "created",
    "updated",
    "timeout",
    "holdoff",
    "owner",
    "submitter",
    "treeid",
    "user_groups",
    "processed_by_kcidb_bridge",
    "retry_counter",
];

/// The keys of `UserRead`, in upstream order.
const USER_KEYS: [&str; 7] = [
    "id",
    "email",
    "is_active",
    "is_superuser",
    "is_verified",
    "username",
    "groups",
];

/// The keys of a created-node event payload.
const EVENT_DATA_KEYS: [&str; 11] = [
    "op",
    "id",
    "kind",
    "name",
    "path",
    "group",
    "state",
    "result",
    "owner",
    "data",
    "is_hierarchy",
];

const BAD_ID_MSG: &str =
    "'xyz' is not a valid ObjectId, it must be a 12-byte input or a 24-character hex string";

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
            "describe": "v5.16-rc4-31-g2a987e65025e",
            "version": {"version": 6, "patchlevel": 7, "extra": "-rc4-31-g2a987e65025e"}
        }}
    })
}

fn kbuild_body(parent: &str) -> Value {
    json!({
        "kind": "kbuild",
        "name": "kbuild-gcc-12-x86",
        "path": ["checkout", "kbuild-gcc-12-x86"],
        "parent": parent,
        "data": {"arch": "x86_64", "defconfig": "x86_64_defconfig", "compiler": "gcc-12"}
    })
}

fn job_body(name: &str) -> Value {
    json!({"kind": "job", "name": name, "path": ["checkout", name], "data": {}})
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
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

async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let (status, v) = app.send_json("POST", "/node", Some(token), body).await;
    assert_eq!(status, 200, "POST /node {body}: {v}");
    v
}

async fn get_node(app: &TestApp, id: &str) -> Value {
    let (status, v) = app.get(&format!("/node/{id}"), None).await;
    assert_eq!(status, 200, "GET /node/{id}: {v}");
    v
}

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, v) = app.get(&format!("/events{query}"), None).await;
    assert_eq!(status, 200, "GET /events{query}: {v}");
    v.as_array()
        .unwrap_or_else(|| panic!("events not an array: {v}"))
        .clone()
}

async fn count(app: &TestApp, query: &str) -> i64 {
    let (status, v) = app.get(&format!("/count{query}"), None).await;
    assert_eq!(status, 200, "GET /count{query}: {v}");
    v.as_i64()
        .unwrap_or_else(|| panic!("count not an integer: {v}"))
}

async fn nodes(app: &TestApp, query: &str) -> Value {
    let (status, v) = app.get(&format!("/nodes{query}"), None).await;
    assert_eq!(status, 200, "GET /nodes{query}: {v}");
    v
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

async fn put_node(app: &TestApp, token: &str, id: &str, body: &Value) -> (u16, Value) {
    app.send_json("PUT", &format!("/node/{id}"), Some(token), body)
        .await
}

async fn subscribe(app: &TestApp, token: &str, channel_and_query: &str) -> i64 {
    let req = app
        .client
        .post(app.url(&format!("/subscribe/{channel_and_query}")))
        .bearer_auth(token);
    let (status, v) = send(req).await;
    assert_eq!(status, 200, "subscribe {channel_and_query}: {v}");
    v["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("subscription id not an integer: {v}"))
}

/// One `/listen` call: the raw response and the parsed CloudEvent envelope.
async fn listen(app: &TestApp, token: &str, sub: i64) -> (Value, Value) {
    let (status, v) = app.get(&format!("/listen/{sub}"), Some(token)).await;
    assert_eq!(status, 200, "listen {sub}: {v}");
    let raw = v["data"]
        .as_str()
        .unwrap_or_else(|| panic!("listen data is not a string: {v}"));
    let envelope: Value = serde_json::from_str(raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
    (v, envelope)
}

async fn unsubscribe(app: &TestApp, token: &str, sub: i64) -> (u16, Value) {
    send(
        app.client
            .post(app.url(&format!("/unsubscribe/{sub}")))
            .bearer_auth(token),
    )
    .await
}

async fn login(app: &TestApp, username: &str, password: &str) -> (u16, Value) {
    let form = [("username", username), ("password", password)];
    send(app.client.post(app.url("/user/login")).form(&form)).await
}

async fn create_group(app: &TestApp, name: &str) -> Value {
    let (status, v) = app
        .post_admin("/user-groups", &json!({ "name": name }))
        .await;
    assert_eq!(status, 200, "POST /user-groups {name}: {v}");
    v
}

async fn delete_group(app: &TestApp, id: &str) -> (u16, Value) {
    send(
        app.client
            .delete(app.url(&format!("/user-groups/{id}")))
            .bearer_auth(&app.admin_token),
    )
    .await
}

async fn set_groups(app: &TestApp, user_id: &str, groups: &[&str]) {
    let body = json!({ "groups": groups });
    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/user/{user_id}"),
            Some(&app.admin_token),
            &body,
        )
        .await;
    assert_eq!(status, 200, "PATCH /user/{user_id}: {v}");
    let got: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, groups);
}

// ------------------------------------------------------------------------------------------
// Nodes: create and read

#[tokio::test]
async fn post_node_returns_exactly_the_23_keys_in_order() {
    let app = TestApp::start().await;
    let node = create(&app, &app.admin_token, &checkout_body()).await;
    assert_eq!(keys(&node), NODE_KEYS);
    assert_eq!(node["kind"], "checkout");
    assert_eq!(node["owner"], "admin");
    assert_eq!(node["state"], "running");
    assert_eq!(node["result"], Value::Null);
    assert_eq!(node["parent"], Value::Null);
    assert_eq!(node["artifacts"], json!({}));
    assert_eq!(node["debug"], json!({}));
    assert_eq!(node["jobfilter"], Value::Null);
    assert_eq!(node["platform_filter"], json!([]));
    assert_eq!(node["user_groups"], json!([]));
    assert_eq!(node["processed_by_kcidb_bridge"], false);
    assert_eq!(node["retry_counter"], 0);
    assert_eq!(
        node["data"],
        checkout_body()["data"],
        "data is stored as sent"
    );
    assert_eq!(id_of(&node).len(), 24);
    assert!(id_of(&node).chars().all(|c| c.is_ascii_hexdigit()));
    let created = node["created"].as_str().unwrap();
    assert!(
        !created.ends_with('Z') && !created.contains('+'),
        "naive UTC: {created}"
    );
}

#[tokio::test]
async fn post_node_forces_owner_and_keeps_client_fields() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let mut body = checkout_body();
    body["owner"] = json!("mallory");
    body["submitter"] = json!("sub-1");
    body["treeid"] = json!("tree-1");
    body["state"] = json!("done");
    body["result"] = json!("pass");
    body["artifacts"] = json!({"log": "https://storage.example.org"});
    body["unknown_top_level_key"] = json!(1);
    let node = create(&app, &alice, &body).await;
    assert_eq!(node["owner"], "alice");
    assert_eq!(node["submitter"], "sub-1");
    assert_eq!(node["treeid"], "tree-1");
    assert_eq!(node["state"], "done", "no transition check on create");
    assert_eq!(node["result"], "pass");
    assert_eq!(
        node["artifacts"],
        json!({"log": "https://storage.example.org/"}),
        "URL normalized"
    );
    assert_eq!(keys(&node), NODE_KEYS, "unknown keys are dropped");
}

#[tokio::test]
async fn get_node_returns_the_stored_node_or_null() {
    let app = TestApp::start().await;
    let node = create(&app, &app.admin_token, &checkout_body()).await;
    let got = get_node(&app, &id_of(&node)).await;
    assert_eq!(keys(&got), NODE_KEYS);
    assert_eq!(got, node, "GET returns what POST returned");

    let (status, v) = app.get("/node/65a1355ee98651d0fe81e500", None).await;
    assert_eq!(
        (status, v),
        (200, Value::Null),
        "a missing node is 200 null"
    );

    let (status, v) = app.get("/node/xyz", None).await;
    assert_eq!(status, 400);
    assert_eq!(v, json!({ "detail": BAD_ID_MSG }));
}

#[tokio::test]
async fn post_node_with_missing_parent_is_404() {
    let app = TestApp::start().await;
    let missing = "65a1355ee98651d0fe81e500";
    let (status, v) = app.post_admin("/node", &kbuild_body(missing)).await;
    assert_eq!(status, 404);
    assert_eq!(detail(&v), format!("Parent not found with id: {missing}"));
    assert_eq!(count(&app, "").await, 0);
}

#[tokio::test]
async fn post_node_with_unknown_user_group_is_400() {
    let app = TestApp::start().await;
    let mut body = checkout_body();
    body["user_groups"] = json!(["no-such-group"]);
    let (status, v) = app.post_admin("/node", &body).await;
    assert_eq!(status, 400);
    assert_eq!(
        detail(&v),
        "User group does not exist with name: no-such-group"
    );
    assert_eq!(count(&app, "").await, 0);
}

#[tokio::test]
async fn post_node_with_an_id_is_400() {
    let app = TestApp::start().await;
    for key in ["id", "_id"] {
        let mut body = checkout_body();
        body[key] = json!("65a1355ee98651d0fe81e500");
        let (status, v) = app.post_admin("/node", &body).await;
        assert_eq!(status, 400, "{key}");
        assert_eq!(
            detail(&v),
            "Object cannot be created with id: 65a1355ee98651d0fe81e500"
        );
    }
    assert_eq!(count(&app, "").await, 0);
}

#[tokio::test]
async fn regression_node_referencing_pass_and_fail_nodes() {
    let app = TestApp::start().await;
    let checkout = id_of(&create(&app, &app.admin_token, &checkout_body()).await);
    let mut ids = Vec::new();
    for result in ["pass", "fail"] {
        let body = json!({"kind": "test", "name": "kver", "path": ["checkout", "kver"],
                          "parent": checkout, "state": "done", "result": result});
        ids.push(id_of(&create(&app, &app.admin_token, &body).await));
    }
    let body = json!({"kind": "regression", "name": "kver", "path": ["checkout", "kver"],
                      "parent": checkout, "state": "done",
                      "data": {"fail_node": ids[1], "pass_node": ids[0]}});
    let node = create(&app, &app.admin_token, &body).await;
    assert_eq!(keys(&node), NODE_KEYS);
    assert_eq!(node["data"]["fail_node"], ids[1]);
}

// ------------------------------------------------------------------------------------------
// Nodes: queries

/// Two checkouts (mainline/master with treeid T1, next/main), a kbuild child of the first
/// (available, treeid T1, retry_counter 2). Returns (checkout1, checkout2, kbuild) ids.
async fn seed_tree(app: &TestApp) -> (String, String, String) {
    let mut c1 = checkout_body();
    c1["treeid"] = json!("T1");
    let c1 = id_of(&create(app, &app.admin_token, &c1).await);
    let mut c2 = checkout_body();
    c2["data"]["kernel_revision"]["tree"] = json!("next");
    c2["data"]["kernel_revision"]["branch"] = json!("main");
    let c2 = id_of(&create(app, &app.admin_token, &c2).await);
    let mut k = kbuild_body(&c1);
    k["treeid"] = json!("T1");
    k["state"] = json!("available");
    k["retry_counter"] = json!(2);
    let k = id_of(&create(app, &app.admin_token, &k).await);
    (c1, c2, k)
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn nodes_filters_by_attributes() {
    let app = TestApp::start().await;
    let (c1, c2, k) = seed_tree(&app).await;
    let cases: Vec<(String, Vec<&String>)> = vec![
        ("name=checkout".into(), vec![&c1, &c2]),
        ("kind=kbuild".into(), vec![&k]),
        ("data.kernel_revision.tree=mainline".into(), vec![&c1]),
        ("data.kernel_revision.branch=main".into(), vec![&c2]),
        (
            "data.kernel_revision.tree=next&data.kernel_revision.branch=main".into(),
            vec![&c2],
        ),
        ("state=available".into(), vec![&k]),
        ("state=running".into(), vec![&c1, &c2]),
        ("state__ne=running".into(), vec![&k]),
        (format!("parent={c1}"), vec![&k]),
        ("treeid=T1".into(), vec![&c1, &k]),
        ("data.arch=x86_64".into(), vec![&k]),
        ("name__re=^kbuild".into(), vec![&k]),
        ("name__re=12".into(), vec![&k]),
        ("name__in=checkout,nothing".into(), vec![&c1, &c2]),
        ("result=null".into(), vec![&c1, &c2, &k]),
        ("processed_by_kcidb_bridge=false".into(), vec![&c1, &c2, &k]),
        ("created__gte=2000-01-01".into(), vec![&c1, &c2, &k]),
        ("created__lt=2000-01-01T00:00:00".into(), vec![]),
        ("kind=checkout&kind=kbuild".into(), vec![&k]),
    ];
    for (query, expected) in cases {
        let page = nodes(&app, &format!("?{query}")).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids(&page), expected, "{query}");
        assert_eq!(page["total"], expected.len(), "{query}");
        for item in page["items"].as_array().unwrap() {
            assert_eq!(keys(item), NODE_KEYS);
        }
    }
}

#[tokio::test]
async fn nodes_without_match_gives_total_zero() {
    let app = TestApp::start().await;
    seed_tree(&app).await;
    for query in [
        "name=nothing",
        "treeid=none",
        "data.kernel_revision.tree=none",
        "state=done",
    ] {
        let page = nodes(&app, &format!("?{query}")).await;
        assert_eq!(
            page,
            json!({"items": [], "total": 0, "limit": 50, "offset": 0}),
            "{query}"
        );
    }
}

#[tokio::test]
async fn nodes_parent_null_finds_root_nodes_and_operators_work() {
    let app = TestApp::start().await;
    let (c1, c2, k) = seed_tree(&app).await;
    assert_eq!(
        ids(&nodes(&app, "?parent=null").await),
        [c1.as_str(), c2.as_str()],
        "root nodes"
    );
    assert_eq!(ids(&nodes(&app, "?parent__ne=null").await), [k.as_str()]);
    assert_eq!(
        ids(&nodes(&app, &format!("?parent__in={c1},{c2}")).await),
        [k.as_str()]
    );
    assert_eq!(
        ids(&nodes(&app, &format!("?parent__ne={c1}")).await),
        [c1.as_str(), c2.as_str()]
    );
    assert_eq!(
        ids(&nodes(&app, "?retry_counter__gt=1").await),
        [k.as_str()]
    );
    assert_eq!(
        ids(&nodes(&app, "?retry_counter__lt=1").await),
        [c1.as_str(), c2.as_str()]
    );
    assert_eq!(ids(&nodes(&app, "?retry_counter=2").await), [k.as_str()]);
}

#[tokio::test]
async fn nodes_unknown_operator_is_400() {
    let app = TestApp::start().await;
    let (status, v) = app.get("/nodes?name__foo=x", None).await;
    assert_eq!(status, 400);
    assert_eq!(
        detail(&v),
        "Unsupported filter operator 'foo' in 'name__foo'"
    );
}

#[tokio::test]
async fn count_is_a_bare_integer_and_ignores_paging() {
    let app = TestApp::start().await;
    let (status, v) = app.get("/count", None).await;
    assert_eq!((status, v), (200, json!(0)));
    seed_tree(&app).await;
    assert_eq!(count(&app, "").await, 3);
    assert_eq!(count(&app, "?name=checkout").await, 2);
    assert_eq!(count(&app, "?name=checkout&kind=kbuild").await, 0);
    assert_eq!(count(&app, "?treeid=T1").await, 2);
    assert_eq!(
        count(&app, "?limit=1&offset=1").await,
        3,
        "limit/offset are ignored"
    );
}

#[tokio::test]
async fn nodes_pagination_is_oldest_first() {
    let app = TestApp::start().await;
    for i in 0..5 {
        create(&app, &app.admin_token, &job_body(&format!("n{i}"))).await;
    }
    let page = nodes(&app, "").await;
    assert_eq!(names(&page), ["n0", "n1", "n2", "n3", "n4"]);
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(5), json!(50), json!(0))
    );
    assert_eq!(keys(&page), ["items", "total", "limit", "offset"]);

    let page = nodes(&app, "?limit=2&offset=1").await;
    assert_eq!(names(&page), ["n1", "n2"]);
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(5), json!(2), json!(1))
    );

    let page = nodes(&app, "?limit=2&offset=4").await;
    assert_eq!(names(&page), ["n4"]);
    let page = nodes(&app, "?offset=10").await;
    assert_eq!(names(&page), Vec::<String>::new());
    assert_eq!(page["total"], 5);
}

#[tokio::test]
async fn nodes_fast_is_a_bare_array() {
    let app = TestApp::start().await;
    let (c1, c2, k) = seed_tree(&app).await;
    let (status, v) = app.get("/nodes/fast", None).await;
    assert_eq!(status, 200);
    let all: Vec<String> = v.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(all, [c1.clone(), c2.clone(), k.clone()]);
    assert_eq!(keys(&v[0]), NODE_KEYS);

    let (_, v) = app
        .get("/nodes/fast?treeid=T1&limit=1&offset=1", None)
        .await;
    let got: Vec<String> = v.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(got, [k]);
    let (_, v) = app.get("/nodes/fast?name=nothing", None).await;
    assert_eq!(v, json!([]));
}

#[tokio::test]
async fn raw_token_without_bearer_is_anonymous_on_public_routes() {
    let app = TestApp::start().await;
    seed_tree(&app).await;
    let req = app
        .client
        .get(app.url("/nodes/fast?treeid=T1"))
        .header("Authorization", &app.admin_token);
    let (status, v) = send(req).await;
    assert_eq!(status, 200, "kci-dev sends a raw token to /nodes/fast");
    assert_eq!(v.as_array().unwrap().len(), 2);
    let req = app
        .client
        .post(app.url("/node"))
        .header("Authorization", &app.admin_token)
        .json(&checkout_body());
    let (status, v) = send(req).await;
    assert_eq!((status, v), (401, json!({"detail": "Unauthorized"})));
    let req = app
        .client
        .post(app.url("/node"))
        .header("Authorization", format!("bEaReR {}", app.admin_token))
        .json(&checkout_body());
    let (status, _) = send(req).await;
    assert_eq!(status, 200, "the scheme is case-insensitive");
}

// ------------------------------------------------------------------------------------------
// Routing

#[tokio::test]
async fn v0_and_unprefixed_paths_equal_latest() {
    let app = TestApp::start().await;
    let (c1, _, _) = seed_tree(&app).await;
    let node_path = format!("/node/{c1}");
    for path in [
        "/nodes?kind=checkout",
        "/count",
        node_path.as_str(),
        "/nodes/fast",
        "/events",
    ] {
        let latest = send(app.client.get(format!("{}/latest{path}", app.base))).await;
        let v0 = send(app.client.get(format!("{}/v0{path}", app.base))).await;
        let bare = send(app.client.get(format!("{}{path}", app.base))).await;
        assert_eq!(latest.0, 200, "{path}: {latest:?}");
        assert_eq!(v0, latest, "/v0{path}");
        assert_eq!(bare, latest, "{path}");
    }
    let req = app
        .client
        .post(format!("{}/v0/node", app.base))
        .bearer_auth(&app.admin_token)
        .json(&checkout_body());
    let (status, _) = send(req).await;
    assert_eq!(status, 200);
    assert_eq!(count(&app, "").await, 4);
}

#[tokio::test]
async fn other_api_versions_are_400_plain_text() {
    let app = TestApp::start().await;
    for (path, version) in [
        ("/v1/nodes", "v1"),
        ("/v2/node/x", "v2"),
        ("/v1.1/count", "v1.1"),
    ] {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{path}");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/plain"), "{path}: {ctype}");
        assert_eq!(
            resp.text().await.unwrap(),
            format!("Unsupported API version: {version}")
        );
    }
}

#[tokio::test]
async fn unknown_path_is_json_404() {
    let app = TestApp::start().await;
    for path in [
        "/latest/nope",
        "/nope",
        "/v0/nodes/fast/extra",
        "/latest/node/a/b",
    ] {
        let (status, v) = send(app.client.get(format!("{}{path}", app.base))).await;
        assert_eq!((status, v), (404, json!({"detail": "Not Found"})), "{path}");
    }
}

#[tokio::test]
async fn wrong_method_is_json_405() {
    let app = TestApp::start().await;
    let (status, v) = send(app.client.get(app.url("/node"))).await;
    assert_eq!((status, v), (405, json!({"detail": "Method Not Allowed"})));
    let (status, v) = send(app.client.delete(app.url("/nodes"))).await;
    assert_eq!((status, v), (405, json!({"detail": "Method Not Allowed"})));
}

#[tokio::test]
async fn metrics_counts_requests() {
    let app = TestApp::start().await;
    app.get("/count", None).await;
    let resp = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("http_requests_total{instance=\"api\"} "))
        .unwrap_or_else(|| panic!("no http_requests_total line in {text}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{line}");
    assert!(
        !text.contains("# HELP") && !text.contains("# TYPE"),
        "{text}"
    );
}

#[tokio::test]
async fn root_page_is_html() {
    let app = TestApp::start().await;
    let resp = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.headers().get("cache-control").is_none());
    assert!(resp.text().await.unwrap().contains("KernelCI API Server"));
}

// ------------------------------------------------------------------------------------------
// Edit permissions

#[tokio::test]
async fn owner_may_edit_and_other_user_gets_401() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let (_, bob) = app.add_user("bob", false).await;
    let node = create(&app, &alice, &checkout_body()).await;
    let id = id_of(&node);

    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&bob),
            &json!({"state": "done"}),
        )
        .await;
    assert_eq!(
        (status, v),
        (
            401,
            json!({"detail": "Unauthorized to complete the operation"})
        )
    );
    let mut body = node.clone();
    body["state"] = json!("done");
    let (status, v) = put_node(&app, &bob, &id, &body).await;
    assert_eq!(
        (status, v),
        (
            401,
            json!({"detail": "Unauthorized to complete the operation"})
        )
    );
    let hierarchy = json!({"node": body, "child_nodes": []});
    let (status, v) = app
        .send_json("PUT", &format!("/nodes/{id}"), Some(&bob), &hierarchy)
        .await;
    assert_eq!(
        (status, v),
        (
            401,
            json!({"detail": "Unauthorized to complete the operation"})
        )
    );
    assert_eq!(get_node(&app, &id).await, node, "nothing changed");
    assert_eq!(events(&app, "").await.len(), 1, "only the created event");

    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&alice),
            &json!({"state": "done"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "done");
    let (status, _) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&app.admin_token),
            &json!({"result": "pass"}),
        )
        .await;
    assert_eq!(status, 200, "a superuser may edit any node");
}

#[tokio::test]
async fn anonymous_edit_is_401_unauthorized() {
    let app = TestApp::start().await;
    let node = create(&app, &app.admin_token, &checkout_body()).await;
    let id = id_of(&node);
    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            None,
            &json!({"state": "done"}),
        )
        .await;
    assert_eq!((status, v), (401, json!({"detail": "Unauthorized"})));
    let (status, v) = put_node(&app, "not-a-jwt", &id, &node).await;
    assert_eq!((status, v), (401, json!({"detail": "Unauthorized"})));
}

#[tokio::test]
async fn member_of_a_listed_user_group_may_edit() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let (bob_user, bob) = app.add_user("bob", false).await;
    create_group(&app, "team-a").await;
    create_group(&app, "team-b").await;
    let mut body = checkout_body();
    body["user_groups"] = json!(["team-a"]);
    let node = create(&app, &alice, &body).await;
    assert_eq!(node["user_groups"], json!(["team-a"]));
    let id = id_of(&node);

    set_groups(&app, &bob_user.id.to_string(), &["team-b"]).await;
    let (status, _) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&bob),
            &json!({"result": "pass"}),
        )
        .await;
    assert_eq!(status, 401, "team-b is not listed");

    set_groups(&app, &bob_user.id.to_string(), &["team-a"]).await;
    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&bob),
            &json!({"result": "pass"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"], "pass");
    assert_eq!(v["owner"], "alice");
}

#[tokio::test]
async fn node_edit_any_group_may_edit() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let (bob_user, bob) = app.add_user("bob", false).await;
    let id = id_of(&create(&app, &alice, &checkout_body()).await);
    let (status, _) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&bob),
            &json!({"result": "fail"}),
        )
        .await;
    assert_eq!(status, 401);
    set_groups(&app, &bob_user.id.to_string(), &["node:edit:any"]).await;
    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&bob),
            &json!({"result": "fail"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn runtime_node_editor_may_edit_nodes_of_that_runtime() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let (bob_user, bob) = app.add_user("bob", false).await;
    create_group(&app, "runtime:lava-x:node-editor").await;
    create_group(&app, "runtime:lava-y:node-admin").await;
    let mut body = job_body("baseline-x86");
    body["data"] = json!({"runtime": "lava-x"});
    let on_x = id_of(&create(&app, &alice, &body).await);
    body["data"] = json!({"runtime": "lava-y"});
    let on_y = id_of(&create(&app, &alice, &body).await);

    set_groups(
        &app,
        &bob_user.id.to_string(),
        &["runtime:lava-x:node-editor"],
    )
    .await;
    let patch = json!({"state": "done", "result": "pass"});
    let (status, v) = app
        .send_json("PATCH", &format!("/node/{on_x}"), Some(&bob), &patch)
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = app
        .send_json("PATCH", &format!("/node/{on_y}"), Some(&bob), &patch)
        .await;
    assert_eq!(status, 401, "another runtime");

    set_groups(
        &app,
        &bob_user.id.to_string(),
        &["runtime:lava-y:node-admin"],
    )
    .await;
    let (status, v) = app
        .send_json("PATCH", &format!("/node/{on_y}"), Some(&bob), &patch)
        .await;
    assert_eq!(status, 200, "{v}");
}

// ------------------------------------------------------------------------------------------
// PUT / PATCH

#[tokio::test]
async fn put_follows_the_state_machine() {
    let app = TestApp::start().await;
    let mut node = create(&app, &app.admin_token, &checkout_body()).await;
    let id = id_of(&node);
    for state in ["running", "available", "closing", "done", "done"] {
        node["state"] = json!(state);
        let (status, v) = put_node(&app, &app.admin_token, &id, &node).await;
        assert_eq!(status, 200, "-> {state}: {v}");
        assert_eq!(v["state"], state);
        node = v;
    }
    for state in ["running", "available", "closing"] {
        node["state"] = json!(state);
        let (status, v) = put_node(&app, &app.admin_token, &id, &node).await;
        assert_eq!(status, 400, "done -> {state}");
        assert_eq!(
            detail(&v),
            format!("Transition not allowed with state: {state}")
        );
    }
    assert_eq!(get_node(&app, &id).await["state"], "done");

    let id2 = id_of(&create(&app, &app.admin_token, &checkout_body()).await);
    let (_, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{id2}"),
            Some(&app.admin_token),
            &json!({"state": "closing"}),
        )
        .await;
    assert_eq!(v["state"], "closing");
    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{id2}"),
            Some(&app.admin_token),
            &json!({"state": "available"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(detail(&v), "Transition not allowed with state: available");
}

#[tokio::test]
async fn put_keeps_owner_submitter_and_user_groups() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    create_group(&app, "team-a").await;
    let mut body = checkout_body();
    body["submitter"] = json!("sub-1");
    body["user_groups"] = json!(["team-a"]);
    let node = create(&app, &alice, &body).await;
    let id = id_of(&node);
    let mut put = node.clone();
    put["owner"] = json!("mallory");
    put["submitter"] = json!("sub-2");
    put["user_groups"] = json!(["node:edit:any"]);
    put["treeid"] = json!("tree-2");
    put["name"] = json!("renamed");
    let (status, v) = put_node(&app, &app.admin_token, &id, &put).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(keys(&v), NODE_KEYS);
    assert_eq!(v["owner"], "alice");
    assert_eq!(v["submitter"], "sub-1");
    assert_eq!(v["user_groups"], json!(["team-a"]));
    assert_eq!(v["treeid"], "tree-2");
    assert_eq!(v["name"], "renamed");
    assert_eq!(
        get_node(&app, &id).await,
        v,
        "the response is the stored node"
    );
    assert_ne!(v["updated"], node["updated"]);
}

#[tokio::test]
async fn put_resets_omitted_fields_to_defaults() {
    let app = TestApp::start().await;
    let mut body = checkout_body();
    body["created"] = json!("2024-01-01T00:00:00");
    body["debug"] = json!({"x": 1});
    body["holdoff"] = json!("2024-01-02T00:00:00");
    let node = create(&app, &app.admin_token, &body).await;
    assert_eq!(node["created"], "2024-01-01T00:00:00");
    let id = id_of(&node);
    let minimal = json!({"kind": "checkout", "name": "checkout", "path": ["checkout"]});
    let (status, v) = put_node(&app, &app.admin_token, &id, &minimal).await;
    assert_eq!(status, 200, "{v}");
    assert_ne!(v["created"], "2024-01-01T00:00:00", "created reset to now");
    assert_eq!(v["data"], json!({}));
    assert_eq!(v["debug"], json!({}));
    assert_eq!(v["holdoff"], Value::Null);
    assert_eq!(v["owner"], "admin");
}

#[tokio::test]
async fn put_processed_by_kcidb_bridge_rules() {
    let app = TestApp::start().await;
    let mut node = create(&app, &app.admin_token, &checkout_body()).await;
    let id = id_of(&node);
    // Flipping the flag without a state change keeps it.
    node["processed_by_kcidb_bridge"] = json!(true);
    let (_, v) = put_node(&app, &app.admin_token, &id, &node).await;
    assert_eq!(
        v["processed_by_kcidb_bridge"], true,
        "flip, same state: kept"
    );
    // Sending the stored value again resets it.
    let (_, v) = put_node(&app, &app.admin_token, &id, &v).await;
    assert_eq!(
        v["processed_by_kcidb_bridge"], false,
        "same as stored: reset"
    );
    // Flipping with a state change resets it.
    let mut body = v.clone();
    body["processed_by_kcidb_bridge"] = json!(true);
    body["state"] = json!("done");
    let (_, v) = put_node(&app, &app.admin_token, &id, &body).await;
    assert_eq!(v["state"], "done");
    assert_eq!(v["processed_by_kcidb_bridge"], false, "state change: reset");
    assert_eq!(
        get_node(&app, &id).await["processed_by_kcidb_bridge"],
        false
    );
}

#[tokio::test]
async fn patch_processed_by_kcidb_bridge_rules() {
    let app = TestApp::start().await;
    let id = id_of(&create(&app, &app.admin_token, &checkout_body()).await);
    let path = format!("/node/{id}");
    let (_, v) = app
        .send_json(
            "PATCH",
            &path,
            Some(&app.admin_token),
            &json!({"processed_by_kcidb_bridge": true}),
        )
        .await;
    assert_eq!(v["processed_by_kcidb_bridge"], true);
    let (_, v) = app
        .send_json(
            "PATCH",
            &path,
            Some(&app.admin_token),
            &json!({"debug": {"k": 1}}),
        )
        .await;
    assert_eq!(
        v["processed_by_kcidb_bridge"], false,
        "reset unless the patch sets it"
    );
    assert_eq!(v["debug"], json!({"k": 1}));
}

#[tokio::test]
async fn patch_without_known_fields_is_400() {
    let app = TestApp::start().await;
    let node = create(&app, &app.admin_token, &checkout_body()).await;
    let id = id_of(&node);
    for body in [json!({}), json!({"foo": 1, "name": "x", "owner": "bob"})] {
        let (status, v) = app
            .send_json(
                "PATCH",
                &format!("/node/{id}"),
                Some(&app.admin_token),
                &body,
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(detail(&v), "No fields to update");
    }
    assert_eq!(get_node(&app, &id).await, node);
}

#[tokio::test]
async fn patch_replaces_data_wholesale() {
    let app = TestApp::start().await;
    let node = create(&app, &app.admin_token, &checkout_body()).await;
    let id = id_of(&node);
    let patch = json!({"data": {"error_msg": "boom"}, "result": "fail", "state": "done",
                       "artifacts": {"log": "http://x.org/log"}});
    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}"),
            Some(&app.admin_token),
            &patch,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["data"],
        json!({"error_msg": "boom"}),
        "no merge with the stored data"
    );
    assert_eq!(v["artifacts"], json!({"log": "http://x.org/log"}));
    assert_eq!(
        (v["state"].clone(), v["result"].clone()),
        (json!("done"), json!("fail"))
    );
    assert_eq!(
        (v["name"].clone(), v["created"].clone()),
        (node["name"].clone(), node["created"].clone())
    );
    assert_eq!(get_node(&app, &id).await, v);
}

#[tokio::test]
async fn put_and_patch_on_missing_node_are_404() {
    let app = TestApp::start().await;
    let missing = "65a1355ee98651d0fe81e500";
    let (status, v) = put_node(&app, &app.admin_token, missing, &checkout_body()).await;
    assert_eq!(status, 404);
    assert_eq!(detail(&v), format!("Node not found with id: {missing}"));
    let (status, v) = app
        .send_json(
            "PATCH",
            &format!("/node/{missing}"),
            Some(&app.admin_token),
            &json!({"state": "done"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(detail(&v), format!("Node not found with id: {missing}"));
}

#[tokio::test]
async fn put_with_itself_as_parent_is_400() {
    let app = TestApp::start().await;
    let mut node = create(&app, &app.admin_token, &checkout_body()).await;
    let id = id_of(&node);
    node["parent"] = json!(id);
    let (status, v) = put_node(&app, &app.admin_token, &id, &node).await;
    assert_eq!(status, 400);
    assert_eq!(detail(&v), "Parent cannot be the same as the object");
}

#[tokio::test]
async fn noevent_suppresses_the_event() {
    let app = TestApp::start().await;
    let mut node = create(&app, &app.admin_token, &checkout_body()).await;
    let id = id_of(&node);
    node["state"] = json!("available");
    let (status, _) = put_node(&app, &app.admin_token, &format!("{id}?noevent=true"), &node).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}?noevent=true"),
            Some(&app.admin_token),
            &json!({"result": "pass"}),
        )
        .await;
    assert_eq!(status, 200);
    let got = get_node(&app, &id).await;
    assert_eq!(
        (got["state"].clone(), got["result"].clone()),
        (json!("available"), json!("pass"))
    );
    let evs = events(&app, &format!("?node_id={id}")).await;
    let ops: Vec<&str> = evs
        .iter()
        .map(|e| e["data"]["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["created"], "no event for noevent=true");

    let (status, _) = app
        .send_json(
            "PATCH",
            &format!("/node/{id}?noevent=false"),
            Some(&app.admin_token),
            &json!({"state": "done"}),
        )
        .await;
    assert_eq!(status, 200);
    let evs = events(&app, &format!("?node_id={id}")).await;
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1]["data"]["op"], "updated");
    assert_eq!(evs[1]["data"]["previous_state"], "available");
    assert_eq!(evs[1]["data"]["previous_result"], "pass");
}

// ------------------------------------------------------------------------------------------
// Hierarchy and batch

#[tokio::test]
async fn put_hierarchy_writes_root_and_children_with_one_event() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let mut c = checkout_body();
    c["treeid"] = json!("tree-1");
    c["submitter"] = json!("sub-1");
    let checkout = id_of(&create(&app, &alice, &c).await);
    let mut j = job_body("baseline-x86");
    j["parent"] = json!(checkout);
    j["treeid"] = json!("tree-1");
    j["submitter"] = json!("sub-1");
    let job = create(&app, &alice, &j).await;
    let job_id = id_of(&job);
    let before = events(&app, "").await.len();

    let body = json!({
        "node": {"id": "ignored", "name": "baseline-x86", "kind": "job", "path": ["checkout", "baseline-x86"],
                 "state": "done", "result": "pass", "data": {}},
        "child_nodes": [
            {"node": {"name": "login", "kind": "test", "path": ["checkout", "baseline-x86", "login"],
                      "result": "pass", "treeid": "other", "submitter": "other"},
             "child_nodes": [
                 {"node": {"name": "shell", "kind": "test",
                           "path": ["checkout", "baseline-x86", "login", "shell"], "result": "fail"},
                  "child_nodes": []}
             ]},
            {"node": {"name": "kernelmsg", "kind": "test", "path": ["checkout", "baseline-x86", "kernelmsg"],
                      "result": "skip"},
             "child_nodes": []}
        ]
    });
    let (status, v) = app
        .send_json("PUT", &format!("/nodes/{job_id}"), Some(&alice), &body)
        .await;
    assert_eq!(status, 200, "{v}");
    let written = v.as_array().unwrap();
    let got: Vec<&str> = written
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ["baseline-x86", "login", "shell", "kernelmsg"],
        "root first, depth-first"
    );
    assert_eq!(id_of(&written[0]), job_id, "the root keeps the path id");
    assert_eq!(written[0]["state"], "done");
    assert_eq!(written[0]["parent"], json!(checkout));
    let ids: Vec<String> = written.iter().map(id_of).collect();
    for (i, parent) in [(1, &ids[0]), (2, &ids[1]), (3, &ids[0])] {
        let stored = get_node(&app, &ids[i]).await;
        assert_eq!(keys(&stored), NODE_KEYS);
        assert_eq!(stored["parent"], json!(parent), "{}", stored["name"]);
        assert_eq!(stored["treeid"], "tree-1", "{}", stored["name"]);
        assert_eq!(stored["submitter"], "sub-1", "{}", stored["name"]);
        assert_eq!(stored["owner"], "alice", "{}", stored["name"]);
        assert_eq!(stored["kind"], "test");
    }
    assert_eq!(get_node(&app, &ids[2]).await["result"], "fail");
    assert_eq!(get_node(&app, &job_id).await["result"], "pass");
    assert_eq!(count(&app, "?treeid=tree-1").await, 5);
    assert_eq!(count(&app, &format!("?parent={job_id}")).await, 2);

    let evs = events(&app, "").await;
    assert_eq!(evs.len(), before + 1, "exactly one event");
    let ev = &evs[before]["data"];
    assert_eq!(ev["op"], "updated");
    assert_eq!(ev["id"], json!(job_id));
    assert_eq!(ev["is_hierarchy"], true);
    assert_eq!(ev["state"], "done");
    assert_eq!(ev["previous_state"], "running");
}

#[tokio::test]
async fn put_hierarchy_on_missing_root_is_404() {
    let app = TestApp::start().await;
    let missing = "65a1355ee98651d0fe81e500";
    let body = json!({"node": job_body("j"), "child_nodes": []});
    let (status, v) = app
        .send_json(
            "PUT",
            &format!("/nodes/{missing}"),
            Some(&app.admin_token),
            &body,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(detail(&v), format!("Node not found with id: {missing}"));
    assert_eq!(count(&app, "").await, 0);
}

#[tokio::test]
async fn batch_nodeset_counts_and_skips_nodes_the_caller_cannot_edit() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let (_, bob) = app.add_user("bob", false).await;
    let a1 = create(&app, &alice, &job_body("a1")).await;
    let a2 = create(&app, &alice, &job_body("a2")).await;
    let b1 = create(&app, &bob, &job_body("b1")).await;
    let before = events(&app, "").await;
    let body = json!({"nodes": [id_of(&a1), id_of(&b1), id_of(&a2)],
                      "field": "processed_by_kcidb_bridge", "value": "True"});
    let (status, v) = app
        .send_json("PUT", "/batch/nodeset", Some(&alice), &body)
        .await;
    assert_eq!((status, v), (200, json!(2)));
    for (node, flag) in [(&a1, true), (&a2, true), (&b1, false)] {
        let got = get_node(&app, &id_of(node)).await;
        assert_eq!(got["processed_by_kcidb_bridge"], flag, "{}", node["name"]);
        if flag {
            assert_ne!(got["updated"], node["updated"], "updated is bumped");
        } else {
            assert_eq!(got, *node, "skipped node unchanged");
        }
    }
    assert_eq!(events(&app, "").await, before, "no events");

    let body = json!({"nodes": [id_of(&a1), id_of(&b1)], "field": "processed_by_kcidb_bridge", "value": "false"});
    let (status, v) = app
        .send_json("PUT", "/batch/nodeset", Some(&app.admin_token), &body)
        .await;
    assert_eq!((status, v), (200, json!(2)), "admin edits all");
    assert_eq!(
        get_node(&app, &id_of(&a1)).await["processed_by_kcidb_bridge"],
        false
    );
    assert_eq!(count(&app, "?processed_by_kcidb_bridge=true").await, 1);
}

#[tokio::test]
async fn batch_nodeset_refuses_other_fields_and_values() {
    let app = TestApp::start().await;
    let node = create(&app, &app.admin_token, &job_body("a1")).await;
    let id = id_of(&node);
    let body = json!({"nodes": [id], "field": "state", "value": "done"});
    let (status, v) = app
        .send_json("PUT", "/batch/nodeset", Some(&app.admin_token), &body)
        .await;
    assert_eq!((status, v), (400, json!({"detail": "Field not supported"})));
    for value in ["yes", "TRUE", "1", ""] {
        let body = json!({"nodes": [id], "field": "processed_by_kcidb_bridge", "value": value});
        let (status, v) = app
            .send_json("PUT", "/batch/nodeset", Some(&app.admin_token), &body)
            .await;
        assert_eq!(status, 400, "{value:?}");
        assert_eq!(
            detail(&v),
            format!(
                "Invalid value for processed_by_kcidb_bridge: '{value}', use 'true' or 'false'"
            )
        );
    }
    let missing = "65a1355ee98651d0fe81e500";
    let body = json!({"nodes": [missing], "field": "processed_by_kcidb_bridge", "value": "true"});
    let (status, v) = app
        .send_json("PUT", "/batch/nodeset", Some(&app.admin_token), &body)
        .await;
    assert_eq!(status, 404);
    assert_eq!(detail(&v), format!("Node not found with id: {missing}"));
    assert_eq!(get_node(&app, &id).await, node);
}

// ------------------------------------------------------------------------------------------
// Events history

/// A checkout, a kbuild under it, then the kbuild PATCHed to done: three events.
async fn seed_events(app: &TestApp) -> (String, String, Vec<Value>) {
    let c = id_of(&create(app, &app.admin_token, &checkout_body()).await);
    let k = id_of(&create(app, &app.admin_token, &kbuild_body(&c)).await);
    let patch = json!({"state": "done", "result": "pass"});
    let (status, _) = app
        .send_json(
            "PATCH",
            &format!("/node/{k}"),
            Some(&app.admin_token),
            &patch,
        )
        .await;
    assert_eq!(status, 200);
    let evs = events(app, "").await;
    assert_eq!(evs.len(), 3);
    (c, k, evs)
}

#[tokio::test]
async fn events_have_upstream_shape_and_increasing_sequence() {
    let app = TestApp::start().await;
    let (c, k, evs) = seed_events(&app).await;
    for e in &evs {
        assert_eq!(
            keys(e),
            ["timestamp", "sequence_id", "channel", "owner", "data", "id"]
        );
        assert_eq!(e["channel"], "node");
        assert_eq!(e["owner"], "admin");
    }
    let seqs: Vec<i64> = evs
        .iter()
        .map(|e| e["sequence_id"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(evs[0]["data"]["id"], json!(c));
    assert_eq!(evs[0]["data"]["op"], "created");
    let mut got = keys(&evs[0]["data"]);
    got.sort_unstable();
    let mut expected = EVENT_DATA_KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(evs[0]["data"]["data"], checkout_body()["data"]);
    assert_eq!(evs[2]["data"]["id"], json!(k));
    assert_eq!(evs[2]["data"]["op"], "updated");
    assert_eq!(evs[2]["data"]["previous_state"], "running");
    assert_eq!(evs[2]["data"]["previous_result"], Value::Null);
    assert_eq!(evs[2]["data"]["result"], "pass");
}

/// Event payloads keep upstream's key order on every backend (they are served from the
/// stored envelope text). Node documents keep the client's key order inside `data` on
/// SQLite; PostgreSQL stores them as JSONB, which normalizes key order (documented in
/// README): there only the content is compared.
#[tokio::test]
async fn events_and_node_data_keep_key_order() {
    let app = TestApp::start().await;
    let (c, _, evs) = seed_events(&app).await;
    assert_eq!(keys(&evs[0]["data"]), EVENT_DATA_KEYS, "/events data");
    let expected = ["tree", "url", "branch", "commit", "describe", "version"];
    assert_eq!(
        keys(&evs[0]["data"]["data"]["kernel_revision"]),
        expected,
        "/events data.data"
    );
    let node = get_node(&app, &c).await;
    let (_, fast) = app.get("/nodes/fast?kind=checkout", None).await;
    if app.store.backend() == "sqlite" {
        assert_eq!(
            keys(&node["data"]["kernel_revision"]),
            expected,
            "GET /node data as sent"
        );
        assert_eq!(
            keys(&fast[0]["data"]["kernel_revision"]),
            expected,
            "/nodes/fast data"
        );
    } else {
        let mut got = keys(&node["data"]["kernel_revision"]);
        got.sort();
        let mut want = expected.to_vec();
        want.sort();
        assert_eq!(got, want, "same keys on PostgreSQL");
    }
    assert_eq!(fast[0]["data"], node["data"]);
}

#[tokio::test]
async fn events_filters() {
    let app = TestApp::start().await;
    let (c, k, evs) = seed_events(&app).await;
    let eid = |i: usize| id_of(&evs[i]);
    let cases: Vec<(String, Vec<usize>)> = vec![
        ("?kind=kbuild".into(), vec![1, 2]),
        ("?kind=checkout".into(), vec![0]),
        ("?op=updated".into(), vec![2]),
        ("?op=created".into(), vec![0, 1]),
        (format!("?node_id={k}"), vec![1, 2]),
        (format!("?data.id={c}"), vec![0]),
        (format!("?id={}", eid(1)), vec![1]),
        (format!("?ids={},{}", eid(0), eid(2)), vec![0, 2]),
        ("?state=done".into(), vec![2]),
        ("?result=pass".into(), vec![2]),
        ("?name=checkout".into(), vec![0]),
        ("?owner=admin".into(), vec![0, 1, 2]),
        ("?owner=nobody".into(), vec![]),
        ("?channel=node".into(), vec![0, 1, 2]),
        ("?channel=other".into(), vec![]),
        ("?kind=".into(), vec![0, 1, 2]),
        ("?path=kbuild".into(), vec![1, 2]),
        ("?limit=1".into(), vec![0]),
        ("?limit=1&offset=1".into(), vec![1]),
        ("?offset=2".into(), vec![2]),
        ("?data.is_hierarchy=false".into(), vec![0, 1, 2]),
        (
            format!("?from={}", evs[0]["timestamp"].as_str().unwrap()),
            vec![1, 2],
        ),
        ("?from=2999-01-01T00:00:00".into(), vec![]),
    ];
    for (query, expected) in cases {
        let got = events(&app, &query).await;
        let expected: Vec<Value> = expected.into_iter().map(|i| evs[i].clone()).collect();
        assert_eq!(got, expected, "{query}");
    }
}

#[tokio::test]
async fn events_parameter_errors() {
    let app = TestApp::start().await;
    let (c, _, evs) = seed_events(&app).await;
    let e0 = id_of(&evs[0]);
    let cases = [
        (
            format!("?id={e0}&ids={e0}"),
            "Provide either id or ids, not both",
        ),
        ("?id=not-an-objectid".to_string(), "Invalid id format"),
        (format!("?ids={e0},zz"), "Invalid ids format"),
        ("?ids=,".to_string(), "ids must contain at least one id"),
        (
            format!("?node_id={c}&data.id={c}"),
            "Provide either node_id or data.id, not both",
        ),
        (
            "?from=yesterday".to_string(),
            "Invalid 'from' parameter, must be an ISO 8601 datetime",
        ),
        (
            "?recursive=true".to_string(),
            "Recursive limit is too large, max is 1000",
        ),
        (
            "?recursive=true&limit=1001".to_string(),
            "Recursive limit is too large, max is 1000",
        ),
    ];
    for (query, msg) in cases {
        let (status, v) = app.get(&format!("/events{query}"), None).await;
        assert_eq!(status, 400, "{query}: {v}");
        assert_eq!(detail(&v), msg, "{query}");
    }
}

#[tokio::test]
async fn events_recursive_attaches_the_current_node() {
    let app = TestApp::start().await;
    let (c, k, _) = seed_events(&app).await;
    let got = events(&app, "?recursive=true&limit=1000").await;
    assert_eq!(got.len(), 3);
    for e in &got {
        let node = &e["node"];
        assert_eq!(keys(node), NODE_KEYS);
        assert_eq!(node["id"], e["data"]["id"]);
    }
    assert_eq!(got[0]["node"], get_node(&app, &c).await);
    assert_eq!(got[1]["node"]["state"], "done", "the node as it is now");
    assert_eq!(got[1]["node"], get_node(&app, &k).await);
    let plain = events(&app, "?limit=10").await;
    assert!(plain.iter().all(|e| e.get("node").is_none()));
}

// ------------------------------------------------------------------------------------------
// Pub/sub

#[tokio::test]
async fn subscribe_returns_subscription_with_increasing_integer_ids() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let mut ids = Vec::new();
    for (channel, token, user, promisc) in [
        ("node", &app.admin_token, "admin", false),
        ("test_channel", &alice, "alice", true),
        ("user_group", &app.admin_token, "admin", false),
    ] {
        let q = if promisc { "?promisc=true" } else { "" };
        let req = app
            .client
            .post(app.url(&format!("/subscribe/{channel}{q}")))
            .bearer_auth(token);
        let (status, v) = send(req).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(keys(&v), ["id", "channel", "user", "promiscuous"]);
        assert_eq!(v["channel"], channel);
        assert_eq!(v["user"], user);
        assert_eq!(v["promiscuous"], promisc);
        ids.push(v["id"].as_i64().unwrap());
    }
    assert!(ids[0] >= 1);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let (status, v) = app
        .get("/stats/subscriptions", Some(&app.admin_token))
        .await;
    assert_eq!(status, 200);
    let listed: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, ids);
    let (status, _) = app.get("/stats/subscriptions", Some(&alice)).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_receives_created_then_updated_node_events() {
    let app = TestApp::start().await;
    let sub = subscribe(&app, &app.admin_token, "node").await;
    let started = Instant::now();
    let waiting = {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/listen/{sub}")),
            app.admin_token.clone(),
        );
        tokio::spawn(async move { send(client.get(url).bearer_auth(token)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let node = create(&app, &app.admin_token, &checkout_body()).await;
    let (status, resp) = waiting.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "woken by the event, not the keep-alive"
    );
    assert_eq!(status, 200, "{resp}");
    assert_eq!(keys(&resp), ["type", "pattern", "channel", "data"]);
    assert_eq!(
        (
            resp["type"].clone(),
            resp["pattern"].clone(),
            resp["channel"].clone()
        ),
        (json!("message"), Value::Null, json!("node"))
    );
    let raw = resp["data"].as_str().expect("data is a string");
    assert!(
        raw.starts_with("{\"specversion\": \"1.0\", \"id\": \""),
        "Python json.dumps separators: {raw}"
    );
    let envelope: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(
        keys(&envelope),
        [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "data",
            "owner",
            "_sequence_id"
        ]
    );
    assert_eq!(envelope["type"], "api.kernelci.org");
    assert_eq!(envelope["source"], "https://api.kernelci.org/");
    assert_eq!(envelope["owner"], "admin");
    assert!(envelope["time"].as_str().unwrap().ends_with("+00:00"));
    assert!(envelope["_sequence_id"].is_i64());
    let data = &envelope["data"];
    assert_eq!(keys(data), EVENT_DATA_KEYS);
    assert_eq!(data["op"], "created");
    assert_eq!(data["id"], node["id"]);
    assert_eq!(data["kind"], "checkout");
    assert_eq!(data["name"], "checkout");
    assert_eq!(data["path"], json!(["checkout"]));
    assert_eq!(data["state"], "running");
    assert_eq!(data["result"], Value::Null);
    assert_eq!(data["owner"], "admin");
    assert_eq!(data["data"], checkout_body()["data"]);
    assert_eq!(data["is_hierarchy"], false);

    let mut put = node.clone();
    put["state"] = json!("done");
    put["result"] = json!("pass");
    let (status, _) = put_node(&app, &app.admin_token, &id_of(&node), &put).await;
    assert_eq!(status, 200);
    let (_, envelope) = listen(&app, &app.admin_token, sub).await;
    let data = &envelope["data"];
    assert_eq!(data["op"], "updated");
    assert_eq!(data["id"], node["id"]);
    assert_eq!(
        (data["state"].clone(), data["result"].clone()),
        (json!("done"), json!("pass"))
    );
    assert_eq!(
        (
            data["previous_state"].clone(),
            data["previous_result"].clone()
        ),
        (json!("running"), Value::Null)
    );
    let mut expected: Vec<&str> = EVENT_DATA_KEYS.to_vec();
    expected.extend(["previous_state", "previous_result"]);
    assert_eq!(keys(data), expected);
}

#[tokio::test]
async fn listen_returns_beep_keep_alive_when_idle() {
    let app = TestApp::start().await;
    let sub = subscribe(&app, &app.admin_token, "node").await;
    let started = Instant::now();
    let (resp, envelope) = listen(&app, &app.admin_token, sub).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(resp["channel"], "node");
    assert_eq!(envelope["data"], "BEEP");
    assert!(
        envelope.get("owner").is_none() && envelope.get("_sequence_id").is_none(),
        "{envelope}"
    );
    assert_eq!(
        keys(&envelope),
        ["specversion", "id", "source", "type", "time", "data"]
    );
}

#[tokio::test]
async fn non_promiscuous_subscriber_only_gets_own_nodes() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let (_, bob) = app.add_user("bob", false).await;
    let own = subscribe(&app, &bob, "node").await;
    let all = subscribe(&app, &bob, "node?promisc=true").await;
    let alice_node = create(&app, &alice, &job_body("alice-job")).await;
    let bob_node = create(&app, &bob, &job_body("bob-job")).await;

    let (_, e) = listen(&app, &bob, all).await;
    assert_eq!(
        e["data"]["id"], alice_node["id"],
        "promiscuous gets alice's node"
    );
    assert_eq!(e["owner"], "alice", "owner attribute = node owner");
    let (_, e) = listen(&app, &bob, all).await;
    assert_eq!(e["data"]["id"], bob_node["id"]);

    let (_, e) = listen(&app, &bob, own).await;
    assert_eq!(
        e["data"]["id"], bob_node["id"],
        "alice's node is filtered out"
    );
    // An update by admin of alice's node is still alice's (owner = node owner).
    let patch = json!({"state": "done"});
    app.send_json(
        "PATCH",
        &format!("/node/{}", id_of(&alice_node)),
        Some(&app.admin_token),
        &patch,
    )
    .await;
    let (_, e) = listen(&app, &bob, own).await;
    assert_eq!(e["data"], "BEEP", "nothing for bob: {e}");
}

#[tokio::test]
async fn publish_is_received_with_upstream_keys() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let sub = subscribe(&app, &alice, "test_channel").await;
    let body = json!({"type": "test-type", "source": "https://test.org/", "data": {"message": "Test message"},
                      "attributes": {"extra": "x", "owner": "mallory"}});
    let (status, v) = app
        .send_json("POST", "/publish/test_channel", Some(&alice), &body)
        .await;
    assert_eq!((status, v), (200, Value::Null));
    let (resp, envelope) = listen(&app, &alice, sub).await;
    let mut resp_keys = keys(&resp);
    resp_keys.sort_unstable();
    assert_eq!(resp_keys, ["channel", "data", "pattern", "type"]);
    assert_eq!(resp["channel"], "test_channel");
    assert_eq!(envelope["data"], json!({"message": "Test message"}));
    assert_eq!(envelope["type"], "test-type");
    assert_eq!(envelope["source"], "https://test.org/");
    assert_eq!(envelope["owner"], "alice", "owner cannot be overridden");
    assert_eq!(envelope["extra"], "x");
    let stored = events(&app, "?channel=test_channel").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["owner"], "alice");
    assert_eq!(stored[0]["data"], json!({"message": "Test message"}));
}

#[tokio::test]
async fn publish_with_falsy_data_is_422() {
    let app = TestApp::start().await;
    for data in [json!({}), Value::Null, json!(""), json!(0), json!([])] {
        let (status, v) = app
            .send_json(
                "POST",
                "/publish/test_channel",
                Some(&app.admin_token),
                &json!({"data": data}),
            )
            .await;
        assert_eq!(status, 422, "{data}");
        assert_eq!(
            v["detail"][0]["msg"],
            "Value error, None is not allowed as event payload"
        );
        assert_eq!(v["detail"][0]["loc"], json!(["body", "data"]));
    }
    assert_eq!(events(&app, "").await, Vec::<Value>::new());
}

#[tokio::test]
async fn listen_and_unsubscribe_errors() {
    let app = TestApp::start().await;
    let (_, bob) = app.add_user("bob", false).await;
    let sub = subscribe(&app, &app.admin_token, "node").await;

    let (status, v) = app.get("/listen/999", Some(&app.admin_token)).await;
    assert_eq!(
        (status, v),
        (
            404,
            json!({"detail": "Subscription id not found: 'Subscription 999 not found'"})
        )
    );
    let (status, v) = app.get(&format!("/listen/{sub}"), None).await;
    assert_eq!((status, v), (401, json!({"detail": "Unauthorized"})));
    let (status, v) = app.get(&format!("/listen/{sub}"), Some(&bob)).await;
    assert_eq!(status, 403);
    assert_eq!(
        detail(&v),
        format!("Error while listening to sub id {sub}: Subscription {sub} not owned by bob")
    );
    let (status, v) = unsubscribe(&app, &bob, sub).await;
    assert_eq!(status, 403);
    assert_eq!(detail(&v), format!("Subscription {sub} not owned by bob"));
    let (status, v) = unsubscribe(&app, &app.admin_token, 999).await;
    assert_eq!(status, 404);
    assert!(v["detail"].is_string());

    let (status, v) = unsubscribe(&app, &app.admin_token, sub).await;
    assert_eq!((status, v), (200, Value::Null));
    let (status, _) = app
        .get(&format!("/listen/{sub}"), Some(&app.admin_token))
        .await;
    assert_eq!(status, 404, "gone after unsubscribe");
    let (status, _) = unsubscribe(&app, &app.admin_token, sub).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn subscriber_id_owned_by_another_user_is_409() {
    let app = TestApp::start().await;
    let (_, bob) = app.add_user("bob", false).await;
    subscribe(&app, &app.admin_token, "node?subscriber_id=scheduler:node").await;
    let req = app
        .client
        .post(app.url("/subscribe/node?subscriber_id=scheduler:node"))
        .bearer_auth(&bob);
    let (status, v) = send(req).await;
    assert_eq!(status, 409);
    assert_eq!(
        detail(&v),
        "Subscriber id scheduler:node is owned by another user"
    );
}

#[tokio::test]
async fn durable_subscriber_catches_up_and_redelivers_unacked_event() {
    let app = TestApp::start().await;
    let token = &app.admin_token;
    let sid = "node?subscriber_id=test:node";
    let sub = subscribe(&app, token, sid).await;
    let n1 = create(&app, token, &job_body("n1")).await;
    let n2 = create(&app, token, &job_body("n2")).await;
    let (_, e) = listen(&app, token, sub).await;
    assert_eq!(e["data"]["id"], n1["id"]);
    let (_, e) = listen(&app, token, sub).await;
    assert_eq!(e["data"]["id"], n2["id"], "this listen acknowledges n1");
    // n2 was delivered but never acknowledged (no further listen before unsubscribe).
    let (status, _) = unsubscribe(&app, token, sub).await;
    assert_eq!(status, 200);
    let n3 = create(&app, token, &job_body("n3")).await;
    let n4 = create(&app, token, &job_body("n4")).await;

    let sub2 = subscribe(&app, token, sid).await;
    assert_ne!(sub2, sub);
    let mut got = Vec::new();
    for _ in 0..3 {
        let (_, e) = listen(&app, token, sub2).await;
        got.push(e["data"]["id"].clone());
    }
    assert_eq!(
        got,
        [n2["id"].clone(), n3["id"].clone(), n4["id"].clone()],
        "n2 again, then the missed ones in order"
    );
    let (_, e) = listen(&app, token, sub2).await;
    assert_eq!(e["data"], "BEEP", "nothing more: {e}");
}

#[tokio::test]
async fn plain_subscription_starts_now() {
    let app = TestApp::start().await;
    create(&app, &app.admin_token, &job_body("before")).await;
    let sub = subscribe(&app, &app.admin_token, "node").await;
    let after = create(&app, &app.admin_token, &job_body("after")).await;
    let (_, e) = listen(&app, &app.admin_token, sub).await;
    assert_eq!(
        e["data"]["id"], after["id"],
        "no backlog for a plain subscription"
    );
}

#[tokio::test]
async fn push_and_pop_round_trip_in_order() {
    let app = TestApp::start().await;
    let token = &app.admin_token;
    let (status, v) = app
        .send_json(
            "POST",
            "/push/my-list",
            Some(token),
            &json!({"data": {"n": 1}}),
        )
        .await;
    assert_eq!((status, v), (200, Value::Null));
    let body = json!({"data": {"n": 2}, "type": "custom", "source": "https://src/", "extra": "e"});
    let (status, _) = app
        .send_json("POST", "/push/my-list", Some(token), &body)
        .await;
    assert_eq!(status, 200);

    let (status, v) = app.get("/pop/my-list", Some(token)).await;
    assert_eq!(status, 200);
    assert_eq!(v["specversion"], "1.0");
    assert_eq!(v["data"], json!({"n": 1}));
    assert_eq!(v["type"], "api.kernelci.org");
    let (_, v) = app.get("/pop/my-list", Some(token)).await;
    assert_eq!(v["data"], json!({"n": 2}));
    assert_eq!(v["type"], "custom");
    assert_eq!(v["source"], "https://src/");
    assert_eq!(v["extra"], "e");

    let (status, v) = app
        .send_json(
            "POST",
            "/push/my-list",
            Some(token),
            &json!({"type": "no-data"}),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["detail"][0]["loc"], json!(["body", "data"]));
    let (status, _) = app.get("/pop/my-list", None).await;
    assert_eq!(status, 401);
}

// ------------------------------------------------------------------------------------------
// Key/value store

#[tokio::test]
async fn kv_set_get_delete() {
    let app = TestApp::start().await;
    let token = Some(app.admin_token.as_str());
    let (status, v) = app.get("/kv/ns/key", token).await;
    assert_eq!((status, v), (200, Value::Null));
    let (status, v) = app
        .send_json("POST", "/kv/ns/key", token, &json!("value"))
        .await;
    assert_eq!((status, v), (200, json!("OK")));
    assert_eq!(app.get("/kv/ns/key", token).await, (200, json!("value")));
    assert_eq!(
        app.get("/kv/other/key", token).await,
        (200, Value::Null),
        "namespaces are separate"
    );
    app.send_json("POST", "/kv/ns/key", token, &json!("v2"))
        .await;
    assert_eq!(app.get("/kv/ns/key", token).await, (200, json!("v2")));
    let (status, v) = app
        .send_json("DELETE", "/kv/ns/key", token, &Value::Null)
        .await;
    assert_eq!(
        (status, v),
        (200, json!("Key-value pair deleted successfully"))
    );
    assert_eq!(app.get("/kv/ns/key", token).await, (200, Value::Null));

    app.send_json("POST", "/kv/ns/key", token, &json!("again"))
        .await;
    let (status, _) = app.send_json("POST", "/kv/ns/key", token, &json!("")).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get("/kv/ns/key", token).await,
        (200, Value::Null),
        "an empty string deletes"
    );
    let (status, _) = app.get("/kv/ns/key", None).await;
    assert_eq!(status, 401);
}

// ------------------------------------------------------------------------------------------
// Users and authentication

#[tokio::test]
async fn login_returns_a_bearer_token() {
    let app = TestApp::start().await;
    app.add_user("alice", false).await;
    let (status, v) = login(&app, "alice", "alice").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(keys(&v), ["access_token", "token_type"]);
    assert_eq!(v["token_type"], "bearer");
    let token = v["access_token"].as_str().unwrap();
    let (status, me) = app.get("/whoami", Some(token)).await;
    assert_eq!(status, 200);
    assert_eq!(me["username"], "alice");

    for (user, password) in [("alice", "wrong"), ("nobody", "nobody")] {
        let (status, v) = login(&app, user, password).await;
        assert_eq!(
            (status, v),
            (400, json!({"detail": "LOGIN_BAD_CREDENTIALS"})),
            "{user}"
        );
    }
    let (status, v) = send(
        app.client
            .post(app.url("/user/login"))
            .form(&[("username", "alice")]),
    )
    .await;
    assert_eq!(status, 422, "{v}");
}

#[tokio::test]
async fn whoami_and_user_by_id_have_the_7_keys() {
    let app = TestApp::start().await;
    let (alice_user, alice) = app.add_user("alice", false).await;
    let (status, me) = app.get("/whoami", Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&me), USER_KEYS);
    assert_eq!(me["id"], json!(alice_user.id.to_string()));
    assert_eq!(me["email"], "alice@example.org");
    assert_eq!(
        (
            me["is_active"].clone(),
            me["is_superuser"].clone(),
            me["is_verified"].clone()
        ),
        (json!(true), json!(false), json!(true))
    );
    assert_eq!(me["groups"], json!([]));

    let (status, v) = app
        .get(&format!("/user/{}", alice_user.id), Some(&app.admin_token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v, me);
    let (status, v) = app
        .get("/user/65a1355ee98651d0fe81e500", Some(&alice))
        .await;
    assert_eq!((status, v), (404, json!({"detail": "Not Found"})));
    let (status, _) = app.get("/whoami", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn register_is_forbidden_or_disabled() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let body = json!({"username": "newbie", "email": "newbie@example.org", "password": "secret"});
    let (status, v) = app
        .send_json("POST", "/user/register", Some(&alice), &body)
        .await;
    assert_eq!((status, v), (403, json!({"detail": "Forbidden"})));
    let (status, v) = app.post_admin("/user/register", &body).await;
    assert_eq!(
        (status, v),
        (
            404,
            json!({"detail": "User registration is disabled; use /user/invite instead."})
        )
    );
}

#[tokio::test]
async fn invite_accept_and_login() {
    let app = TestApp::start().await;
    let body = json!({"username": "test_user", "email": "test_user@example.org",
                      "send_email": false, "return_token": true});
    let (status, v) = app.post_admin("/user/invite", &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        keys(&v),
        [
            "user",
            "email_sent",
            "public_base_url",
            "accept_invite_url",
            "invite_url",
            "token"
        ]
    );
    assert_eq!(v["email_sent"], false);
    assert_eq!(v["user"]["is_verified"], false);
    assert_eq!(v["user"]["username"], "test_user");
    let token = v["token"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    assert!(
        v["invite_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/user/accept-invite?token={token}"))
    );

    let (status, _) = login(&app, "test_user", "new-password").await;
    assert_eq!(status, 400, "no password yet");
    let accept = json!({"token": token, "password": "new-password"});
    let (status, v) = app
        .send_json("POST", "/user/accept-invite", None, &accept)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(keys(&v), USER_KEYS);
    assert_eq!(v["is_verified"], true);
    assert_eq!(v["username"], "test_user");
    let (status, v) = app
        .send_json("POST", "/user/accept-invite", None, &accept)
        .await;
    assert_eq!(
        (status, v),
        (400, json!({"detail": "Invite already accepted"}))
    );

    let (status, v) = login(&app, "test_user", "new-password").await;
    assert_eq!(status, 200, "{v}");
    let (status, me) = app
        .get("/whoami", Some(v["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(keys(&me), USER_KEYS);
    assert_eq!(me["username"], "test_user");

    let (status, v) = app.post_admin("/user/invite", &body).await;
    assert_eq!((status, v), (400, json!({"detail": "User already exists"})));
}

#[tokio::test]
async fn user_groups_create_list_delete() {
    let app = TestApp::start().await;
    let (alice_user, alice) = app.add_user("alice", false).await;
    let unused = create_group(&app, "unused").await;
    assert_eq!(keys(&unused), ["id", "name"]);
    assert_eq!(unused["name"], "unused");
    let assigned = create_group(&app, "assigned").await;
    let (status, v) = app
        .post_admin("/user-groups", &json!({"name": "unused"}))
        .await;
    assert_eq!(
        (status, v),
        (
            400,
            json!({"detail": "User group already exists with name: unused"})
        )
    );

    let (status, v) = app.get("/user-groups", Some(&app.admin_token)).await;
    assert_eq!(status, 200);
    assert_eq!(v["total"], 3, "node:edit:any, unused, assigned: {v}");
    let listed: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"node:edit:any")
            && listed.contains(&"unused")
            && listed.contains(&"assigned")
    );
    let (status, v) = app
        .get("/user-groups?name=unused", Some(&app.admin_token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["items"], json!([unused.clone()]));
    let (status, v) = app
        .get(
            &format!("/user-groups/{}", id_of(&unused)),
            Some(&app.admin_token),
        )
        .await;
    assert_eq!((status, v), (200, unused.clone()));
    let (status, v) = app.get("/user-groups", Some(&alice)).await;
    assert_eq!((status, v), (403, json!({"detail": "Forbidden"})));

    set_groups(&app, &alice_user.id.to_string(), &["assigned"]).await;
    let (status, v) = delete_group(&app, &id_of(&assigned)).await;
    assert_eq!(status, 409);
    assert!(detail(&v).starts_with("User group is assigned"), "{v}");
    let (status, v) = delete_group(&app, &id_of(&unused)).await;
    assert_eq!((status, v), (204, Value::Null));
    let (status, v) = app
        .get(
            &format!("/user-groups/{}", id_of(&unused)),
            Some(&app.admin_token),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        detail(&v),
        format!("User group not found with id: {}", id_of(&unused))
    );
}

#[tokio::test]
async fn patch_user_me_with_groups_is_400() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let (status, v) = app
        .send_json(
            "PATCH",
            "/user/me",
            Some(&alice),
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
    let (_, me) = app.get("/whoami", Some(&alice)).await;
    assert_eq!(me["groups"], json!([]));
    let (status, v) = app
        .send_json(
            "PATCH",
            "/user/me",
            Some(&alice),
            &json!({"password": "foo"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(login(&app, "alice", "foo").await.0, 200);
}

#[tokio::test]
async fn unified_secret_tokens_are_accepted() {
    let opts = TestOptions {
        unified_secret: Some("unified-secret".into()),
        ..Default::default()
    };
    let app = TestApp::start_with(opts).await;
    let (alice, primary) = app.add_user("alice", false).await;
    let unified = JwtKeys::new("unified-secret", None).issue_access(&alice.id, None);
    let wrong = JwtKeys::new("wrong-secret", None).issue_access(&alice.id, None);
    for (token, expected) in [(&primary, 200), (&unified, 200), (&wrong, 401)] {
        let req = app
            .client
            .post(app.url("/subscribe/node"))
            .bearer_auth(token);
        let (status, v) = send(req).await;
        assert_eq!(status, expected, "{v}");
        if status == 200 {
            assert_eq!(v["user"], "alice");
        }
    }
    let (status, me) = app.get("/whoami", Some(&unified)).await;
    assert_eq!((status, me["username"].clone()), (200, json!("alice")));
}

#[tokio::test]
async fn unified_token_fails_without_a_unified_secret() {
    let app = TestApp::start().await;
    let (alice, _) = app.add_user("alice", false).await;
    let unified = JwtKeys::new("unified-secret", None).issue_access(&alice.id, None);
    let req = app
        .client
        .post(app.url("/subscribe/node"))
        .bearer_auth(&unified);
    let (status, v) = send(req).await;
    assert_eq!((status, v), (401, json!({"detail": "Unauthorized"})));
}

#[tokio::test]
async fn expired_or_unknown_user_token_is_401() {
    let app = TestApp::start().await;
    let (alice, _) = app.add_user("alice", false).await;
    let expired = app.keys.issue_access(&alice.id, Some(-10));
    let ghost = app
        .keys
        .issue_access(&kernelci_model::ObjectId::generate(), None);
    for token in [&expired, &ghost] {
        let (status, v) = app
            .send_json("POST", "/node", Some(token), &checkout_body())
            .await;
        assert_eq!((status, v), (401, json!({"detail": "Unauthorized"})));
        let (status, _) = app.get("/whoami", Some(token)).await;
        assert_eq!(status, 401);
    }
    assert_eq!(count(&app, "").await, 0);
}

// ------------------------------------------------------------------------------------------
// Query language details

#[tokio::test]
async fn node_query_values_are_typed_like_upstream() {
    let app = TestApp::start().await;
    let body = json!({"kind": "process", "name": "p", "path": ["checkout", "p"],
                      "data": {"n": 7, "s": "5", "flag": true, "list": ["a", "b"]}});
    let p = create(&app, &app.admin_token, &body).await;
    create(&app, &app.admin_token, &job_body("other")).await;
    let cases = [
        ("data.n=7", 0),
        ("data.n__int=7", 1),
        ("data.n__gt=5", 1),
        ("data.n__lt=5", 0),
        ("data.s=5", 1),
        ("data.s__int=5", 0),
        ("data.flag=true", 1),
        ("data.flag=True", 1),
        ("data.flag=false", 0),
        ("data.list=b", 1),
        ("data.missing=null", 2),
        ("data.n=null", 1),
        ("data.n__ne=null", 1),
        ("path=p", 1),
        ("path=checkout", 2),
        ("path__re=^p$", 1),
        ("group=null", 2),
        ("name__nin=p,q", 1),
    ];
    for (q, expected) in cases {
        assert_eq!(count(&app, &format!("?{q}")).await, expected, "{q}");
    }
    let page = nodes(&app, "?data.n__int=7").await;
    assert_eq!(ids(&page), [id_of(&p)]);
}

#[tokio::test]
async fn time_filters_are_exact_to_the_microsecond() {
    let app = TestApp::start().await;
    let a = create(&app, &app.admin_token, &job_body("a")).await;
    let b = create(&app, &app.admin_token, &job_body("b")).await;
    let ta = a["created"].as_str().unwrap();
    let tb = b["created"].as_str().unwrap();
    assert_eq!(
        names(&nodes(&app, &format!("?created__gte={ta}")).await),
        ["a", "b"]
    );
    assert_eq!(
        names(&nodes(&app, &format!("?created__gt={ta}")).await),
        ["b"]
    );
    assert_eq!(names(&nodes(&app, &format!("?created={tb}")).await), ["b"]);
    assert_eq!(
        names(&nodes(&app, &format!("?created__lt={tb}&created__gte={ta}")).await),
        ["a"]
    );
    // An explicit UTC offset or Z means the same instant.
    let (status, v) = send(
        app.client
            .get(app.url("/nodes"))
            .query(&[("created", format!("{tb}+00:00"))]),
    )
    .await;
    assert_eq!((status, names(&v)), (200, vec!["b".to_string()]));
    let (status, v) = send(
        app.client
            .get(app.url("/nodes"))
            .query(&[("created", format!("{tb}Z"))]),
    )
    .await;
    assert_eq!((status, names(&v)), (200, vec!["b".to_string()]));
    let mut c = job_body("c");
    c["created"] = json!("2024-01-01T12:00:00");
    create(&app, &app.admin_token, &c).await;
    let (status, v) = send(
        app.client
            .get(app.url("/nodes"))
            .query(&[("created__lt", "2024-01-01T13:00:00+01:00")]),
    )
    .await;
    assert_eq!(
        (status, names(&v)),
        (200, Vec::<String>::new()),
        "13:00+01:00 is 12:00 UTC"
    );
    let (_, v) = send(
        app.client
            .get(app.url("/nodes"))
            .query(&[("created__lte", "2024-01-01T13:00:00+01:00")]),
    )
    .await;
    assert_eq!(names(&v), ["c"]);
    assert_eq!(names(&nodes(&app, "?created__lt=2024-01-02").await), ["c"]);
}

#[tokio::test]
async fn put_hierarchy_replaces_children_that_carry_an_id() {
    let app = TestApp::start().await;
    let job = create(&app, &app.admin_token, &job_body("job")).await;
    let job_id = id_of(&job);
    let mut t = json!({"kind": "test", "name": "login", "path": ["checkout", "job", "login"],
                       "parent": job_id});
    let existing = create(&app, &app.admin_token, &t).await;
    t["id"] = existing["id"].clone();
    t["result"] = json!("pass");
    t["state"] = json!("done");
    let body = json!({"node": job, "child_nodes": [{"node": t, "child_nodes": []}]});
    let (status, v) = app
        .send_json(
            "PUT",
            &format!("/nodes/{job_id}"),
            Some(&app.admin_token),
            &body,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v[1]["id"], existing["id"]);
    let got = get_node(&app, &id_of(&existing)).await;
    assert_eq!(
        (got["result"].clone(), got["state"].clone()),
        (json!("pass"), json!("done"))
    );
    assert_eq!(count(&app, "").await, 2, "replaced, not inserted");
}

// ------------------------------------------------------------------------------------------
// More users

async fn insert_user(app: &TestApp, name: &str, active: bool, verified: bool) -> String {
    let user = kernelci_model::User {
        id: kernelci_model::ObjectId::generate(),
        email: format!("{name}@example.org"),
        hashed_password: kernelci_api::auth::hash_password(name).unwrap(),
        is_active: active,
        is_superuser: false,
        is_verified: verified,
        username: name.to_string(),
        groups: Vec::new(),
    };
    app.store.insert_user(&user).await.unwrap();
    app.keys.issue_access(&user.id, None)
}

#[tokio::test]
async fn unverified_and_inactive_users() {
    let app = TestApp::start().await;
    let unverified = insert_user(&app, "carol", true, false).await;
    let inactive = insert_user(&app, "dave", false, true).await;
    assert_eq!(
        login(&app, "carol", "carol").await,
        (400, json!({"detail": "LOGIN_USER_NOT_VERIFIED"}))
    );
    assert_eq!(
        login(&app, "dave", "dave").await,
        (400, json!({"detail": "LOGIN_BAD_CREDENTIALS"}))
    );
    assert_eq!(
        app.get("/whoami", Some(&unverified)).await,
        (403, json!({"detail": "Forbidden"}))
    );
    let (status, v) = app
        .send_json("POST", "/node", Some(&unverified), &job_body("j"))
        .await;
    assert_eq!(
        status, 200,
        "an unverified but active user may write nodes: {v}"
    );
    assert_eq!(v["owner"], "carol");
    assert_eq!(
        app.get("/whoami", Some(&inactive)).await,
        (401, json!({"detail": "Unauthorized"}))
    );
    let (status, _) = app
        .send_json("POST", "/node", Some(&inactive), &job_body("j"))
        .await;
    assert_eq!(status, 401);
    assert_eq!(count(&app, "").await, 1);
}

#[tokio::test]
async fn users_list_is_readable_by_users_without_hashes() {
    let app = TestApp::start().await;
    let (_, alice) = app.add_user("alice", false).await;
    let (status, v) = app.get("/users", Some(&alice)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"], 2);
    for u in v["items"].as_array().unwrap() {
        assert!(u.get("hashed_password").is_none(), "{u}");
        assert_eq!(keys(u), USER_KEYS);
    }
    let (_, v) = app.get("/users?username=alice", Some(&alice)).await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["username"], "alice");
    assert_eq!(app.get("/users", None).await.0, 401);
}

// ------------------------------------------------------------------------------------------
// Concurrency

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_are_delivered_once_each_in_sequence_order() {
    let app = TestApp::start().await;
    let sub = subscribe(&app, &app.admin_token, "node").await;
    let n = 24;
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/node"),
            app.admin_token.clone(),
        );
        writers.spawn(async move {
            let (status, v) = send(
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&job_body(&format!("c{i}"))),
            )
            .await;
            assert_eq!(status, 200, "{v}");
            id_of(&v)
        });
    }
    let mut received = Vec::new();
    let mut seqs = Vec::new();
    while received.len() < n {
        let (_, e) = listen(&app, &app.admin_token, sub).await;
        assert_ne!(
            e["data"],
            "BEEP",
            "an event went missing after {} of {n}",
            received.len()
        );
        received.push(id_of(&e["data"]));
        seqs.push(e["_sequence_id"].as_i64().unwrap());
    }
    let mut created = Vec::new();
    while let Some(id) = writers.join_next().await {
        created.push(id.unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let mut sorted = received.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), n, "no duplicates");
    created.sort();
    assert_eq!(sorted, created);
    assert_eq!(count(&app, "").await, n as i64);
    assert_eq!(events(&app, "").await.len(), n);
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_listen_does_not_swallow_the_next_event() {
    let app = TestApp::start().await;
    let sub = subscribe(&app, &app.admin_token, "node").await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = app.url(&format!("/listen/{sub}"));
    let err = impatient
        .get(url)
        .bearer_auth(&app.admin_token)
        .send()
        .await;
    assert!(err.is_err(), "the client gave up");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let node = create(&app, &app.admin_token, &job_body("after-disconnect")).await;
    let (_, e) = listen(&app, &app.admin_token, sub).await;
    assert_eq!(
        e["data"]["id"], node["id"],
        "the event was not consumed by the dead listener: {e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_pops_each_get_a_different_item() {
    let app = TestApp::start().await;
    let mut poppers = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/pop/work"),
            app.admin_token.clone(),
        );
        poppers.spawn(async move { send(client.get(url).bearer_auth(token)).await });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        let (status, _) = app
            .send_json(
                "POST",
                "/push/work",
                Some(&app.admin_token),
                &json!({"data": {"i": i}}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let mut got = Vec::new();
    while let Some(res) = poppers.join_next().await {
        let (status, v) = res.unwrap();
        assert_eq!(status, 200, "{v}");
        got.push(v["data"]["i"].as_i64().unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2], "each item popped exactly once");
}
