//! `kci results builds|boots|tests`: a checkout's results, filtered on the server
//! (`filter_<field>`) where the API can, as a table, kci-dev's JSON or a count; and
//! `hardware builds|boots|tests` (a platform's results, filtered here as kci-dev does).
//! `--download-logs` saves each listed result's log (see `download`).

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::checkout_args::CheckoutArgs;
use super::client::{Dash, Fail, enc, list, text};
use super::download::{self, Logs};
use super::filters::{FilterFile, fnmatch};
use super::view::outln;
use super::view::{self, plain, render};

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Builds.
    Build,
    /// Boots.
    Boot,
    /// Other tests.
    Test,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Build => "build",
            Kind::Boot => "boot",
            Kind::Test => "test",
        }
    }

    /// The route's list name (`builds`...).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Build => "builds",
            Kind::Boot => "boots",
            Kind::Test => "tests",
        }
    }
}

/// `--status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    /// Every result.
    All,
    /// PASS.
    Pass,
    /// FAIL.
    Fail,
    /// ERROR, SKIP, MISS, DONE or none.
    Inconclusive,
}

/// The result filters and actions of `builds`, `boots`, `tests` and `hardware
/// builds|boots|tests` (kci-dev's `builds_and_tests_options`).
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// Only results with this status.
    #[arg(long, value_enum, default_value_t = StatusArg::All)]
    status: StatusArg,
    /// Print the number of matching results instead.
    #[arg(long)]
    count: bool,
    /// Only this compiler (e.g. gcc-14).
    #[arg(long)]
    compiler: Option<String>,
    /// Only this kernel config (`*` and `?` wildcards).
    #[arg(long)]
    config: Option<String>,
    /// Only this platform or compatible (boots and tests).
    #[arg(long)]
    hardware: Option<String>,
    /// Only this test path (`*` and `?` wildcards; boots and tests).
    #[arg(long)]
    test_path: Option<String>,
    /// Only tests with a compatible containing this text (boots and tests).
    #[arg(long)]
    compatible: Option<String>,
    /// Only results of a branch matching this pattern (`*`, `?`, `[...]`).
    #[arg(long)]
    git_branch: Option<String>,
    /// kci-dev's YAML filter file: `hardware`, `test` and `tree` lists of patterns.
    #[arg(long, value_name = "FILE")]
    filter: Option<PathBuf>,
    /// Only results that took at least this many seconds.
    #[arg(long)]
    min_duration: Option<f64>,
    /// Only results that took at most this many seconds.
    #[arg(long)]
    max_duration: Option<f64>,
    /// Only results started at or after this date (YYYY-MM-DD or ISO 8601).
    #[arg(long)]
    start_date: Option<String>,
    /// Only results started at or before this date (YYYY-MM-DD: the whole day).
    #[arg(long)]
    end_date: Option<String>,
    /// Save each result's log in the current directory (kci-dev's file names); exit 1 if
    /// one fails.
    #[arg(long)]
    download_logs: bool,
    /// At most this many results.
    #[arg(long)]
    limit: Option<u64>,
    /// Skip this many results first.
    #[arg(long)]
    offset: Option<u64>,
}

/// The options of `builds`, `boots` and `tests`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    checkout: CheckoutArgs,
    #[command(flatten)]
    f: FilterArgs,
    /// Only boots of this KCIDB origin (boots).
    #[arg(long)]
    boot_origin: Option<String>,
}

/// The options of `hardware builds|boots|tests`.
#[derive(Debug, clap::Args)]
pub struct HardwareListArgs {
    /// The platform (its name or a compatible).
    #[arg(long)]
    name: String,
    /// KCIDB origin.
    #[arg(long, default_value = "maestro")]
    origin: String,
    /// Results of the last N days.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// JSON output (kci-dev's fields).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    f: FilterArgs,
}

/// An fnmatch pattern as SQL `LIKE`, or `None` when it has no wildcard.
fn like(pattern: &str) -> Option<String> {
    pattern
        .contains(['*', '?'])
        .then(|| pattern.replace('*', "%").replace('?', "_"))
}

