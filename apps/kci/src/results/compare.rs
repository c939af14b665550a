//! `kci results compare`: kci-dev's regression report between two checkouts of a branch
//! (BASE and HEAD, default the branch's latest two): the builds, boots and tests of each,
//! paired by identity (origin, platform, arch, compiler, config, path; duplicates by
//! occurrence), classified as kci-dev's `RegressionReport` does, with the tree report's
//! history when there is one. Exit 1 on a regression, 2 when the comparison is incomplete.
//!
//! The dashboard's own `tree/{tree}/{branch}/compare` is not used: it needs the tree name,
//! keys tests without origin and compiler, keeps one result per key and skips changes
//! such as ERROR -> ERROR, so it cannot give kci-dev's categories.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::checkout_args::{Checkout, latest_commit};
use super::client::{Dash, Fail, enc, list, q, text};
use super::view::outln;
use super::view::{self, plain, render};

/// kci-dev's categories, in its order.
const CATEGORIES: [&str; 6] = [
    "regression",
    "fixed",
    "unstable",
    "persistent_fail",
    "new",
    "missing",
];

/// The options of `compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// KCIDB origin.
    #[arg(long, default_value = "maestro")]
    origin: String,
    /// Git URL of the tree.
    #[arg(long)]
    giturl: String,
    /// Branch.
    #[arg(long)]
    branch: String,
    /// Compare the latest two checkouts (the default; kept for kci-dev's scripts).
    #[arg(long)]
    latest: bool,
    /// BASE and HEAD commits (none: the branch's latest two).
    #[arg(num_args = 0..=2)]
    commits: Vec<String>,
    /// `human` or `json` (kci-dev's report, keys sorted).
    #[arg(long = "format", value_parser = ["human", "json"], default_value = "human")]
    format: String,
    /// The same as --format json.
    #[arg(long)]
    json: bool,
    /// Look up the known issues of each regression and persistent failure.
    #[arg(long)]
    include_issues: bool,
}

