//! `kci results issues` (the issues seen in a time window, `issue/`, or a checkout's,
//! from its summary; `--new`: those first seen in a checkout, from `issue/extras/`;
//! `--missing`: failed builds and boots without an issue) and `kci results issue --id`
//! (`issue/{id}` with its builds and tests).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::checkout_args::{Checkout, CheckoutArgs};
use super::client::{Dash, Fail, enc, list, q, text};
use super::lists::{print_builds, print_tests};
use super::view::outln;
use super::view::{self, plain, render};

/// The options of `issues`.
#[derive(Debug, clap::Args)]
pub struct IssuesArgs {
    #[command(flatten)]
    checkout: CheckoutArgs,
    /// The last N days (default 5); not with --start-date/--end-date.
    #[arg(long, conflicts_with_all = ["start_date", "end_date"])]
    days: Option<u32>,
    /// Window start: YYYY-MM-DD (UTC midnight) or ISO 8601 with a timezone.
    #[arg(long, requires = "end_date")]
    start_date: Option<String>,
    /// Window end: YYYY-MM-DD (UTC midnight) or ISO 8601 with a timezone.
    #[arg(long, requires = "start_date")]
    end_date: Option<String>,
    /// Only the issues first seen in the checkout (without one: in the latest checkout of
    /// every tree of the last --days).
    #[arg(long, conflicts_with_all = ["missing", "start_date", "end_date"])]
    new: bool,
    /// The failed or inconclusive builds and boots that no issue explains (of the checkout,
    /// or of the latest checkout of every tree of the last --days).
    #[arg(long, conflicts_with_all = ["start_date", "end_date"])]
    missing: bool,
    /// With --missing: only builds.
    #[arg(long, requires = "missing")]
    builds: bool,
    /// With --missing: only boots.
    #[arg(long, requires = "missing")]
    boots: bool,
}

/// The options of `issue`.
#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The issue id.
    #[arg(long = "id")]
    id: String,
    /// Only builds and tests of this KCIDB origin.
    #[arg(long)]
    origin: Option<String>,
    /// The issue version (default: the latest).
    #[arg(long)]
    version: Option<u32>,
    /// JSON output: `{"issue": ..., "builds": [...], "tests": [...]}`.
    #[arg(long)]
    json: bool,
}

fn parse_bound(s: &str, flag: &str) -> Result<DateTime<Utc>, Fail> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    DateTime::parse_from_rfc3339(&s.replace(' ', "T"))
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            Fail::input(format!(
                "{flag} {s:?}: expected YYYY-MM-DD or an ISO 8601 time with a timezone"
            ))
        })
}

fn secs(t: DateTime<Utc>) -> String {
    format!("{:.6}", t.timestamp_micros() as f64 / 1e6)
}

/// One table row per issue.
fn print_table(dash: &Dash, issues: &[Value], first_seen: impl Fn(&Value) -> String) {
    let head = if dash.link("issue", "").is_some() {
        "LINK"
    } else {
        "ID"
    };
    let rows: Vec<Vec<view::Cell>> = issues
        .iter()
        .map(|i| {
            let id = text(i, "id");
            vec![
                plain(dash.link("issue", &id).unwrap_or(id)),
                plain(text(i, "version")),
                plain(text(i, "origin")),
                plain(first_seen(i)),
                plain(text(i, "comment")),
            ]
        })
        .collect();
    view::write_out(&render(
        &dash.paint,
        &[head, "VERSION", "ORIGIN", "FIRST SEEN", "COMMENT"],
        &rows,
    ));
}

fn tree_branch(incident: &Value) -> String {
    if incident.is_null() {
        return "-".into();
    }
    format!(
        "{}/{}",
        text(incident, "tree_name"),
        text(incident, "git_repository_branch")
    )
}

