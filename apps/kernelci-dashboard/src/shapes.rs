//! Rows as upstream's JSON items (the fields `kci-dev results` and the dashboard read).

use kernelci_kcidb::query::{BuildRow, StatusCounts, TestRow};
use kernelci_kcidb::{Checkout, Issue, Status};
use serde_json::{Map, Value, json};

/// A status as upstream writes it: `"NULL"` for none (kci-dev upper-cases it).
pub fn status(s: Option<Status>) -> Value {
    Value::String(s.map_or("NULL", status_name).to_string())
}

/// Status counts with upstream's upper-case keys (`StatusCount`).
pub fn counts_upper(c: &StatusCounts) -> Value {
    let mut m = Map::new();
    for (name, n) in c.pairs() {
        m.insert(name.into(), json!(n));
    }
    Value::Object(m)
}

/// Status counts with lower-case keys (`TestStatusCount` by alias).
pub fn counts_lower(c: &StatusCounts) -> Value {
    let mut m = Map::new();
    for (name, n) in c.pairs() {
        m.insert(name.to_ascii_lowercase(), json!(n));
    }
    Value::Object(m)
}

/// Status counts as `pass_count`... (the tree report's field names).
pub fn counts_suffixed(c: &StatusCounts) -> Value {
    let mut m = Map::new();
    for (name, n) in c.pairs() {
        m.insert(format!("{}_count", name.to_ascii_lowercase()), json!(n));
    }
    Value::Object(m)
}

/// PASS / FAIL / INCONCLUSIVE (upstream's `StatusCountV2`).
pub fn counts_v2(c: &StatusCounts) -> Value {
    json!({"PASS": c.pass, "FAIL": c.fail, "INCONCLUSIVE": c.inconclusive()})
}

fn opt<T: serde::Serialize>(v: &Option<T>) -> Value {
    v.as_ref().map_or(Value::Null, |x| {
        serde_json::to_value(x).unwrap_or(Value::Null)
    })
}

fn misc_object(m: &Option<Map<String, Value>>) -> Value {
    Value::Object(m.clone().unwrap_or_default())
}

/// The checkout fields a build or test item carries.
fn checkout_fields(m: &mut Map<String, Value>, c: Option<&Checkout>) {
    m.insert(
        "tree_name".into(),
        c.map_or(Value::Null, |c| opt(&c.tree_name)),
    );
    m.insert(
        "git_repository_url".into(),
        c.map_or(Value::Null, |c| opt(&c.git_repository_url)),
    );
    m.insert(
        "git_repository_branch".into(),
        c.map_or(Value::Null, |c| opt(&c.git_repository_branch)),
    );
    m.insert(
        "git_commit_hash".into(),
        c.map_or(Value::Null, |c| opt(&c.git_commit_hash)),
    );
    m.insert(
        "git_commit_name".into(),
        c.map_or(Value::Null, |c| opt(&c.git_commit_name)),
    );
    m.insert(
        "git_commit_tags".into(),
        json!(
            c.and_then(|c| c.git_commit_tags.clone())
                .unwrap_or_default()
        ),
    );
}

/// A build in a list (`BuildHistoryItem` plus status, origin and tree fields).
pub fn build_item(row: &BuildRow) -> Value {
    let b = &row.build;
    let mut m = Map::new();
    m.insert("id".into(), json!(b.id));
    m.insert("origin".into(), json!(b.origin));
    m.insert("architecture".into(), opt(&b.architecture));
    m.insert("config_name".into(), opt(&b.config_name));
    m.insert("compiler".into(), opt(&b.compiler));
    m.insert("status".into(), status(b.status));
    m.insert("duration".into(), opt(&b.duration));
    m.insert("start_time".into(), opt(&b.start_time));
    m.insert("config_url".into(), opt(&b.config_url));
    m.insert("log_url".into(), opt(&b.log_url));
    m.insert("misc".into(), misc_object(&b.misc));
    m.insert(
        "lab".into(),
        b.misc
            .as_ref()
            .and_then(|x| x.get("lab"))
            .cloned()
            .unwrap_or(Value::Null),
    );
    checkout_fields(&mut m, row.checkout.as_deref());
    Value::Object(m)
}

