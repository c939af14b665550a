//! The `summary` payload of a set of builds, boots and tests (tree and hardware details):
//! status counts per origin, architecture, config, lab and platform, the known issues with
//! their incident counts, and the failures no issue explains.

use std::collections::{BTreeMap, BTreeSet};

use kernelci_kcidb::Status;
use kernelci_kcidb::query::{BuildRow, IssueLink, StatusCounts, TestRow};
use serde_json::{Map, Value, json};

use crate::shapes::counts_upper;

/// Counts per key, serialized with upper-case status keys.
#[derive(Default)]
struct Breakdown(BTreeMap<String, StatusCounts>);

impl Breakdown {
    fn add(&mut self, key: Option<&str>, status: Option<Status>) {
        if let Some(k) = key {
            self.0.entry(k.to_string()).or_default().add(status, 1);
        }
    }

    fn json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, c)| (k.clone(), counts_upper(c)))
                .collect(),
        )
    }
}

/// An issue's incident count, comment and report URL.
type IssueTally = (u64, Option<String>, Option<String>);

/// Issues with their incident counts, plus the FAIL results without any issue.
fn issues_json(links: &[IssueLink], failed: &BTreeSet<String>) -> (Value, u64, Vec<Value>) {
    let mut by_issue: BTreeMap<(String, u32), IssueTally> = BTreeMap::new();
    let mut explained: BTreeSet<&str> = BTreeSet::new();
    for l in links {
        let e = by_issue
            .entry((l.issue_id.clone(), l.issue_version))
            .or_insert((0, l.comment.clone(), l.report_url.clone()));
        e.0 += 1;
        explained.insert(&l.result_id);
    }
    let unknown = failed
        .iter()
        .filter(|id| !explained.contains(id.as_str()))
        .count() as u64;
    let list: Vec<Value> = by_issue
        .iter()
        .map(|((id, version), (n, comment, url))| {
            json!({"id": id, "version": version, "comment": comment, "report_url": url,
                   "incidents_info": {"incidentsCount": n}})
        })
        .collect();
    let keys: Vec<Value> = by_issue.keys().map(|(id, v)| json!([id, v])).collect();
    (Value::Array(list), unknown, keys)
}

/// The builds part of a summary, and the values its filters offer.
pub fn builds(rows: &[BuildRow], links: &[IssueLink]) -> (Value, Value) {
    let mut status = StatusCounts::default();
    let (mut origins, mut configs, mut labs) = (
        Breakdown::default(),
        Breakdown::default(),
        Breakdown::default(),
    );
    let mut archs: BTreeMap<String, (StatusCounts, BTreeSet<String>)> = BTreeMap::new();
    let mut failed = BTreeSet::new();
    for r in rows {
        let b = &r.build;
        status.add(b.status, 1);
        origins.add(Some(&b.origin), b.status);
        configs.add(b.config_name.as_deref(), b.status);
        labs.add(
            b.misc
                .as_ref()
                .and_then(|m| m.get("lab"))
                .and_then(Value::as_str),
            b.status,
        );
        if let Some(a) = &b.architecture {
            let e = archs.entry(a.clone()).or_default();
            e.0.add(b.status, 1);
            if let Some(c) = &b.compiler {
                e.1.insert(c.clone());
            }
        }
        if b.status == Some(Status::Fail) {
            failed.insert(b.id.clone());
        }
    }
    let (issues, unknown, keys) = issues_json(links, &failed);
    let architectures: Map<String, Value> = archs
        .iter()
        .map(|(a, (c, compilers))| {
            let mut v = counts_upper(c);
            if let Value::Object(m) = &mut v {
                m.insert("compilers".into(), json!(compilers));
            }
            (a.clone(), v)
        })
        .collect();
    let summary = json!({
        "status": counts_upper(&status),
        "origins": origins.json(),
        "architectures": architectures,
        "configs": configs.json(),
        "labs": labs.json(),
        "issues": issues,
        "unknown_issues": unknown,
    });
    let filters = json!({"issues": keys, "origins": origins.0.keys().collect::<Vec<_>>()});
    (summary, filters)
}

/// The boots or tests part of a summary, and the values its filters offer.
pub fn tests(rows: &[TestRow], links: &[IssueLink]) -> (Value, Value) {
    let mut status = StatusCounts::default();
    let (mut origins, mut configs, mut labs, mut platforms, mut compatibles) = (
        Breakdown::default(),
        Breakdown::default(),
        Breakdown::default(),
        Breakdown::default(),
        Breakdown::default(),
    );
    let mut archs: BTreeMap<(String, String), StatusCounts> = BTreeMap::new();
    let mut failed = BTreeSet::new();
    let mut failed_platforms = BTreeSet::new();
    let mut fail_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows {
        let t = &r.test;
        status.add(t.status, 1);
        origins.add(Some(&t.origin), t.status);
        let build = r.build.as_ref();
        configs.add(build.and_then(|b| b.config_name.as_deref()), t.status);
        labs.add(
            t.misc
                .as_ref()
                .and_then(|m| m.get("lab"))
                .and_then(Value::as_str),
            t.status,
        );
        platforms.add(r.platform(), t.status);
        for c in t
            .environment
            .as_ref()
            .and_then(|e| e.compatible.as_ref())
            .into_iter()
            .flatten()
        {
            compatibles.add(Some(c), t.status);
        }
        if let Some(b) = build {
            let key = (
                b.architecture.clone().unwrap_or_default(),
                b.compiler.clone().unwrap_or_default(),
            );
            archs.entry(key).or_default().add(t.status, 1);
        }
        if t.status == Some(Status::Fail) {
            failed.insert(t.id.clone());
            if let Some(p) = r.platform() {
                failed_platforms.insert(p.to_string());
            }
            if let Some(reason) = t
                .misc
                .as_ref()
                .and_then(|m| m.get("error_msg"))
                .and_then(Value::as_str)
            {
                *fail_reasons.entry(reason.to_string()).or_default() += 1;
            }
        }
    }
    let (issues, unknown, keys) = issues_json(links, &failed);
    let architectures: Vec<Value> = archs
        .iter()
        .map(|((arch, compiler), c)| {
            json!({"arch": arch, "compiler": compiler, "status": counts_upper(c)})
        })
        .collect();
    let summary = json!({
        "status": counts_upper(&status),
        "origins": origins.json(),
        "architectures": architectures,
        "configs": configs.json(),
        "labs": labs.json(),
        "issues": issues,
        "unknown_issues": unknown,
        "fail_reasons": fail_reasons,
        "failed_platforms": failed_platforms,
        "environment_compatible": compatibles.json(),
        "environment_misc": platforms.json(),
        "platforms": platforms.json(),
    });
    let filters = json!({
        "issues": keys,
        "origins": origins.0.keys().collect::<Vec<_>>(),
        "platforms": platforms.0.keys().collect::<Vec<_>>(),
    });
    (summary, filters)
}

/// The configs, architectures and compilers of a set of builds (the `all` filters).
pub fn global_filters(rows: &[BuildRow]) -> Value {
    let mut configs = BTreeSet::new();
    let mut archs = BTreeSet::new();
    let mut compilers = BTreeSet::new();
    for r in rows {
        configs.extend(r.build.config_name.clone());
        archs.extend(r.build.architecture.clone());
        compilers.extend(r.build.compiler.clone());
    }
    json!({"configs": configs, "architectures": archs, "compilers": compilers})
}