/// A result's identity (kci-dev's `result_identity`, without `kind`).
fn identity(item: &Value, kind: &str) -> Vec<String> {
    let value = |names: &[&str], default: &str| -> String {
        names
            .iter()
            .find_map(|n| {
                item.get(*n)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or(default)
            .to_string()
    };
    let platform = item["environment_misc"]["platform"]
        .as_str()
        .unwrap_or("unknown");
    vec![
        value(&["origin"], "unknown"),
        value(&["platform", "hardware"], platform),
        value(&["architecture", "arch"], "unknown"),
        value(&["compiler"], "unknown"),
        value(&["config", "config_name"], "unknown"),
        value(
            &["path", "test_path"],
            if kind == "build" { "build" } else { "unknown" },
        ),
    ]
}

fn identity_json(key: &[String], kind: &str) -> Value {
    json!({
        "kind": kind, "origin": key[0], "platform": key[1], "architecture": key[2],
        "compiler": key[3], "config": key[4], "path": key[5],
    })
}

fn upper_status(item: &Value) -> String {
    item["status"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("UNKNOWN")
        .to_ascii_uppercase()
}

/// The keys of the tree report's `possible_regressions`, `fixed_regressions` and
/// `unstable_tests`.
fn history_keys(report: &Value, category: &str) -> BTreeSet<Vec<String>> {
    let mut keys = BTreeSet::new();
    let origin = report["origin"].as_str().unwrap_or("unknown");
    for (platform, configs) in report[category].as_object().into_iter().flatten() {
        for (config, archs) in configs.as_object().into_iter().flatten() {
            for (arch_compiler, paths) in archs.as_object().into_iter().flatten() {
                let (arch, compiler) = arch_compiler.split_once('/').unwrap_or((arch_compiler, ""));
                for path in paths.as_object().into_iter().flatten().map(|p| p.0) {
                    let item = json!({"origin": origin, "platform": platform, "config": config,
                        "architecture": arch, "compiler": compiler, "path": path});
                    keys.insert(identity(&item, "test"));
                }
            }
        }
    }
    keys
}

/// kci-dev's `_classify`.
fn classify(
    before: Option<&Value>,
    after: Option<&Value>,
    key: &[String],
    history: &BTreeMap<&str, BTreeSet<Vec<String>>>,
) -> Option<&'static str> {
    let (Some(before), Some(after)) = (before, after) else {
        return Some(if before.is_none() { "new" } else { "missing" });
    };
    let (old, new) = (upper_status(before), upper_status(after));
    let failed = |s: &str| s == "FAIL" || s == "ERROR";
    let has = |c: &str| history.get(c).is_some_and(|k| k.contains(key));
    if has("unstable") {
        Some("unstable")
    } else if failed(&new) && (has("regression") || old == "PASS") {
        Some("regression")
    } else if new == "PASS" && (has("fixed") || failed(&old)) {
        Some("fixed")
    } else if failed(&old) && failed(&new) {
        Some("persistent_fail")
    } else if old != new {
        Some("unstable")
    } else {
        None
    }
}

/// The builds, boots and tests of a commit.
fn results(dash: &Dash, c: &Checkout) -> Result<BTreeMap<&'static str, Vec<Value>>, Fail> {
    let mut out = BTreeMap::new();
    for kind in ["builds", "boots", "tests"] {
        let reply = dash.get(&c.path(kind), &c.query())?;
        out.insert(kind, list(&reply, kind).to_vec());
    }
    Ok(out)
}

/// The report (kci-dev's `RegressionReport.to_dict`, unsorted).
fn report(
    base: &BTreeMap<&str, Vec<Value>>,
    head: &BTreeMap<&str, Vec<Value>>,
    history: &BTreeMap<&str, BTreeSet<Vec<String>>>,
) -> Vec<Value> {
    let mut items = Vec::new();
    for (kind, plural) in [("build", "builds"), ("boot", "boots"), ("test", "tests")] {
        let group = |side: &BTreeMap<&str, Vec<Value>>| {
            let mut m: BTreeMap<Vec<String>, Vec<Value>> = BTreeMap::new();
            for item in side.get(plural).into_iter().flatten() {
                m.entry(identity(item, kind))
                    .or_default()
                    .push(item.clone());
            }
            for v in m.values_mut() {
                v.sort_by_key(|i| (upper_status(i), text(i, "id")));
            }
            m
        };
        let (old, new) = (group(base), group(head));
        let keys: BTreeSet<&Vec<String>> = old.keys().chain(new.keys()).collect();
        for key in keys {
            let (o, n) = (
                old.get(key).map_or(&[][..], Vec::as_slice),
                new.get(key).map_or(&[][..], Vec::as_slice),
            );
            for occurrence in 0..o.len().max(n.len()) {
                let (before, after) = (o.get(occurrence), n.get(occurrence));
                let Some(category) = classify(before, after, key, history) else {
                    continue;
                };
                items.push(json!({
                    "category": category,
                    "identity": identity_json(key, kind),
                    "occurrence": occurrence,
                    "base_status": before.map(|b| b["status"].clone()),
                    "head_status": after.map(|a| a["status"].clone()),
                    "base_id": before.map(|b| b["id"].clone()),
                    "head_id": after.map(|a| a["id"].clone()),
                    "known_issues": [],
                }));
            }
        }
    }
    items
}

/// The value with every object's keys sorted (kci-dev prints with `sort_keys=True`).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn compare(dash: &Dash, a: &CompareArgs) -> Result<Value, Fail> {
    let checkout = |commit: String| Checkout {
        origin: a.origin.clone(),
        giturl: a.giturl.clone(),
        branch: a.branch.clone(),
        commit,
    };
    let (base, head) = match a.commits.as_slice() {
        [b, h] => (b.clone(), h.clone()),
        [] => {
            let latest = latest_commit(dash, &a.origin, &a.giturl, &a.branch, None)?;
            let c = checkout(latest);
            let reply = dash.get(&c.path("commits"), &c.query())?;
            let commits = list(&reply, "commits");
            if commits.len() < 2 {
                return Err(Fail::input("fewer than two checkouts are available"));
            }
            (
                text(&commits[1], "git_commit_hash"),
                text(&commits[0], "git_commit_hash"),
            )
        }
        _ => {
            return Err(Fail::input(
                "provide either zero commits or exactly BASE and HEAD",
            ));
        }
    };
    let base_results = results(dash, &checkout(base.clone()))?;
    let head_results = results(dash, &checkout(head.clone()))?;
    let mut incomplete = false;
    let tree_report = dash.get(
        "tree-report/",
        &q(&[
            ("origin", &a.origin),
            ("git_branch", &a.branch),
            ("git_url", &a.giturl),
        ]),
    );
    let history: BTreeMap<&str, BTreeSet<Vec<String>>> = match &tree_report {
        Ok(r) => [
            ("regression", "possible_regressions"),
            ("fixed", "fixed_regressions"),
            ("unstable", "unstable_tests"),
        ]
        .into_iter()
        .map(|(c, key)| (c, history_keys(r, key)))
        .collect(),
        // No checkout in the report's age window: no history, nothing missing.
        Err(f) if f.message.starts_with("not found") => BTreeMap::new(),
        Err(f) if f.code == 3 => {
            return Err(Fail {
                code: 3,
                message: f.message.clone(),
            });
        }
        Err(_) => {
            incomplete = true;
            BTreeMap::new()
        }
    };
    let mut items = report(&base_results, &head_results, &history);
    if a.include_issues {
        for item in &mut items {
            if !matches!(
                item["category"].as_str(),
                Some("regression" | "persistent_fail")
            ) {
                continue;
            }
            let Some(id) = item["head_id"].as_str().map(String::from) else {
                continue;
            };
            let route = if item["identity"]["kind"] == "build" {
                "build"
            } else {
                "test"
            };
            match dash.get(&format!("{route}/{}/issues", enc(&id)), &[]) {
                Ok(v) => {
                    let ids: Vec<Value> = list(&v, "").iter().map(|i| i["id"].clone()).collect();
                    item["known_issues"] = Value::Array(ids);
                }
                Err(f) if f.message.to_lowercase().contains("no issues") => {}
                Err(f) if f.code == 3 => return Err(f),
                Err(_) => incomplete = true,
            }
        }
    }
    let mut counts = Map::new();
    for c in CATEGORIES {
        let n = items.iter().filter(|i| i["category"] == c).count();
        counts.insert(c.into(), json!(n));
    }
    Ok(json!({
        "base": base, "head": head, "counts": counts, "incomplete": incomplete, "items": items,
    }))
}