/// `issues`.
pub fn list_issues(dash: &Dash, a: &IssuesArgs) -> Result<u8, Fail> {
    let c = &a.checkout;
    let for_checkout = c.giturl.is_some()
        || c.branch.is_some()
        || c.commit.is_some()
        || c.latest
        || c.git_folder.is_some();
    if for_checkout && (a.days.is_some() || a.start_date.is_some()) {
        return Err(Fail::input(
            "--days, --start-date and --end-date only apply to the issue listing, \
             not to a checkout's issues",
        ));
    }
    if a.new || a.missing {
        let targets = if for_checkout {
            let checkout = c.resolve(dash)?;
            let tree = match &c.tree {
                Some(t) => Some(t.clone()),
                None => tree_name(dash, &checkout)?,
            };
            vec![(checkout, tree)]
        } else {
            window_checkouts(dash, &c.origin, a.days.unwrap_or(5))?
        };
        if a.new {
            return new_issues(dash, c, &targets);
        }
        return missing(dash, a, &targets);
    }
    if for_checkout {
        return checkout_issues(dash, c);
    }
    let (since, until) = match (&a.start_date, &a.end_date) {
        (Some(s), Some(e)) => (
            parse_bound(s, "--start-date")?,
            parse_bound(e, "--end-date")?,
        ),
        _ => {
            let now = Utc::now();
            (now - Duration::days(i64::from(a.days.unwrap_or(5))), now)
        }
    };
    if since > until {
        return Err(Fail::input("the start date is after the end date"));
    }
    let reply = dash.get(
        "issue/",
        &q(&[
            ("startTimestampInSeconds", &secs(since)),
            ("endTimestampInSeconds", &secs(until)),
            ("filter_origin", &c.origin),
        ]),
    )?;
    let extras = reply.get("extras").cloned().unwrap_or(json!({}));
    let issues = list(&reply, "issues");
    if c.json {
        let out: Vec<Value> = issues
            .iter()
            .map(|i| {
                let mut v = i.clone();
                let id = text(i, "id");
                if let (Value::Object(m), Some(e)) = (&mut v, extras.get(&id)) {
                    let mut extra = Map::new();
                    extra.insert(id, e.clone());
                    m.insert("extra".into(), Value::Object(extra));
                }
                v
            })
            .collect();
        view::print_json(&Value::Array(out));
        return Ok(0);
    }
    print_table(dash, issues, |i| tree_branch(&extras[text(i, "id")]));
    Ok(0)
}

/// The tree name of a checkout's branch, from the tree listing of the last 7 days, then of
/// all time (kci-dev's `get_tree_name`: 7 days only).
fn tree_name(dash: &Dash, checkout: &Checkout) -> Result<Option<String>, Fail> {
    for days in ["7", "36500"] {
        let trees = dash.get(
            "tree",
            &q(&[("origin", &checkout.origin), ("interval_in_days", days)]),
        )?;
        let found = list(&trees, "trees").iter().find(|t| {
            t["git_repository_url"].as_str() == Some(checkout.giturl.as_str())
                && t["git_repository_branch"].as_str() == Some(checkout.branch.as_str())
        });
        if let Some(t) = found {
            return Ok(t["tree_name"].as_str().map(String::from));
        }
    }
    Ok(None)
}

/// The latest checkout of every tree of the last `days` (kci-dev's `trees`), with its tree
/// name.
fn window_checkouts(
    dash: &Dash,
    origin: &str,
    days: u32,
) -> Result<Vec<(Checkout, Option<String>)>, Fail> {
    let trees = dash.get(
        "tree",
        &q(&[("origin", origin), ("interval_in_days", &days.to_string())]),
    )?;
    Ok(list(&trees, "trees")
        .iter()
        .map(|t| {
            let checkout = Checkout {
                origin: origin.to_string(),
                giturl: text(t, "git_repository_url"),
                branch: text(t, "git_repository_branch"),
                commit: text(t, "git_commit_hash"),
            };
            (checkout, t["tree_name"].as_str().map(String::from))
        })
        .collect())
}