fn date_bound(s: &str, end: bool, flag: &str) -> Result<DateTime<Utc>, Fail> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = if end {
            d.and_hms_opt(23, 59, 59)
        } else {
            d.and_hms_opt(0, 0, 0)
        };
        return t
            .map(|t| t.and_utc())
            .ok_or_else(|| Fail::input(format!("{flag} {s:?}: not a date")));
    }
    DateTime::parse_from_rfc3339(&s.replace(' ', "T"))
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            Fail::input(format!(
                "{flag} {s:?}: expected YYYY-MM-DD or an ISO 8601 time with a timezone"
            ))
        })
}

/// The filters the server applies (`filter_...`) for a checkout's list.
fn server_filters(a: &ListArgs, kind: Kind) -> Result<Vec<(String, String)>, Fail> {
    let k = kind.name();
    let f = &a.f;
    let mut out = a.checkout.filters();
    let mut push = |key: String, v: String| out.push((key, v));
    match f.status {
        StatusArg::All => {}
        StatusArg::Pass => push(format!("filter_{k}.status"), "PASS".into()),
        StatusArg::Fail => push(format!("filter_{k}.status"), "FAIL".into()),
        StatusArg::Inconclusive => push(
            format!("filter_{k}.status_in"),
            "ERROR,SKIP,MISS,DONE,NULL".into(),
        ),
    }
    if let Some(c) = &f.compiler {
        push("filter_compiler".into(), c.clone());
    }
    if let Some(c) = &f.config {
        match like(c) {
            Some(p) => push("filter_config_name_like".into(), p),
            None => push("filter_config_name".into(), c.clone()),
        }
    }
    if kind == Kind::Build && a.boot_origin.is_some() {
        return Err(Fail::input("--boot-origin does not apply to builds"));
    }
    if let Some(h) = &f.hardware {
        match like(h) {
            Some(p) => push("filter_hardware_like".into(), p),
            None => push("filter_hardware".into(), h.clone()),
        }
    }
    if let Some(p) = &f.test_path {
        match like(p) {
            Some(l) => push(format!("filter_{k}.path_like"), l),
            None => push(format!("filter_{k}.path"), p.clone()),
        }
    }
    if let Some(d) = f.min_duration {
        push(format!("filter_{k}.duration_gte"), d.to_string());
    }
    if let Some(d) = f.max_duration {
        push(format!("filter_{k}.duration_lte"), d.to_string());
    }
    if let Some(o) = &a.boot_origin {
        push("filter_boot.origin".into(), o.clone());
    }
    Ok(out)
}

/// `--hardware`, `--test-path` and `--compatible` are refused for builds.
fn refuse_for_builds(f: &FilterArgs, kind: Kind) -> Result<(), Fail> {
    if kind != Kind::Build {
        return Ok(());
    }
    for (flag, set) in [
        ("--hardware", f.hardware.is_some()),
        ("--test-path", f.test_path.is_some()),
        ("--compatible", f.compatible.is_some()),
    ] {
        if set {
            return Err(Fail::input(format!("{flag} does not apply to builds")));
        }
    }
    Ok(())
}

/// kci-dev's `FilterSet`, applied here: for a checkout's lists only what the API lacks
/// (dates, `--compatible`, `--git-branch`, `--filter`); for `hardware` lists everything
/// (the route filters nothing for builds).
struct Local {
    build: bool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    compatible: Option<String>,
    git_branch: Option<String>,
    file: Option<FilterFile>,
    /// The filters a checkout's list leaves to the server.
    status: StatusArg,
    compiler: Option<String>,
    config: Option<String>,
    hardware: Option<String>,
    test_path: Option<String>,
    min_duration: Option<f64>,
    max_duration: Option<f64>,
    origin: Option<String>,
}

impl Local {
    /// The local filters; `all` for everything (hardware lists).
    fn new(f: &FilterArgs, kind: Kind, all: bool) -> Result<Local, Fail> {
        let file = f.filter.as_deref().map(FilterFile::read).transpose()?;
        let mine = |v: &Option<String>| if all { v.clone() } else { None };
        Ok(Local {
            build: kind == Kind::Build,
            since: f
                .start_date
                .as_deref()
                .map(|s| date_bound(s, false, "--start-date"))
                .transpose()?,
            until: f
                .end_date
                .as_deref()
                .map(|s| date_bound(s, true, "--end-date"))
                .transpose()?,
            compatible: f.compatible.as_ref().map(|c| c.to_lowercase()),
            git_branch: f.git_branch.clone(),
            file: file.filter(FilterFile::active),
            status: if all { f.status } else { StatusArg::All },
            compiler: mine(&f.compiler),
            config: mine(&f.config),
            hardware: mine(&f.hardware),
            test_path: mine(&f.test_path),
            min_duration: f.min_duration.filter(|_| all),
            max_duration: f.max_duration.filter(|_| all),
            origin: None,
        })
    }

