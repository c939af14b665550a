//! Property test: random node filters give the same nodes on SQLite, on PostgreSQL (when
//! `KERNELCI_TEST_PG` or `KERNELCI_TEST_DATABASE_URL` is set; required under CI) and in the in-memory reference
//! evaluator of `kernelci_model::filter`.

use kernelci_model::{Node, NodeFilter, NodeInput, ObjectId, time};
use kernelci_store::{Page, Store};
use kernelci_tests::{TestDb, in_ci, pg_server_url};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

const NAMES: [&str; 4] = ["baseline", "kbuild-gcc-12", "kselftest", "checkout"];

/// A varied node set: every kind, states, results, nested data of every JSON type, arrays,
/// missing and null fields, parents, spread creation times.
fn corpus() -> Vec<Node> {
    let base = time::parse_iso("2024-06-01T00:00:00").expect("time");
    let kinds = ["checkout", "kbuild", "job", "test", "process", "regression"];
    let states = ["running", "available", "closing", "done"];
    let results = [
        json!(null),
        json!("pass"),
        json!("fail"),
        json!("skip"),
        json!("incomplete"),
    ];
    let arches = [
        json!("x86_64"),
        json!("arm64"),
        json!(null),
        json!(5),
        json!(["arm64", "riscv"]),
    ];
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..60usize {
        let created = base + chrono::TimeDelta::hours(i as i64 * 7);
        let mut data =
            json!({"n": (i % 7) as i64, "flag": i % 3 == 0, "tag": format!("t{}", i % 5)});
        if i % 4 != 0 {
            data["arch"] = arches[i % arches.len()].clone();
        }
        if i % 2 == 0 {
            let tree = ["mainline", "next", "stable"][i % 3];
            data["kernel_revision"] = json!({"tree": tree, "url": "https://git.example/x.git",
                                             "branch": "master", "commit": format!("{:040x}", i % 9)});
        }
        let mut body = json!({
            "kind": kinds[i % kinds.len()],
            "name": format!("{}-{}", NAMES[i % 4], i % 11),
            "path": ["checkout", format!("p{}", i % 3)],
            "state": states[i % states.len()],
            "result": results[i % results.len()],
            "group": if i % 5 == 0 { json!(null) } else { json!(format!("g{}", i % 4)) },
            "data": data,
            "created": time::format(&created),
            "retry_counter": (i % 3) as i64,
            "treeid": if i % 6 == 0 { json!(null) } else { json!(format!("tree{}", i % 2)) },
        });
        if i % 3 == 1 && !nodes.is_empty() {
            body["parent"] = json!(nodes[i / 2].id.to_string());
        }
        if i % 8 == 0 {
            body["holdoff"] = json!(time::format(&(created + chrono::TimeDelta::hours(1))));
        }
        let kind = kinds[i % kinds.len()];
        if kind != "process" && kind != "checkout" && !body["data"]["arch"].is_string() {
            // arch must be a string for the other kinds
            body["data"].as_object_mut().expect("obj").remove("arch");
        }
        let mut node = NodeInput::from_json(&body, created)
            .and_then(|n| n.into_new_node(["alice", "bob"][i % 2], created))
            .unwrap_or_else(|e| panic!("corpus node {i}: {e}"));
        node.processed_by_kcidb_bridge = i % 5 == 1;
        nodes.push(node);
    }
    nodes
}

fn key_strategy() -> impl Strategy<Value = String> {
    let fields = prop::sample::select(vec![
        "kind",
        "name",
        "state",
        "result",
        "group",
        "parent",
        "treeid",
        "owner",
        "created",
        "holdoff",
        "retry_counter",
        "processed_by_kcidb_bridge",
        "path",
        "data.arch",
        "data.n",
        "data.flag",
        "data.tag",
        "data.kernel_revision.tree",
        "data.kernel_revision.commit",
        "data.missing",
        "artifacts.log",
        "jobfilter",
    ]);
    let ops = prop::sample::select(vec![
        "", "", "__ne", "__lt", "__lte", "__gt", "__gte", "__re", "__in", "__nin", "__int",
    ]);
    (fields, ops).prop_map(|(f, o)| format!("{f}{o}"))
}

