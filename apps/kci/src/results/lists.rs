//! `kci results builds|boots|tests`: a checkout's results, filtered on the server
//! (`filter_<field>`) where the API can, as a table, kci-dev's JSON or a count.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::checkout_args::CheckoutArgs;
use super::client::{Dash, Fail, list, text};
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

/// The options of `builds`, `boots` and `tests`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    checkout: CheckoutArgs,
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
    /// Only boots of this KCIDB origin (boots).
    #[arg(long)]
    boot_origin: Option<String>,
    /// At most this many results.
    #[arg(long)]
    limit: Option<u64>,
    /// Skip this many results first.
    #[arg(long)]
    offset: Option<u64>,
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

/// The filters the server applies (`filter_...`).
fn server_filters(a: &ListArgs, kind: Kind) -> Result<Vec<(String, String)>, Fail> {
    let k = kind.name();
    let mut out = a.checkout.filters();
    let mut push = |key: String, v: String| out.push((key, v));
    match a.status {
        StatusArg::All => {}
        StatusArg::Pass => push(format!("filter_{k}.status"), "PASS".into()),
        StatusArg::Fail => push(format!("filter_{k}.status"), "FAIL".into()),
        StatusArg::Inconclusive => push(
            format!("filter_{k}.status_in"),
            "ERROR,SKIP,MISS,DONE,NULL".into(),
        ),
    }
    if let Some(c) = &a.compiler {
        push("filter_compiler".into(), c.clone());
    }
    if let Some(c) = &a.config {
        match like(c) {
            Some(p) => push("filter_config_name_like".into(), p),
            None => push("filter_config_name".into(), c.clone()),
        }
    }
    if kind == Kind::Build {
        for (flag, set) in [
            ("--hardware", a.hardware.is_some()),
            ("--test-path", a.test_path.is_some()),
            ("--compatible", a.compatible.is_some()),
            ("--boot-origin", a.boot_origin.is_some()),
        ] {
            if set {
                return Err(Fail::input(format!("{flag} does not apply to builds")));
            }
        }
    }
    if let Some(h) = &a.hardware {
        match like(h) {
            Some(p) => push("filter_hardware_like".into(), p),
            None => push("filter_hardware".into(), h.clone()),
        }
    }
    if let Some(p) = &a.test_path {
        match like(p) {
            Some(l) => push(format!("filter_{k}.path_like"), l),
            None => push(format!("filter_{k}.path"), p.clone()),
        }
    }
    if let Some(d) = a.min_duration {
        push(format!("filter_{k}.duration_gte"), d.to_string());
    }
    if let Some(d) = a.max_duration {
        push(format!("filter_{k}.duration_lte"), d.to_string());
    }
    if let Some(o) = &a.boot_origin {
        push("filter_boot.origin".into(), o.clone());
    }
    Ok(out)
}

/// The filters the API lacks, applied here: dates and `--compatible`.
struct ClientFilter {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    compatible: Option<String>,
}

impl ClientFilter {
    fn new(a: &ListArgs) -> Result<ClientFilter, Fail> {
        Ok(ClientFilter {
            since: a
                .start_date
                .as_deref()
                .map(|s| date_bound(s, false, "--start-date"))
                .transpose()?,
            until: a
                .end_date
                .as_deref()
                .map(|s| date_bound(s, true, "--end-date"))
                .transpose()?,
            compatible: a.compatible.as_ref().map(|c| c.to_lowercase()),
        })
    }

    fn active(&self) -> bool {
        self.since.is_some() || self.until.is_some() || self.compatible.is_some()
    }

    fn keeps(&self, item: &Value) -> bool {
        if let Some(c) = &self.compatible {
            let found = list(&item["environment_compatible"], "")
                .iter()
                .filter_map(Value::as_str)
                .any(|x| x.to_lowercase().contains(c.as_str()));
            if !found {
                return false;
            }
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
    let head = if dash.link("build", "").is_some() {
        "LINK"
    } else {
        "ID"
    };
    let rows: Vec<Vec<view::Cell>> = items
        .iter()
        .map(|b| {
            vec![
                plain(id_cell(dash, "build", b)),
                plain(text(b, "config_name")),
                plain(text(b, "architecture")),
                plain(text(b, "compiler")),
                view::status(&text(b, "status")),
            ]
        })
        .collect();
    view::write_out(&render(
        &dash.paint,
        &[head, "CONFIG", "ARCH", "COMPILER", "STATUS"],
        &rows,
    ));
}

/// Prints boots or tests as a table.
pub fn print_tests(dash: &Dash, items: &[Value]) {
    let head = if dash.link("test", "").is_some() {
        "LINK"
    } else {
        "ID"
    };
    let rows: Vec<Vec<view::Cell>> = items
        .iter()
        .map(|t| {
            let config = t.get("config").or_else(|| t.get("config_name"));
            vec![
                plain(id_cell(dash, "test", t)),
                plain(text(t, "path")),
                plain(text(&t["environment_misc"], "platform")),
                plain(config.and_then(Value::as_str).unwrap_or("-")),
                plain(text(t, "architecture")),
                view::status(&text(t, "status")),
            ]
        })
        .collect();
    view::write_out(&render(
        &dash.paint,
        &[head, "PATH", "HARDWARE", "CONFIG", "ARCH", "STATUS"],
        &rows,
    ));
}

/// Runs `builds`, `boots` or `tests`.
pub fn run(dash: &Dash, a: &ListArgs, kind: Kind) -> Result<u8, Fail> {
    let local = ClientFilter::new(a)?;
    let mut query_filters = server_filters(a, kind)?;
    let checkout = a.checkout.resolve(dash)?;
    let mut query = checkout.query();
    query.append(&mut query_filters);
    // Page on the server unless some filter is ours (or only counting).
    let page_here = local.active() || a.count;
    if !page_here {
        if let Some(l) = a.limit {
            query.push(("limit".into(), l.to_string()));
        }
        if let Some(o) = a.offset {
            query.push(("offset".into(), o.to_string()));
        }
    }
    let reply = dash.get(&checkout.path(kind.plural()), &query)?;
    let mut items: Vec<Value> = list(&reply, kind.plural())
        .iter()
        .filter(|i| local.keeps(i))
        .cloned()
        .collect();
    if page_here && !a.count {
        let offset = usize::try_from(a.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = a
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        items = items.into_iter().skip(offset).take(limit).collect();
    }
    if a.count {
        if a.checkout.json {
            view::print_json(&json!({"count": items.len()}));
        } else {
            outln!("{}", items.len());
        }
        return Ok(0);
    }
    if a.checkout.json {
        let out: Vec<Value> = items
            .iter()
            .map(|i| match kind {
                Kind::Build => build_json(dash, i),
                _ => test_json(dash, i),
            })
            .collect();
        view::print_json(&Value::Array(out));
    } else if kind == Kind::Build {
        print_builds(dash, &items);
    } else {
        print_tests(dash, &items);
    }
    Ok(0)
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