    fn active(&self) -> bool {
        self.since.is_some()
            || self.until.is_some()
            || self.compatible.is_some()
            || self.git_branch.is_some()
            || self.file.is_some()
            || self.status != StatusArg::All
            || self.compiler.is_some()
            || self.config.is_some()
            || self.hardware.is_some()
            || self.test_path.is_some()
            || self.min_duration.is_some()
            || self.max_duration.is_some()
            || self.origin.is_some()
    }

    fn keeps(&self, item: &Value) -> bool {
        let s = |k: &str| item[k].as_str();
        if let Some(o) = &self.origin
            && s("origin") != Some(o.as_str())
        {
            return false;
        }
        let status = s("status").unwrap_or("NULL");
        let status_ok = match self.status {
            StatusArg::All => true,
            StatusArg::Pass => status == "PASS",
            StatusArg::Fail => status == "FAIL",
            StatusArg::Inconclusive => !matches!(status, "PASS" | "FAIL"),
        };
        if !status_ok {
            return false;
        }
        // kci-dev: the compiler ignoring case; a config pattern on `config_name` or `config`.
        if let Some(c) = &self.compiler
            && !s("compiler").is_some_and(|x| x.eq_ignore_ascii_case(c))
        {
            return false;
        }
        if let Some(c) = &self.config {
            let value = s("config_name").or(s("config"));
            if !value.is_some_and(|v| fnmatch(v, c)) {
                return false;
            }
        }
        if let Some(h) = &self.hardware {
            let platform = item["environment_misc"]["platform"].as_str();
            let hit = platform.is_some_and(|p| fnmatch(p, h))
                || list(&item["environment_compatible"], "")
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|c| fnmatch(c, h));
            if !hit {
                return false;
            }
        }
        if let Some(p) = &self.test_path
            && !s("path").is_some_and(|x| fnmatch(x, p))
        {
            return false;
        }
        // kci-dev: a result without a duration is kept.
        if let Some(d) = item["duration"].as_f64()
            && (self.min_duration.is_some_and(|m| d < m)
                || self.max_duration.is_some_and(|m| d > m))
        {
            return false;
        }
        if let Some(c) = &self.compatible {
            let found = list(&item["environment_compatible"], "")
                .iter()
                .filter_map(Value::as_str)
                .any(|x| x.to_lowercase().contains(c.as_str()));
            if !found {
                return false;
            }
        }
        if let Some(b) = &self.git_branch
            && !s("git_repository_branch").is_some_and(|x| fnmatch(x, b))
        {
            return false;
        }
        if let Some(f) = &self.file
            && !f.keeps(item, self.build)
        {
            return false;
        }
        // Like kci-dev: a result without a readable start time is kept.
        let started = item["start_time"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(&s.replace(' ', "T")).ok())
            .map(|d| d.with_timezone(&Utc));
        match started {
            Some(t) => self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u),
            None => true,
        }
    }
}

/// kci-dev's JSON for a build (`create_build_json`).
pub fn build_json(dash: &Dash, b: &Value) -> Value {
    let mut m = Map::new();
    for (to, from) in [
        ("config", "config_name"),
        ("arch", "architecture"),
        ("compiler", "compiler"),
        ("status", "status"),
        ("config_url", "config_url"),
        ("log", "log_url"),
        ("id", "id"),
    ] {
        m.insert(to.into(), b.get(from).cloned().unwrap_or(Value::Null));
    }
    if let Some(link) = b["id"].as_str().and_then(|id| dash.link("build", id)) {
        m.insert("dashboard".into(), json!(link));
    }
    Value::Object(m)
}

/// kci-dev's status text for a test: PASS, FAIL or `INCONCLUSIVE (status: X)`.
fn test_status(t: &Value) -> String {
    match t["status"].as_str() {
        Some(s @ ("PASS" | "FAIL")) => s.to_string(),
        other => format!("INCONCLUSIVE (status: {})", other.unwrap_or("NULL")),
    }
}