/// Runs `compare`.
pub fn run(dash: &Dash, a: &CompareArgs) -> Result<u8, Fail> {
    let json_out = a.json || a.format == "json";
    let r = match compare(dash, a) {
        Ok(r) => r,
        Err(f) if f.code == 2 && json_out => {
            view::print_json(&json!({"error": f.message, "incomplete": true}));
            return Ok(2);
        }
        Err(f) if f.code == 2 => {
            return Err(Fail::input(format!("incomplete comparison: {}", f.message)));
        }
        Err(f) => return Err(f),
    };
    if json_out {
        view::print_json(&sorted(r.clone()));
    } else {
        outln!("Compared {} -> {}", text(&r, "base"), text(&r, "head"));
        for c in CATEGORIES {
            outln!("  {c}: {}", r["counts"][c]);
        }
        let items = list(&r["items"], "");
        if !items.is_empty() {
            let rows: Vec<Vec<view::Cell>> = items
                .iter()
                .map(|i| {
                    let id = &i["identity"];
                    let head = i["head_status"].as_str().unwrap_or("-");
                    let link_id = i["head_id"]
                        .as_str()
                        .or(i["base_id"].as_str())
                        .unwrap_or("-");
                    let page = if id["kind"] == "build" {
                        "build"
                    } else {
                        "test"
                    };
                    vec![
                        plain(text(i, "category")),
                        plain(text(id, "kind")),
                        plain(text(id, "path")),
                        plain(text(id, "platform")),
                        plain(text(id, "config")),
                        plain(format!(
                            "{}/{}",
                            text(id, "architecture"),
                            text(id, "compiler")
                        )),
                        plain(
                            dash.link(page, link_id)
                                .unwrap_or_else(|| link_id.to_string()),
                        ),
                        plain(i["base_status"].as_str().unwrap_or("-")),
                        view::status(head),
                    ]
                })
                .collect();
            outln!();
            view::write_out(&render(
                &dash.paint,
                &[
                    "CATEGORY",
                    "KIND",
                    "PATH",
                    "PLATFORM",
                    "CONFIG",
                    "ARCH/COMPILER",
                    "ID",
                    "BASE",
                    "HEAD",
                ],
                &rows,
            ));
        }
    }
    if r["incomplete"] == true {
        return Ok(2);
    }
    if r["counts"]["regression"].as_u64().unwrap_or(0) > 0 {
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_kci_dev() {
        let h = BTreeMap::new();
        let k = vec![String::new()];
        let s = |x: &str| json!({"status": x});
        let c = |a: &str, b: &str| classify(Some(&s(a)), Some(&s(b)), &k, &h);
        assert_eq!(c("PASS", "FAIL"), Some("regression"));
        assert_eq!(c("PASS", "ERROR"), Some("regression"));
        assert_eq!(c("ERROR", "PASS"), Some("fixed"));
        assert_eq!(c("ERROR", "ERROR"), Some("persistent_fail"));
        assert_eq!(c("PASS", "SKIP"), Some("unstable"));
        assert_eq!(c("PASS", "PASS"), None);
        assert_eq!(classify(None, Some(&s("PASS")), &k, &h), Some("new"));
        assert_eq!(classify(Some(&s("PASS")), None, &k, &h), Some("missing"));
        let b = json!({"origin": "o", "config_name": "defconfig", "architecture": "x86_64",
            "compiler": "", "status": "PASS"});
        assert_eq!(
            identity(&b, "build"),
            ["o", "unknown", "x86_64", "unknown", "defconfig", "build"]
        );
    }
}