/// One build with everything (`BuildDetailsResponse`).
pub fn build_details(row: &BuildRow) -> Value {
    let b = &row.build;
    let mut v = build_item(row);
    if let Value::Object(m) = &mut v {
        m.insert("field_timestamp".into(), opt(&b.timestamp));
        m.insert("checkout_id".into(), json!(b.checkout_id));
        m.insert("command".into(), opt(&b.command));
        m.insert("comment".into(), opt(&b.comment));
        m.insert("log_excerpt".into(), opt(&b.log_excerpt));
        m.insert("input_files".into(), opt(&b.input_files));
        m.insert("output_files".into(), opt(&b.output_files));
    }
    v
}

/// `environment.misc` with `platform` always present (kci-dev reads it unconditionally).
fn environment_misc(row: &TestRow) -> Value {
    let mut m = row
        .test
        .environment
        .as_ref()
        .and_then(|e| e.misc.clone())
        .unwrap_or_default();
    m.entry("platform").or_insert(Value::Null);
    Value::Object(m)
}

fn compatibles(row: &TestRow) -> Value {
    json!(
        row.test
            .environment
            .as_ref()
            .and_then(|e| e.compatible.clone())
            .unwrap_or_default()
    )
}

/// A boot or test in a list (`TestHistoryItem` plus build and tree fields).
pub fn test_item(row: &TestRow) -> Value {
    let t = &row.test;
    let build = row.build.as_ref();
    let mut m = Map::new();
    m.insert("id".into(), json!(t.id));
    m.insert("build_id".into(), json!(t.build_id));
    m.insert("origin".into(), json!(t.origin));
    m.insert("path".into(), opt(&t.path));
    m.insert("status".into(), status(t.status));
    m.insert("duration".into(), opt(&t.duration));
    m.insert("start_time".into(), opt(&t.start_time));
    m.insert("log_url".into(), opt(&t.log_url));
    m.insert("environment_compatible".into(), compatibles(row));
    m.insert("environment_misc".into(), environment_misc(row));
    m.insert("misc".into(), misc_object(&t.misc));
    m.insert(
        "lab".into(),
        t.misc
            .as_ref()
            .and_then(|x| x.get("lab"))
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert(
        "config".into(),
        build.map_or(Value::Null, |b| opt(&b.config_name)),
    );
    m.insert(
        "architecture".into(),
        build.map_or(Value::Null, |b| opt(&b.architecture)),
    );
    m.insert(
        "compiler".into(),
        build.map_or(Value::Null, |b| opt(&b.compiler)),
    );
    checkout_fields(&mut m, row.checkout.as_deref());
    Value::Object(m)
}

/// [`test_item`] serialized straight from the row, without building a [`Value`] (the same
/// members in the same order, the same bytes): what the long lists are made of.
#[derive(serde::Serialize)]
pub struct TestItem<'a> {
    id: &'a str,
    build_id: &'a str,
    origin: &'a str,
    path: Option<&'a str>,
    status: &'static str,
    duration: Option<f64>,
    start_time: Option<&'a str>,
    log_url: Option<&'a str>,
    environment_compatible: &'a [String],
    environment_misc: EnvironmentMisc<'a>,
    misc: MiscObject<'a>,
    lab: Option<&'a Value>,
    config: Option<&'a str>,
    architecture: Option<&'a str>,
    compiler: Option<&'a str>,
    tree_name: Option<&'a str>,
    git_repository_url: Option<&'a str>,
    git_repository_branch: Option<&'a str>,
    git_commit_hash: Option<&'a str>,
    git_commit_name: Option<&'a str>,
    git_commit_tags: &'a [String],
}

/// `environment.misc` with `platform` (null) appended when absent, as [`test_item`] has it.
struct EnvironmentMisc<'a>(Option<&'a Map<String, Value>>);

impl serde::Serialize for EnvironmentMisc<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let has_platform = self.0.is_some_and(|m| m.contains_key("platform"));
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.into_iter().flatten() {
            map.serialize_entry(k, v)?;
        }
        if !has_platform {
            map.serialize_entry("platform", &Value::Null)?;
        }
        map.end()
    }
}

/// `misc`, `{}` when absent.
struct MiscObject<'a>(Option<&'a Map<String, Value>>);

