//! `kci results trees`, `summary`, `hardware list|summary` and `tree-report`: counts and
//! listings (`hardware builds|boots|tests` are in `lists`).

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use super::checkout_args::CheckoutArgs;
use super::client::{Dash, Fail, enc, list, q, text};
use super::view::outln;
use super::view::{self, plain, render, triple, triple_cells, triple_json, triple_text};

/// The options of `trees`.
#[derive(Debug, clap::Args)]
pub struct TreesArgs {
    /// KCIDB origin.
    #[arg(long, default_value = "maestro")]
    origin: String,
    /// Trees with a checkout in the last N days.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// JSON output (kci-dev's fields).
    #[arg(long)]
    json: bool,
}

/// The options of `summary`.
#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    checkout: CheckoutArgs,
    /// The branch's commit history (up to its latest checkout) with their counts.
    #[arg(long)]
    history: bool,
}

/// `hardware ...`.
#[derive(Debug, clap::Subcommand)]
pub enum HardwareCmd {
    /// Platforms with results in a time window.
    List(HardwareListArgs),
    /// Pass/fail/inconclusive counts of a platform's results.
    Summary(HardwareSummaryArgs),
    /// The builds of a platform's tests.
    Builds(super::lists::HardwareListArgs),
    /// A platform's boots.
    Boots(super::lists::HardwareListArgs),
    /// A platform's tests (other than boots).
    Tests(super::lists::HardwareListArgs),
}