/// kci-dev's JSON for a boot or test (`create_test_json`).
pub fn test_json(dash: &Dash, t: &Value) -> Value {
    let config = t
        .get("config")
        .or_else(|| t.get("config_name"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut v = json!({
        "test_path": t["path"],
        "hardware": t["environment_misc"]["platform"],
        "compatibles": t.get("environment_compatible").cloned().unwrap_or(json!([])),
        "config": config,
        "arch": t["architecture"],
        "status": test_status(t),
        "start_time": t["start_time"],
        "log": t["log_url"],
        "id": t["id"],
    });
    if let Value::Object(m) = &mut v {
        if let Some(link) = t["id"].as_str().and_then(|id| dash.link("test", id)) {
            m.insert("dashboard".into(), json!(link));
        }
        if let Some(r) = t["misc"].get("runtime").filter(|r| !r.is_null()) {
            m.insert("runtime".into(), r.clone());
        }
    }
    v
}

/// The first column: the dashboard link when there is one, else the id.
fn id_cell(dash: &Dash, kind: &str, item: &Value) -> String {
    let id = text(item, "id");
    dash.link(kind, &id).unwrap_or(id)
}

/// Prints builds as a table.
pub fn print_builds(dash: &Dash, items: &[Value]) {
    print_builds_with(dash, items, None);
}

/// The LOG column's cell: the saved file, or the URL when it was not saved.
fn log_cell(item: &Value, log: Option<&String>) -> view::Cell {
    plain(log.cloned().unwrap_or_else(|| text(item, "log_url")))
}

/// Prints builds as a table, with a LOG column when logs were downloaded.
fn print_builds_with(dash: &Dash, items: &[Value], logs: Option<&[Option<String>]>) {
    let head = if dash.link("build", "").is_some() {
        "LINK"
    } else {
        "ID"
    };
    let rows: Vec<Vec<view::Cell>> = items
        .iter()
        .enumerate()
        .map(|(n, b)| {
            let mut row = vec![
                plain(id_cell(dash, "build", b)),
                plain(text(b, "config_name")),
                plain(text(b, "architecture")),
                plain(text(b, "compiler")),
                view::status(&text(b, "status")),
            ];
            if let Some(logs) = logs {
                row.push(log_cell(b, logs[n].as_ref()));
            }
            row
        })
        .collect();
    let mut header = vec![head, "CONFIG", "ARCH", "COMPILER", "STATUS"];
    if logs.is_some() {
        header.push("LOG");
    }
    view::write_out(&render(&dash.paint, &header, &rows));
}

/// Prints boots or tests as a table.
pub fn print_tests(dash: &Dash, items: &[Value]) {
    print_tests_with(dash, items, None);
}

/// Prints boots or tests as a table, with a LOG column when logs were downloaded.
fn print_tests_with(dash: &Dash, items: &[Value], logs: Option<&[Option<String>]>) {
    let head = if dash.link("test", "").is_some() {
        "LINK"
    } else {
        "ID"
    };
    let rows: Vec<Vec<view::Cell>> = items
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let config = t.get("config").or_else(|| t.get("config_name"));
            let mut row = vec![
                plain(id_cell(dash, "test", t)),
                plain(text(t, "path")),
                plain(text(&t["environment_misc"], "platform")),
                plain(config.and_then(Value::as_str).unwrap_or("-")),
                plain(text(t, "architecture")),
                view::status(&text(t, "status")),
            ];
            if let Some(logs) = logs {
                row.push(log_cell(t, logs[n].as_ref()));
            }
            row
        })
        .collect();
    let mut header = vec![head, "PATH", "HARDWARE", "CONFIG", "ARCH", "STATUS"];
    if logs.is_some() {
        header.push("LOG");
    }
    view::write_out(&render(&dash.paint, &header, &rows));
}