impl serde::Serialize for MiscObject<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.into_iter().flatten() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'a> TestItem<'a> {
    /// The item of a row.
    pub fn of(row: &'a TestRow) -> TestItem<'a> {
        let t = &row.test;
        let build = row.build.as_ref();
        let env = t.environment.as_ref();
        let c = row.checkout.as_deref();
        let tags = c.and_then(|c| c.git_commit_tags.as_deref());
        TestItem {
            id: &t.id,
            build_id: &t.build_id,
            origin: &t.origin,
            path: t.path.as_deref(),
            status: t.status.map_or("NULL", status_name),
            duration: t.duration,
            start_time: t.start_time.as_deref(),
            log_url: t.log_url.as_deref(),
            environment_compatible: env.and_then(|e| e.compatible.as_deref()).unwrap_or(&[]),
            environment_misc: EnvironmentMisc(env.and_then(|e| e.misc.as_ref())),
            misc: MiscObject(t.misc.as_ref()),
            lab: t.misc.as_ref().and_then(|m| m.get("lab")),
            config: build.and_then(|b| b.config_name.as_deref()),
            architecture: build.and_then(|b| b.architecture.as_deref()),
            compiler: build.and_then(|b| b.compiler.as_deref()),
            tree_name: c.and_then(|c| c.tree_name.as_deref()),
            git_repository_url: c.and_then(|c| c.git_repository_url.as_deref()),
            git_repository_branch: c.and_then(|c| c.git_repository_branch.as_deref()),
            git_commit_hash: c.and_then(|c| c.git_commit_hash.as_deref()),
            git_commit_name: c.and_then(|c| c.git_commit_name.as_deref()),
            git_commit_tags: tags.unwrap_or(&[]),
        }
    }
}

/// A row that serializes as its [`TestItem`].
pub struct ListedTest(pub TestRow);

impl serde::Serialize for ListedTest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TestItem::of(&self.0).serialize(s)
    }
}

/// One test with everything (`TestDetailsResponse`).
pub fn test_details(row: &TestRow) -> Value {
    let t = &row.test;
    let mut v = test_item(row);
    if let Value::Object(m) = &mut v {
        m.insert("field_timestamp".into(), opt(&t.timestamp));
        m.insert(
            "config_name".into(),
            row.build
                .as_ref()
                .map_or(Value::Null, |b| opt(&b.config_name)),
        );
        m.insert("comment".into(), opt(&t.comment));
        m.insert("log_excerpt".into(), opt(&t.log_excerpt));
        m.insert("input_files".into(), opt(&t.input_files));
        m.insert("output_files".into(), opt(&t.output_files));
        m.insert("number".into(), opt(&t.number));
        m.insert(
            "environment_comment".into(),
            t.environment
                .as_ref()
                .map_or(Value::Null, |e| opt(&e.comment)),
        );
    }
    v
}

/// An issue's own fields (`IssueDetailsResponse` without `extra`).
pub fn issue(i: &Issue) -> Value {
    let culprit = |f: fn(&kernelci_kcidb::Culprit) -> Option<bool>| {
        i.culprit
            .as_ref()
            .and_then(f)
            .map_or(Value::Null, Value::Bool)
    };
    json!({
        "field_timestamp": i.timestamp,
        "id": i.id,
        "version": i.version,
        "origin": i.origin,
        "report_url": i.report_url,
        "report_subject": i.report_subject,
        "culprit_code": culprit(|c| c.code),
        "culprit_tool": culprit(|c| c.tool),
        "culprit_harness": culprit(|c| c.harness),
        "comment": i.comment,
        "misc": i.misc,
        "categories": i.categories,
    })
}

/// A checkout's listing fields.
pub fn checkout(c: &Checkout) -> Value {
    json!({
        "id": c.id,
        "origin": c.origin,
        "tree_name": c.tree_name,
        "git_repository_url": c.git_repository_url,
        "git_repository_branch": c.git_repository_branch,
        "git_commit_hash": c.git_commit_hash,
        "git_commit_name": c.git_commit_name,
        "git_commit_tags": c.git_commit_tags.clone().unwrap_or_default(),
        "patchset_hash": c.patchset_hash,
        "start_time": c.start_time,
        "origin_builds_finish_time": c.origin_builds_finish_time,
        "origin_tests_finish_time": c.origin_tests_finish_time,
    })
}

/// A status's upstream name.
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Error => "ERROR",
        Status::Miss => "MISS",
        Status::Skip => "SKIP",
        Status::Done => "DONE",
    }
}