fn value_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "null",
        "true",
        "false",
        "0",
        "1",
        "2",
        "5",
        "x86_64",
        "arm64",
        "riscv",
        "arm64,x86_64",
        "mainline",
        "next,stable",
        "done",
        "running",
        "pass",
        "fail,skip",
        "checkout",
        "p1",
        "kbuild-gcc-12-1",
        "^base",
        "gcc-1[0-9]",
        "t1",
        "t1,t3",
        "g1",
        "tree0",
        "alice",
        "bob",
        "2024-06-05",
        "2024-06-10T12:00:00",
        "job",
        "test",
        "0000000000000000000000000000000000000003",
        "a",
        "",
    ])
    .prop_map(str::to_string)
}

fn filter_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((key_strategy(), value_strategy()), 1..3)
}

async fn load(store: &dyn Store, nodes: &[Node]) {
    for n in nodes {
        store
            .insert_node(n, None)
            .await
            .expect("insert corpus node");
    }
}

/// Positions in the corpus, for short failure messages.
fn positions(corpus: &[Node], ids: &[ObjectId]) -> Vec<usize> {
    ids.iter()
        .filter_map(|id| corpus.iter().position(|n| n.id == *id))
        .collect()
}

async fn ids(store: &dyn Store, f: &NodeFilter) -> Vec<ObjectId> {
    let found = store.find_nodes(f, Page::default()).await.expect("query");
    let count = store.count_nodes(f).await.expect("count");
    assert_eq!(
        count as usize,
        found.len(),
        "count disagrees with find on {}",
        store.backend()
    );
    found.into_iter().map(|n| n.id).collect()
}

#[test]
fn random_filters_agree_across_backends_and_reference() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let nodes = corpus();
    let (sqlite_db, pg_db) = rt.block_on(async {
        let pg = match pg_server_url() {
            Some(base) => Some(TestDb::postgres(&base).await),
            None if in_ci() => {
                panic!("under CI the PostgreSQL side of this test must run: set KERNELCI_TEST_PG")
            }
            None => {
                eprintln!("KERNELCI_TEST_PG unset: comparing SQLite with the reference only");
                None
            }
        };
        (TestDb::sqlite(), pg)
    });
    let (sqlite, pg) = rt.block_on(async {
        let s = kernelci_store::open(&sqlite_db.url).await.expect("sqlite");
        load(&*s, &nodes).await;
        let p = match &pg_db {
            Some(db) => {
                let p = kernelci_store::open(&db.url).await.expect("postgres");
                load(&*p, &nodes).await;
                Some(p)
            }
            None => None,
        };
        (s, p)
    });
    let docs: Vec<serde_json::Value> = nodes
        .iter()
        .map(|n| serde_json::to_value(n).expect("json"))
        .collect();
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let nonempty = std::cell::Cell::new(0usize);
    runner
        .run(&filter_strategy(), |pairs| {
            let Ok(filter) = NodeFilter::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            else {
                return Ok(()); // a 400 for every backend alike
            };
            let expected: Vec<ObjectId> = nodes
                .iter()
                .zip(&docs)
                .filter(|(n, d)| filter.matches_doc(n, d))
                .map(|(n, _)| n.id)
                .collect();
            if !expected.is_empty() {
                nonempty.set(nonempty.get() + 1);
            }
            let got = rt.block_on(ids(&*sqlite, &filter));
            prop_assert_eq!(
                positions(&nodes, &got),
                positions(&nodes, &expected),
                "sqlite vs reference for {:?}",
                pairs
            );
            if let Some(pg) = &pg {
                let got = rt.block_on(ids(&**pg, &filter));
                prop_assert_eq!(
                    positions(&nodes, &got),
                    positions(&nodes, &expected),
                    "postgres vs reference for {:?}",
                    pairs
                );
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        nonempty.get() > 20,
        "the generator should produce matching filters often (got {})",
        nonempty.get()
    );
    drop((sqlite, pg));
}