/// The distinct (id, version) of the issues reported on a checkout's builds, boots and
/// tests (its summary).
fn issue_keys(
    dash: &Dash,
    checkout: &Checkout,
    arch: Option<&str>,
) -> Result<Vec<(String, u64)>, Fail> {
    let mut query = checkout.query();
    if let Some(a) = arch {
        query.push(("filter_architecture".into(), a.to_string()));
    }
    let summary = dash.get(&checkout.path("summary"), &query)?;
    let mut keys: Vec<(String, u64)> = Vec::new();
    for kind in ["builds", "boots", "tests"] {
        for i in list(&summary["summary"][kind]["issues"], "") {
            if let (Some(id), Some(v)) = (i["id"].as_str(), i["version"].as_u64()) {
                let key = (id.to_string(), v);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    }
    Ok(keys)
}

/// Which of `keys` were first seen in this checkout (kci-dev's `_fetch_checkout_issues`):
/// `POST issue/extras/`, then the issue's first incident must be of that version, with
/// trees, on this commit, URL, branch and tree name.
fn new_keys(
    dash: &Dash,
    keys: &[(String, u64)],
    checkout: &Checkout,
    tree: Option<&str>,
) -> Result<BTreeSet<(String, u64)>, Fail> {
    let mut out = BTreeSet::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let body = json!({"issues": keys.iter().map(|(id, v)| json!([id, v])).collect::<Vec<_>>()});
    let reply = dash.post("issue/extras/", &body)?;
    let extras = &reply["issues"];
    for (id, version) in keys {
        let extra = &extras[id];
        let incident = &extra["first_incident"];
        let trees = &extra["versions"][version.to_string()]["trees"];
        let has_trees = trees.as_array().is_some_and(|t| !t.is_empty());
        if has_trees
            && incident["issue_version"].as_u64() == Some(*version)
            && incident["git_commit_hash"].as_str() == Some(checkout.commit.as_str())
            && incident["git_repository_url"].as_str() == Some(checkout.giturl.as_str())
            && incident["git_repository_branch"].as_str() == Some(checkout.branch.as_str())
            && incident["tree_name"].as_str() == tree
        {
            out.insert((id.clone(), *version));
        }
    }
    Ok(out)
}

/// `issue/{id}?version=V` of each key.
fn fetch_issues<'a>(
    dash: &Dash,
    keys: impl IntoIterator<Item = &'a (String, u64)>,
) -> Result<Vec<Value>, Fail> {
    keys.into_iter()
        .map(|(id, version)| {
            dash.get(
                &format!("issue/{}", enc(id)),
                &q(&[("version", &version.to_string())]),
            )
        })
        .collect()
}

/// `tree/branch:commit`, kci-dev's heading of a checkout.
fn heading(checkout: &Checkout, tree: Option<&str>) -> String {
    format!(
        "{}/{}:{}",
        tree.unwrap_or("None"),
        checkout.branch,
        checkout.commit
    )
}

/// The issues (exact versions) reported on a checkout's builds, boots and tests; `[NEW]`
/// marks those first seen there (in the table).
fn checkout_issues(dash: &Dash, c: &CheckoutArgs) -> Result<u8, Fail> {
    let checkout = c.resolve(dash)?;
    let keys = issue_keys(dash, &checkout, c.arch.as_deref())?;
    let issues = fetch_issues(dash, &keys)?;
    if c.json {
        view::print_json(&Value::Array(issues));
        return Ok(0);
    }
    let tree = match &c.tree {
        Some(t) => Some(t.clone()),
        None => tree_name(dash, &checkout)?,
    };
    let new = new_keys(dash, &keys, &checkout, tree.as_deref())?;
    let marked: Vec<Value> = issues
        .into_iter()
        .map(|mut i| {
            let key = (text(&i, "id"), i["version"].as_u64().unwrap_or(0));
            if new.contains(&key) {
                i["comment"] = json!(format!("[NEW] {}", text(&i, "comment")));
            }
            i
        })
        .collect();
    print_table(dash, &marked, |i| {
        let id = text(i, "id");
        tree_branch(&i["extra"][&id]["first_incident"])
    });
    Ok(0)
}

/// `issues --new`: per checkout, the issues first seen there.
fn new_issues(
    dash: &Dash,
    c: &CheckoutArgs,
    targets: &[(Checkout, Option<String>)],
) -> Result<u8, Fail> {
    let mut all: Vec<Value> = Vec::new();
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    for (checkout, tree) in targets {
        let keys = issue_keys(dash, checkout, c.arch.as_deref())?;
        let new = new_keys(dash, &keys, checkout, tree.as_deref())?;
        let issues = fetch_issues(dash, keys.iter().filter(|k| new.contains(*k)))?;
        if c.json {
            for i in issues {
                let key = (text(&i, "id"), i["version"].as_u64().unwrap_or(0));
                if seen.insert(key) {
                    all.push(i);
                }
            }
            continue;
        }
        outln!("{}", heading(checkout, tree.as_deref()));
        if issues.is_empty() {
            outln!("No new issues found");
        } else {
            print_table(dash, &issues, |i| {
                let id = text(i, "id");
                tree_branch(&i["extra"][&id]["first_incident"])
            });
        }
    }
    if c.json {
        view::print_json(&Value::Array(all));
    }
    Ok(0)
}

/// `issues --missing`: the builds and boots that did not pass and have no issue
/// (kci-dev's `get_missing_issue_items`: `build/{id}/issues` or `test/{id}/issues`
/// answering "No issues ...").
fn missing(
    dash: &Dash,
    a: &IssuesArgs,
    targets: &[(Checkout, Option<String>)],
) -> Result<u8, Fail> {
    let c = &a.checkout;
    let kinds: &[(&str, &str, &str)] = match (a.builds, a.boots) {
        (true, false) => &[("builds", "build", "build")],
        (false, true) => &[("boots", "boot", "test")],
        _ => &[("builds", "build", "build"), ("boots", "boot", "test")],
    };
    let mut out = Map::new();
    for (plural, singular, route) in kinds {
        let mut found: Vec<Value> = Vec::new();
        for (checkout, tree) in targets {
            let mut query = checkout.query();
            if let Some(arch) = &c.arch {
                query.push(("filter_architecture".into(), arch.clone()));
            }
            let reply = dash.get(&checkout.path(plural), &query)?;
            for item in list(&reply, plural) {
                if item["status"].as_str() == Some("PASS") {
                    continue;
                }
                let id = text(item, "id");
                let issues = dash.get_raw(&format!("{route}/{}/issues", enc(&id)), &[])?;
                let none = issues["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("No issues"));
                if !none {
                    continue;
                }
                let mut row = json!({
                    "tree": format!("{}/{}", tree.as_deref().unwrap_or("None"), checkout.branch),
                    "giturl": checkout.giturl,
                    "commit": checkout.commit,
                    "id": id,
                    "status": item["status"],
                });
                if let Some(link) = dash.link(route, &id) {
                    row["dashboard"] = json!(link);
                }
                found.push(row);
            }
        }
        if c.json {
            out.insert((*plural).to_string(), Value::Array(found));
            continue;
        }
        outln!("{singular}s without an issue: {}", found.len());
        if found.is_empty() {
            continue;
        }
        let head = if dash.link(route, "").is_some() {
            "LINK"
        } else {
            "ID"
        };
        let rows: Vec<Vec<view::Cell>> = found
            .iter()
            .map(|r| {
                vec![
                    plain(text(r, "tree")),
                    plain(text(r, "commit")),
                    plain(
                        r["dashboard"]
                            .as_str()
                            .map_or_else(|| text(r, "id"), String::from),
                    ),
                    view::status(&text(r, "status")),
                ]
            })
            .collect();
        view::write_out(&render(
            &dash.paint,
            &["TREE", "COMMIT", head, "STATUS"],
            &rows,
        ));
    }
    if c.json {
        view::print_json(&Value::Object(out));
    }
    Ok(0)
}

/// `issue --id`.
pub fn one(dash: &Dash, a: &IssueArgs) -> Result<u8, Fail> {
    if a.id.trim().is_empty() {
        return Err(Fail::input("--id is empty"));
    }
    let path = format!("issue/{}", enc(&a.id));
    let mut query = Vec::new();
    if let Some(v) = a.version {
        query.push(("version".to_string(), v.to_string()));
    }
    let issue = dash.get(&path, &query).map_err(|f| {
        if f.message.starts_with("not found") {
            Fail::input(format!("issue {:?} not found on the dashboard", a.id))
        } else {
            f
        }
    })?;
    let mut related = q(&[("version", &text(&issue, "version"))]);
    if let Some(o) = &a.origin {
        related.push(("filter_origin".into(), o.clone()));
    }
    let builds = dash.get(&format!("{path}/builds"), &related)?;
    let tests = dash.get(&format!("{path}/tests"), &related)?;
    let (builds, tests) = (
        list(&builds, "builds").to_vec(),
        list(&tests, "tests").to_vec(),
    );
    if a.json {
        view::print_json(&json!({"issue": issue, "builds": builds, "tests": tests}));
        return Ok(0);
    }
    let id = text(&issue, "id");
    let culprits: Vec<&str> = ["code", "tool", "harness"]
        .into_iter()
        .filter(|c| issue[format!("culprit_{c}")].as_bool() == Some(true))
        .collect();
    let mut fields = vec![
        ("id", id.clone()),
        ("version", text(&issue, "version")),
        ("origin", text(&issue, "origin")),
        ("comment", text(&issue, "comment")),
        ("culprit", culprits.join(", ")),
        ("report_url", text(&issue, "report_url")),
        ("timestamp", text(&issue, "field_timestamp")),
        (
            "first seen",
            tree_branch(&issue["extra"][&id]["first_incident"]),
        ),
    ];
    if let Some(link) = dash.link("issue", &id) {
        fields.push(("dashboard", link));
    }
    for (k, v) in &fields {
        outln!("{:<12}{v}", format!("{k}:"));
    }
    outln!("\nbuilds ({}):", builds.len());
    if !builds.is_empty() {
        print_builds(dash, &builds);
    }
    outln!("\ntests ({}):", tests.len());
    if !tests.is_empty() {
        print_tests(dash, &tests);
    }
    Ok(0)
}
