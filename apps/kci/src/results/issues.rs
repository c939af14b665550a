//! `kci results issues` (the issues seen in a time window, `issue/`, or a checkout's,
//! from its summary) and `kci results issue --id` (`issue/{id}` with its builds and tests).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::checkout_args::CheckoutArgs;
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
    if for_checkout {
        if a.days.is_some() || a.start_date.is_some() {
            return Err(Fail::input(
                "--days, --start-date and --end-date only apply to the issue listing, \
                 not to a checkout's issues",
            ));
        }
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

/// The issues (exact versions) reported on a checkout's builds, boots and tests.
fn checkout_issues(dash: &Dash, c: &CheckoutArgs) -> Result<u8, Fail> {
    let checkout = c.resolve(dash)?;
    let mut query = checkout.query();
    if let Some(a) = &c.arch {
        query.push(("filter_architecture".into(), a.clone()));
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
    let mut issues = Vec::new();
    for (id, version) in &keys {
        issues.push(dash.get(
            &format!("issue/{}", enc(id)),
            &q(&[("version", &version.to_string())]),
        )?);
    }
    if c.json {
        view::print_json(&Value::Array(issues));
        return Ok(0);
    }
    print_table(dash, &issues, |i| {
        let id = text(i, "id");
        tree_branch(&i["extra"][&id]["first_incident"])
    });
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