/// Runs `builds`, `boots` or `tests`.
pub fn run(dash: &Dash, a: &ListArgs, kind: Kind) -> Result<u8, Fail> {
    refuse_for_builds(&a.f, kind)?;
    let local = Local::new(&a.f, kind, false)?;
    let mut query_filters = server_filters(a, kind)?;
    let checkout = a.checkout.resolve(dash)?;
    let mut query = checkout.query();
    query.append(&mut query_filters);
    // Page on the server unless some filter is ours (or only counting).
    let page_here = local.active() || a.f.count;
    if !page_here {
        if let Some(l) = a.f.limit {
            query.push(("limit".into(), l.to_string()));
        }
        if let Some(o) = a.f.offset {
            query.push(("offset".into(), o.to_string()));
        }
    }
    let reply = dash.get(&checkout.path(kind.plural()), &query)?;
    let items = select(list(&reply, kind.plural()), &local, &a.f, page_here);
    show(dash, &a.f, a.checkout.json, kind, &items, &checkout.commit)
}

/// Runs `hardware builds|boots|tests`: `POST hardware/{name}/{builds,boots,tests}`, every
/// filter applied here as kci-dev does.
pub fn hardware(dash: &Dash, a: &HardwareListArgs, kind: Kind) -> Result<u8, Fail> {
    refuse_for_builds(&a.f, kind)?;
    let mut local = Local::new(&a.f, kind, true)?;
    // The route ignores `origin` for builds (it gives the builds of the platform's tests).
    if kind == Kind::Build {
        local.origin = Some(a.origin.clone());
    }
    let now = Utc::now();
    let since = now - chrono::Duration::days(i64::from(a.days));
    let body = json!({
        "origin": a.origin,
        "startTimestampInSeconds": since.timestamp().to_string(),
        "endTimestampInSeconds": now.timestamp().to_string(),
        "selectedCommits": {},
        "filter": {},
    });
    let reply = dash.post(
        &format!("hardware/{}/{}", enc(&a.name), kind.plural()),
        &body,
    )?;
    let items = select(list(&reply, kind.plural()), &local, &a.f, true);
    show(dash, &a.f, a.json, kind, &items, &a.name)
}

/// The items that pass the local filters, paged here when `page_here`.
fn select(items: &[Value], local: &Local, f: &FilterArgs, page_here: bool) -> Vec<Value> {
    let kept = items.iter().filter(|i| local.keeps(i)).cloned();
    if page_here && !f.count {
        let offset = usize::try_from(f.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = f
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        return kept.skip(offset).take(limit).collect();
    }
    kept.collect()
}

/// Downloads the logs when asked (`what` names the files, as kci-dev: the commit or the
/// platform), then prints the count, the JSON or the table. Exit 1 if a download failed.
fn show(
    dash: &Dash,
    f: &FilterArgs,
    json: bool,
    kind: Kind,
    items: &[Value],
    what: &str,
) -> Result<u8, Fail> {
    let mut logs: Vec<Option<String>> = vec![None; items.len()];
    let mut code = 0;
    if f.download_logs {
        let mut dl = Logs::new(items.len())?;
        for (item, log) in items.iter().zip(logs.iter_mut()) {
            let name = match kind {
                Kind::Build => download::build_list_name(item, what),
                _ => download::test_name(item, what),
            };
            *log = dl.fetch(item, &name);
        }
        code = dl.code();
    }
    if f.count {
        if json {
            view::print_json(&json!({"count": items.len()}));
        } else {
            outln!("{}", items.len());
        }
        return Ok(code);
    }
    if json {
        let out: Vec<Value> = items
            .iter()
            .zip(&logs)
            .map(|(i, log)| {
                let mut v = match kind {
                    Kind::Build => build_json(dash, i),
                    _ => test_json(dash, i),
                };
                if let Some(path) = log {
                    v["log"] = json!(path);
                }
                v
            })
            .collect();
        view::print_json(&Value::Array(out));
    } else {
        let logs = f.download_logs.then_some(logs.as_slice());
        if kind == Kind::Build {
            print_builds_with(dash, items, logs);
        } else {
            print_tests_with(dash, items, logs);
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_dates() {
        assert_eq!(like("multi_v7*"), Some("multi_v7%".into()));
        assert_eq!(like("defconfig"), None);
        let d = date_bound("2025-03-03", true, "--end-date").unwrap();
        assert_eq!(d.to_rfc3339(), "2025-03-03T23:59:59+00:00");
        assert!(date_bound("2025-03-03T10:00:00Z", false, "x").is_ok());
        assert!(date_bound("yesterday", false, "x").is_err());
    }
}
