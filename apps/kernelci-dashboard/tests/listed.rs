//! The long lists read only the list fields (`query::results::tests_listed`, from the
//! columns) and serialize each row straight into the reply (`shapes::ListedTest`): the
//! bytes must be those of the full objects through `shapes::test_item`, and the summaries
//! the same, for every checkout of `small/` and filter, on SQLite or PostgreSQL.

mod common;

use common::{Server, small_fixtures};
use kernelci_dashboard::shapes::{ListedTest, test_item};
use kernelci_dashboard::summary;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::results::{self, Scope};
use kernelci_kcidb::query::{Filter, ResultKind};
use kernelci_tests::TestDb;
use serde_json::Value;

async fn checkout_ids(db: &KcidbDb) -> Vec<String> {
    let sql = "SELECT id FROM checkouts ORDER BY id";
    let rows: Vec<(String,)> = match db {
        KcidbDb::Sqlite(pool) => sqlx::query_as(sql)
            .fetch_all(pool)
            .await
            .expect("test step"),
        KcidbDb::Postgres(pool) => sqlx::query_as(sql)
            .fetch_all(pool)
            .await
            .expect("test step"),
    };
    rows.into_iter().map(|r| r.0).collect()
}

#[tokio::test]
async fn listed_tests_serialize_like_full_ones() {
    let Some(dir) = small_fixtures() else { return };
    let server = Server::start(TestDb::new().await, &dir).await;
    let db = &server.db;
    let ids = checkout_ids(db).await;
    assert!(!ids.is_empty());
    let mut scopes: Vec<Scope> = ids
        .iter()
        .map(|id| Scope::Checkouts(vec![id.clone()]))
        .collect();
    scopes.push(Scope::Checkouts(ids.clone()));
    let filter_sets: Vec<Vec<Filter>> = vec![
        Vec::new(),
        Filter::from_param("test.status", &["FAIL".to_string()])
            .expect("test step")
            .into_iter()
            .collect(),
        Filter::from_param("boot.status", &["PASS".to_string()])
            .expect("test step")
            .into_iter()
            .collect(),
    ];
    let mut compared = 0;
    for scope in &scopes {
        for kind in [None, Some(ResultKind::Boot), Some(ResultKind::Test)] {
            for filters in &filter_sets {
                let full = results::tests(db, scope, kind, filters)
                    .await
                    .expect("test step");
                let listed = results::tests_listed(db, scope, kind, filters)
                    .await
                    .expect("test step");
                let old: Vec<Value> = full.iter().map(test_item).collect();
                let old_summary = summary::tests(&full, &[]);
                let new_summary = summary::tests(&listed, &[]);
                assert_eq!(old_summary, new_summary, "{scope:?} {kind:?}");
                let new: Vec<ListedTest> = listed.into_iter().map(ListedTest).collect();
                assert_eq!(
                    String::from_utf8(serde_json::to_vec(&old).expect("test step"))
                        .expect("test step"),
                    String::from_utf8(serde_json::to_vec(&new).expect("test step"))
                        .expect("test step"),
                    "{scope:?} {kind:?} {filters:?}"
                );
                compared += old.len();
            }
        }
    }
    assert!(compared > 0);
}
