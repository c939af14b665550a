//! Shared helpers: the `small/` KCIDB fixtures (loaded into a fresh database and read
//! independently with serde_json) and the dashboard router on a real port.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kernelci_dashboard::dashboard_router;
use kernelci_kcidb::db::KcidbDb;
use kernelci_tests::TestDb;
use serde_json::{Map, Value};

/// `kcidb/small` (see [`kernelci_tests::fixture_dir`] for the skip rule).
pub fn small_fixtures() -> Option<PathBuf> {
    kernelci_tests::fixture_dir("kcidb/small")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The fixture objects merged by id (a later submission's members win), read with
/// serde_json only: the expected answers are computed from these.
#[derive(Default)]
pub struct Fixture {
    pub checkouts: BTreeMap<String, Map<String, Value>>,
    pub builds: BTreeMap<String, Map<String, Value>>,
    pub tests: BTreeMap<String, Map<String, Value>>,
    /// Keyed by (id, version).
    pub issues: BTreeMap<(String, u64), Map<String, Value>>,
    pub incidents: BTreeMap<String, Map<String, Value>>,
}

impl Fixture {
    pub fn read(dir: &Path) -> Fixture {
        let mut f = Fixture::default();
        for path in json_files(dir) {
            let doc: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("fixture JSON");
            let list = |name: &str| doc[name].as_array().cloned().unwrap_or_default();
            for (name, map) in [
                ("checkouts", &mut f.checkouts),
                ("builds", &mut f.builds),
                ("tests", &mut f.tests),
                ("incidents", &mut f.incidents),
            ] {
                for o in list(name) {
                    let o = o.as_object().expect("object").clone();
                    let id = o["id"].as_str().expect("id").to_string();
                    map.entry(id).or_default().extend(o);
                }
            }
            for o in list("issues") {
                let o = o.as_object().expect("object").clone();
                let key = (
                    o["id"].as_str().expect("id").to_string(),
                    o["version"].as_u64().expect("version"),
                );
                f.issues.entry(key).or_default().extend(o);
            }
        }
        f
    }

    /// The checkout id of a test.
    pub fn checkout_of_test(&self, t: &Map<String, Value>) -> Option<String> {
        let b = self.builds.get(t["build_id"].as_str()?)?;
        b["checkout_id"].as_str().map(String::from)
    }

    /// Status counts (`NULL` for none) of builds of a checkout.
    pub fn build_counts(&self, checkout: &str) -> HashMap<String, u64> {
        count(
            self.builds
                .values()
                .filter(|b| b["checkout_id"] == checkout),
        )
    }

    /// Status counts of a checkout's boots (`boots`) or other tests.
    pub fn test_counts(&self, checkout: &str, boots: bool) -> HashMap<String, u64> {
        count(self.tests.values().filter(|t| {
            self.checkout_of_test(t).as_deref() == Some(checkout) && is_boot(t) == boots
        }))
    }
}

/// Whether a test object is a boot.
pub fn is_boot(t: &Map<String, Value>) -> bool {
    t.get("path")
        .and_then(Value::as_str)
        .is_some_and(|p| p == "boot" || p.starts_with("boot."))
}

fn count<'a>(objects: impl Iterator<Item = &'a Map<String, Value>>) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for o in objects {
        let s = o
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("NULL")
            .to_string();
        *out.entry(s).or_default() += 1;
    }
    out
}

/// Days from the oldest fixture start time until now, plus a margin: an
/// `interval_in_days` that covers every checkout.
pub fn days_covering(f: &Fixture) -> i64 {
    let oldest = f
        .checkouts
        .values()
        .filter_map(|c| c["start_time"].as_str())
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .min()
        .expect("a start time");
    (chrono::Utc::now() - oldest.with_timezone(&chrono::Utc)).num_days() + 2
}

/// The dashboard on a real port over a fresh database with `small/` loaded.
pub struct Server {
    pub base: String,
    pub db: KcidbDb,
    task: tokio::task::JoinHandle<()>,
    _testdb: TestDb,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(testdb: TestDb, fixtures: &Path) -> Server {
        let db = KcidbDb::open(&testdb.url).await.expect("open db");
        for path in json_files(fixtures) {
            let sub = kernelci_kcidb::load(&std::fs::read(&path).expect("read")).expect("valid");
            db.load(sub).await.expect("load");
        }
        let app = dashboard_router(db.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server {
            base: format!("http://{addr}"),
            db,
            task,
            _testdb: testdb,
        }
    }

    /// GET `/api/{path}`: (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::get(format!("{}/api/{path}", self.base))
            .await
            .expect("request");
        let code = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"));
        (code, body)
    }

    /// GET that must answer 200.
    pub async fn ok(&self, path: &str) -> Value {
        let (code, body) = self.get(path).await;
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }
}

/// A query string component.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