/// The options of `hardware list`.
#[derive(Debug, clap::Args)]
pub struct HardwareListArgs {
    /// KCIDB origin.
    #[arg(long, default_value = "maestro")]
    origin: String,
    /// Platforms with results in the last N days.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// The options of `hardware summary`.
#[derive(Debug, clap::Args)]
pub struct HardwareSummaryArgs {
    /// The platform.
    #[arg(long)]
    name: String,
    /// KCIDB origin.
    #[arg(long, default_value = "maestro")]
    origin: String,
    /// Results of the last N days.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// The options of `tree-report`.
#[derive(Debug, clap::Args)]
pub struct TreeReportArgs {
    /// KCIDB origin.
    #[arg(long, default_value = "maestro")]
    origin: String,
    /// Git URL of the tree.
    #[arg(long)]
    giturl: String,
    /// Branch.
    #[arg(long)]
    branch: String,
    /// Test paths to look at (SQL `LIKE` wildcards; repeat for more).
    #[arg(long)]
    path: Vec<String>,
    /// Commits in a test's history.
    #[arg(long, default_value_t = 3)]
    history_size: u32,
    /// The checkout is at most this many hours old.
    #[arg(long, default_value_t = 24)]
    max_age: u32,
    /// The checkout is at least this many hours old.
    #[arg(long, default_value_t = 0)]
    min_age: u32,
    /// PASS/FAIL/OTHER instead of symbols in histories.
    #[arg(long)]
    no_emoji: bool,
    /// JSON output (the API's).
    #[arg(long)]
    json: bool,
}

/// `trees`.
pub fn trees(dash: &Dash, a: &TreesArgs) -> Result<u8, Fail> {
    let reply = dash.get(
        "tree",
        &q(&[
            ("origin", &a.origin),
            ("interval_in_days", &a.days.to_string()),
        ]),
    )?;
    let trees = list(&reply, "trees");
    let name = |t: &Value| {
        format!(
            "{}/{}",
            t["tree_name"].as_str().unwrap_or("-"),
            text(t, "git_repository_branch")
        )
    };
    if a.json {
        let out: Vec<Value> = trees
            .iter()
            .map(|t| {
                json!({
                    "tree": name(t),
                    "giturl": t["git_repository_url"],
                    "latest_commit_hash": t["git_commit_hash"],
                    "latest_commit_name": t["git_commit_name"],
                    "latest_commit_start_time": t["start_time"],
                })
            })
            .collect();
        view::print_json(&Value::Array(out));
        return Ok(0);
    }
    let rows: Vec<Vec<view::Cell>> = trees
        .iter()
        .map(|t| {
            vec![
                plain(name(t)),
                plain(text(t, "git_commit_hash")),
                plain(text(t, "git_commit_name")),
                plain(text(t, "start_time")),
                plain(triple_text(triple(&t["build_status"]))),
                plain(triple_text(triple(&t["boot_status"]))),
                plain(triple_text(triple(&t["test_status"]))),
                plain(text(t, "git_repository_url")),
            ]
        })
        .collect();
    view::write_out(&render(
        &dash.paint,
        &[
            "TREE", "COMMIT", "NAME", "STARTED", "BUILDS", "BOOTS", "TESTS", "GITURL",
        ],
        &rows,
    ));
    Ok(0)
}

/// Prints a summary reply's counts (kci-dev's `cmd_summary`).
fn print_summary(dash: &Dash, reply: &Value, json: bool) {
    let counts: Vec<(&str, (u64, u64, u64))> = ["builds", "boots", "tests"]
        .into_iter()
        .map(|k| (k, triple(&reply["summary"][k]["status"])))
        .collect();
    if json {
        let mut m = serde_json::Map::new();
        for (k, t) in &counts {
            m.insert((*k).to_string(), triple_json(*t));
        }
        view::print_json(&Value::Object(m));
        return;
    }
    let rows: Vec<Vec<view::Cell>> = counts
        .iter()
        .map(|(k, t)| {
            let mut row = vec![plain(*k)];
            row.extend(triple_cells(*t));
            row
        })
        .collect();
    view::write_out(&render(
        &dash.paint,
        &["", "PASS", "FAIL", "INCONCLUSIVE"],
        &rows,
    ));
}

/// `summary`.
pub fn summary(dash: &Dash, a: &SummaryArgs) -> Result<u8, Fail> {
    let c = &a.checkout;
    if a.history {
        let checkout = c.resolve_with(dash, true)?;
        let reply = dash.get(&checkout.path("commits"), &checkout.query())?;
        let commits = list(&reply, "commits");
        if c.json {
            view::print_json(&Value::Array(commits.to_vec()));
            return Ok(0);
        }
        let rows: Vec<Vec<view::Cell>> = commits
            .iter()
            .map(|e| {
                let tags: Vec<&str> = e["git_commit_tags"]
                    .as_array()
                    .map(|l| l.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                vec![
                    plain(text(e, "git_commit_hash")),
                    plain(tags.join(", ")),
                    plain(triple_text(triple(&e["builds"]))),
                    plain(triple_text(triple(&e["boots"]))),
                    plain(triple_text(triple(&e["tests"]))),
                ]
            })
            .collect();
        view::write_out(&render(
            &dash.paint,
            &["COMMIT", "TAGS", "BUILDS", "BOOTS", "TESTS"],
            &rows,
        ));
        return Ok(0);
    }
    let checkout = c.resolve(dash)?;
    let mut query = checkout.query();
    query.extend(c.filters());
    let reply = dash.get(&checkout.path("summary"), &query)?;
    print_summary(dash, &reply, c.json);
    if !c.json
        && let Some(link) = dash.link("tree", &checkout.commit)
    {
        outln!("dashboard: {link}");
    }
    Ok(0)
}

fn window(days: u32) -> (String, String) {
    let now = Utc::now();
    let since = now - Duration::days(i64::from(days));
    (since.timestamp().to_string(), now.timestamp().to_string())
}

/// `hardware list|summary|builds|boots|tests`.
pub fn hardware(dash: &Dash, cmd: &HardwareCmd) -> Result<u8, Fail> {
    use super::lists::{self, Kind};
    match cmd {
        HardwareCmd::Builds(a) => lists::hardware(dash, a, Kind::Build),
        HardwareCmd::Boots(a) => lists::hardware(dash, a, Kind::Boot),
        HardwareCmd::Tests(a) => lists::hardware(dash, a, Kind::Test),
        HardwareCmd::List(a) => {
            let (since, until) = window(a.days);
            let reply = dash.get(
                "hardware/",
                &q(&[
                    ("origin", &a.origin),
                    ("startTimestampInSeconds", &since),
                    ("endTimestampInSeconds", &until),
                ]),
            )?;
            let items = list(&reply, "hardware");
            let compatibles = |h: &Value| -> Vec<String> {
                list(&h["hardware"], "")
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            };
            if a.json {
                let out: Vec<Value> = items
                    .iter()
                    .map(|h| json!({"name": h["platform"], "compatibles": compatibles(h)}))
                    .collect();
                view::print_json(&Value::Array(out));
                return Ok(0);
            }
            let rows: Vec<Vec<view::Cell>> = items
                .iter()
                .map(|h| {
                    vec![
                        plain(text(h, "platform")),
                        plain(triple_text(triple(&h["build_status_summary"]))),
                        plain(triple_text(triple(&h["boot_status_summary"]))),
                        plain(triple_text(triple(&h["test_status_summary"]))),
                        plain(compatibles(h).join(" | ")),
                    ]
                })
                .collect();
            view::write_out(&render(
                &dash.paint,
                &["NAME", "BUILDS", "BOOTS", "TESTS", "COMPATIBLES"],
                &rows,
            ));
            Ok(0)
        }
        HardwareCmd::Summary(a) => {
            let (since, until) = window(a.days);
            let body = json!({
                "origin": a.origin,
                "startTimestampInSeconds": since,
                "endTimestampInSeconds": until,
                "selectedCommits": {},
                "filter": {},
            });
            let reply = dash.post(&format!("hardware/{}/summary", enc(&a.name)), &body)?;
            print_summary(dash, &reply, a.json);
            Ok(0)
        }
    }
}

fn history_symbol(status: &Value, no_emoji: bool) -> &'static str {
    match (status.as_str(), no_emoji) {
        (Some("PASS"), true) => "PASS",
        (Some("PASS"), false) => "✅",
        (Some("FAIL"), true) => "FAIL",
        (Some("FAIL"), false) => "❌",
        (_, true) => "OTHER",
        (_, false) => "⚠️",
    }
}

/// `tree-report`.
pub fn tree_report(dash: &Dash, a: &TreeReportArgs) -> Result<u8, Fail> {
    let mut query = q(&[
        ("origin", &a.origin),
        ("git_branch", &a.branch),
        ("git_url", &a.giturl),
        ("group_size", &a.history_size.to_string()),
        ("max_age_in_hours", &a.max_age.to_string()),
        ("min_age_in_hours", &a.min_age.to_string()),
    ]);
    for p in &a.path {
        query.push(("path".into(), p.clone()));
    }
    let r = dash.get("tree-report/", &query)?;
    if a.json {
        view::print_json(&r);
        return Ok(0);
    }
    let commit = text(&r, "commit_hash");
    outln!("Tree: {}", text(&r, "dashboard_url"));
    outln!("Commit: {commit}");
    outln!("Origin: {}", text(&r, "origin"));
    outln!("Checkout start time: {}", text(&r, "checkout_start_time"));
    if let Some(link) = dash.link("tree", &commit) {
        outln!("Dashboard: {link}");
    }
    outln!();
    let rows: Vec<Vec<view::Cell>> = [
        ("builds", "build_status_summary"),
        ("boots", "boot_status_summary"),
        ("tests", "test_status_summary"),
    ]
    .into_iter()
    .map(|(name, key)| {
        let mut row = vec![plain(name)];
        row.extend(triple_cells(triple(&r[key])));
        row
    })
    .collect();
    view::write_out(&render(
        &dash.paint,
        &["", "PASS", "FAIL", "INCONCLUSIVE"],
        &rows,
    ));
    for (key, title) in [
        ("possible_regressions", "Possible regressions"),
        ("fixed_regressions", "Fixed regressions"),
        ("unstable_tests", "Unstable tests"),
    ] {
        let Some(platforms) = r[key].as_object().filter(|m| !m.is_empty()) else {
            continue;
        };
        outln!("\n{title}:");
        for (platform, configs) in platforms {
            for (config, archs) in configs.as_object().into_iter().flatten() {
                for (arch, paths) in archs.as_object().into_iter().flatten() {
                    for (path, tests) in paths.as_object().into_iter().flatten() {
                        let tests = list(tests, "");
                        let history: Vec<&str> = tests
                            .iter()
                            .rev()
                            .map(|t| history_symbol(&t["status"], a.no_emoji))
                            .collect();
                        outln!("- {path} on {platform} ({config}, {arch})");
                        outln!("  history: {}", history.join(" > "));
                        if let Some(last) = tests.first() {
                            let id = text(last, "id");
                            outln!("  last run: {}", dash.link("test", &id).unwrap_or(id));
                        }
                    }
                }
            }
        }
    }
    let issues = list(&r["issues"]["builds"], "");
    if !issues.is_empty() {
        outln!("\nBuild issues:");
    }
    for i in issues {
        let id = text(i, "issue_id");
        let new = if i["is_new_issue"].as_bool() == Some(true) {
            "[NEW] "
        } else {
            ""
        };
        outln!("- {new}{}", dash.link("issue", &id).unwrap_or(id));
        outln!("  comment: {}", text(i, "comment"));
        let build = text(i, "build_id");
        outln!("  build: {}", dash.link("build", &build).unwrap_or(build));
        outln!("  version: {}", text(i, "version"));
        outln!("  first seen: {}", text(i, "first_seen"));
    }
    Ok(0)
}
