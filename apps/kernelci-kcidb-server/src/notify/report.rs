//! A checkout's report: what it gathers from the database ([`gather`]) and how it is
//! written: a plain-text e-mail ([`Report::subject`], [`Report::text`]), a JSON webhook body
//! ([`Report::json`]) and a Discord message ([`Report::discord`]). Rendering is pure.

use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::StatusCounts;
use kernelci_kcidb::regress::track::{Regression, RegressionFilter, list};
use kernelci_kcidb::regress::{RegressionState, ResultKind};
use serde::Serialize;
use serde_json::{Value, json};

use super::NotifyError;
use super::store::{self, CheckoutInfo, Missing};

/// Missing results listed in a report (the count covers them all).
pub const MAX_MISSING: usize = 50;

/// Results of one status group of a checkout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// PASS.
    pub pass: u64,
    /// FAIL.
    pub fail: u64,
    /// ERROR.
    pub error: u64,
    /// MISS.
    pub miss: u64,
    /// SKIP.
    pub skip: u64,
    /// DONE.
    pub done: u64,
    /// No status.
    pub none: u64,
}

impl From<StatusCounts> for Tally {
    fn from(c: StatusCounts) -> Tally {
        Tally {
            pass: c.pass,
            fail: c.fail,
            error: c.error,
            miss: c.miss,
            skip: c.skip,
            done: c.done,
            none: c.null,
        }
    }
}

impl Tally {
    /// `3 pass, 1 fail` (statuses with results only; `none` when empty).
    pub fn line(&self) -> String {
        let parts: Vec<String> = [
            (self.pass, "pass"),
            (self.fail, "fail"),
            (self.error, "error"),
            (self.miss, "miss"),
            (self.skip, "skip"),
            (self.done, "done"),
            (self.none, "no status"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, s)| format!("{n} {s}"))
        .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Builds, boots and tests of the checkout by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Builds.
    pub builds: Tally,
    /// Boots.
    pub boots: Tally,
    /// Other tests.
    pub tests: Tally,
}

/// A regression as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegressionItem {
    /// The regression's id.
    pub id: String,
    /// `path on platform (config/arch)` or `build config/arch (compiler)`.
    pub what: String,
    /// `build` or `test`.
    pub kind: String,
    /// Lifecycle state.
    pub state: String,
    /// Failure class.
    pub class: String,
    /// The platform (tests).
    pub platform: String,
    /// Failing checkouts so far.
    pub fail_count: i64,
    /// The commit it last passed on.
    pub last_pass_commit: String,
    /// The first failing commit.
    pub first_fail_commit: String,
    /// The culprit a bisection named.
    pub culprit: Option<String>,
    /// The culprit's subject line.
    pub culprit_subject: Option<String>,
    /// The failing result's page.
    pub link: Option<String>,
}

/// An issue first seen in this checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueItem {
    /// Issue id.
    pub id: String,
    /// Its latest version.
    pub version: u32,
    /// Its comment (what went wrong).
    pub comment: Option<String>,
    /// Culprits: `code`, `tool`, `harness`.
    pub culprit: Vec<String>,
    /// Results of this checkout it is linked to.
    pub incidents: usize,
    /// The issue's page.
    pub link: Option<String>,
}

/// Links to the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Links {
    /// The checkout's page.
    pub checkout: Option<String>,
    /// The regressions page.
    pub regressions: Option<String>,
}

/// Everything a checkout's report says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The checkout.
    pub checkout: CheckoutInfo,
    /// Result counts.
    pub counts: Counts,
    /// Regressions whose first failure is this checkout.
    pub new_regressions: Vec<RegressionItem>,
    /// Open regressions failing again on this checkout.
    pub still_failing: Vec<RegressionItem>,
    /// Regressions this checkout fixed.
    pub fixed: Vec<RegressionItem>,
    /// Issues first seen in this checkout.
    pub new_issues: Vec<IssueItem>,
    /// Builds and tests with status MISS (at most [`MAX_MISSING`]).
    pub missing: Vec<Missing>,
    /// How many there are.
    pub missing_total: usize,
    /// Dashboard links (none without a base URL).
    pub links: Links,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Percent-encodes a path segment or query value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// At most `max` characters of `s` (an ellipsis ends a shortened one).
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

impl Report {
    /// `tree/branch`.
    pub fn tree(&self) -> String {
        let c = &self.checkout;
        format!(
            "{}/{}",
            c.tree_name.as_deref().unwrap_or("(no tree)"),
            c.git_repository_branch.as_deref().unwrap_or("(no branch)")
        )
    }

    /// The commit's `git describe` name, else its short hash, else the checkout id.
    pub fn describe(&self) -> String {
        let c = &self.checkout;
        c.git_commit_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| c.git_commit_hash.as_deref().map(|h| short(h).to_string()))
            .unwrap_or_else(|| c.id.clone())
    }

    /// `2 new regressions, 1 new issue`, or `no new regressions`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.new_regressions.is_empty() {
            parts.push(plural(
                self.new_regressions.len(),
                "new regression",
                "new regressions",
            ));
        }
        if !self.new_issues.is_empty() {
            parts.push(plural(self.new_issues.len(), "new issue", "new issues"));
        }
        if parts.is_empty() {
            parts.push("no new regressions".into());
        }
        parts.join(", ")
    }

    /// The e-mail subject: `[kernelci] tree/branch describe: summary`.
    pub fn subject(&self) -> String {
        format!(
            "[kernelci] {} {}: {}",
            self.tree(),
            self.describe(),
            self.summary()
        )
    }

    fn regression_lines(out: &mut String, title: &str, items: &[RegressionItem]) {
        if items.is_empty() {
            return;
        }
        out.push_str(&format!("\n{title} ({}):\n", items.len()));
        for r in items {
            out.push_str(&format!("  - {}\n", r.what));
            let checkouts = plural(
                usize::try_from(r.fail_count).unwrap_or(0),
                "checkout",
                "checkouts",
            );
            out.push_str(&format!(
                "    class {}, failing on {checkouts} since {} (last pass {})\n",
                r.class,
                short(&r.first_fail_commit),
                short(&r.last_pass_commit)
            ));
            if let Some(culprit) = &r.culprit {
                match &r.culprit_subject {
                    Some(s) => out.push_str(&format!("    culprit: {} \"{s}\"\n", short(culprit))),
                    None => out.push_str(&format!("    culprit: {}\n", short(culprit))),
                }
            }
            if let Some(link) = &r.link {
                out.push_str(&format!("    {link}\n"));
            }
        }
    }

    /// The plain-text body of the e-mail.
    pub fn text(&self) -> String {
        let c = &self.checkout;
        let mut out = format!("{} {}\n\n", self.tree(), self.describe());
        let mut field = |name: &str, value: Option<&str>| {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                out.push_str(&format!("{name:<11} {v}\n"));
            }
        };
        field("commit:", c.git_commit_hash.as_deref());
        field("repository:", c.git_repository_url.as_deref());
        field("origin:", Some(&c.origin));
        field("started:", c.start_time.as_deref());
        field("dashboard:", self.links.checkout.as_deref());
        out.push_str(&format!(
            "\nBuilds: {}\nBoots:  {}\nTests:  {}\n",
            self.counts.builds.line(),
            self.counts.boots.line(),
            self.counts.tests.line()
        ));
        Self::regression_lines(&mut out, "New regressions", &self.new_regressions);
        Self::regression_lines(&mut out, "Still failing", &self.still_failing);
        Self::regression_lines(&mut out, "Fixed", &self.fixed);
        if !self.new_issues.is_empty() {
            out.push_str(&format!("\nNew issues ({}):\n", self.new_issues.len()));
            for i in &self.new_issues {
                out.push_str(&format!(
                    "  - {} (version {}): {}\n",
                    i.id,
                    i.version,
                    i.comment.as_deref().unwrap_or("(no comment)")
                ));
                let mut detail = plural(i.incidents, "result", "results") + " in this checkout";
                if !i.culprit.is_empty() {
                    detail.push_str(&format!(", culprit {}", i.culprit.join("/")));
                }
                out.push_str(&format!("    {detail}\n"));
                if let Some(link) = &i.link {
                    out.push_str(&format!("    {link}\n"));
                }
            }
        }
        if self.missing_total > 0 {
            out.push_str(&format!("\nMissing results ({}):\n", self.missing_total));
            for m in &self.missing {
                match &m.platform {
                    Some(p) => out.push_str(&format!("  - {} {} on {p}\n", m.kind, m.name)),
                    None => out.push_str(&format!("  - {} {}\n", m.kind, m.name)),
                }
            }
            if self.missing_total > self.missing.len() {
                out.push_str(&format!(
                    "  ... and {} more\n",
                    self.missing_total - self.missing.len()
                ));
            }
        }
        if let Some(link) = &self.links.regressions {
            out.push_str(&format!("\nAll regressions: {link}\n"));
        }
        out
    }

    /// The JSON webhook body: the report's data, with `event`, `subject` and `summary`.
    pub fn json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Value::Object(map) = &mut v {
            let mut out = serde_json::Map::new();
            out.insert("event".into(), json!("checkout_report"));
            out.insert("subject".into(), json!(self.subject()));
            out.insert("summary".into(), json!(self.summary()));
            out.extend(std::mem::take(map));
            return Value::Object(out);
        }
        v
    }

    /// A Discord webhook body: `content` (at most 2,000 characters) and at most 10
    /// `embeds` (titles at most 256 characters, descriptions 300, so all of them stay under
    /// Discord's 6,000 in total).
    pub fn discord(&self) -> Value {
        let mut content = format!(
            "**{}**\nBuilds: {} | Boots: {} | Tests: {}",
            self.subject(),
            self.counts.builds.line(),
            self.counts.boots.line(),
            self.counts.tests.line()
        );
        if self.missing_total > 0 {
            content.push_str(&format!(
                "\n{} missing",
                plural(self.missing_total, "result", "results")
            ));
        }
        if let Some(link) = &self.links.checkout {
            content.push_str(&format!("\n{link}"));
        }
        let mut embeds: Vec<Value> = Vec::new();
        let regression = |title: &str, color: u32, r: &RegressionItem| {
            let mut d = format!(
                "class {}, {} failing",
                r.class,
                plural(
                    usize::try_from(r.fail_count).unwrap_or(0),
                    "checkout",
                    "checkouts"
                )
            );
            if let Some(c) = &r.culprit {
                d.push_str(&format!("\nculprit: {}", short(c)));
                if let Some(s) = &r.culprit_subject {
                    d.push_str(&format!(" \"{s}\""));
                }
            }
            embed(
                &format!("{title}: {}", r.what),
                &d,
                color,
                r.link.as_deref(),
            )
        };
        for r in &self.new_regressions {
            embeds.push(regression("New regression", 0xd9_3025, r));
        }
        for r in &self.still_failing {
            embeds.push(regression("Still failing", 0xe6_7e22, r));
        }
        for i in &self.new_issues {
            let d = format!(
                "{} in this checkout",
                plural(i.incidents, "result", "results")
            );
            let title = format!(
                "New issue: {}",
                i.comment.as_deref().unwrap_or(i.id.as_str())
            );
            embeds.push(embed(&title, &d, 0x8e_44ad, i.link.as_deref()));
        }
        for r in &self.fixed {
            embeds.push(regression("Fixed", 0x2e_cc71, r));
        }
        if embeds.len() > 10 {
            let more = embeds.len() - 9;
            embeds.truncate(9);
            embeds.push(embed(
                &format!("... and {more} more"),
                "see the dashboard",
                0x95_a5a6,
                self.links.regressions.as_deref(),
            ));
        }
        json!({"content": clip(&content, 2000), "embeds": embeds})
    }
}

fn embed(title: &str, description: &str, color: u32, url: Option<&str>) -> Value {
    let mut e = json!({
        "title": clip(title, 256),
        "description": clip(description, 300),
        "color": color,
    });
    if let Some(u) = url {
        e["url"] = json!(u);
    }
    e
}

fn regression_item(r: &Regression, base: Option<&str>) -> RegressionItem {
    let bisection = r.bisection.as_ref();
    let field = |k: &str| {
        bisection
            .and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let page = match r.identity.kind {
        ResultKind::Build => "build",
        ResultKind::Test => "test",
    };
    let object = if r.last_fail.object_id.is_empty() {
        &r.first_fail.object_id
    } else {
        &r.last_fail.object_id
    };
    RegressionItem {
        id: r.id.clone(),
        what: r.identity.label(),
        kind: r.identity.kind.as_str().to_string(),
        state: r.state.as_str().to_string(),
        class: r.class.as_str().to_string(),
        platform: r.identity.platform.clone(),
        fail_count: r.fail_count,
        last_pass_commit: r.last_pass.commit.clone(),
        first_fail_commit: r.first_fail.commit.clone(),
        culprit: field("culprit"),
        culprit_subject: field("subject"),
        link: base
            .filter(|_| !object.is_empty())
            .map(|b| format!("{b}/{page}/{}", enc(object))),
    }
}

/// Reads the report of checkout `id` (`None`: no such checkout). `base` is the dashboard's
/// base URL (no trailing slash) for links.
pub async fn gather(
    db: &KcidbDb,
    id: &str,
    base: Option<&str>,
) -> Result<Option<Report>, NotifyError> {
    let Some(checkout) = store::checkout(db, id).await? else {
        return Ok(None);
    };
    let counts = kernelci_kcidb::query::trees::checkout_counts(db, &[id.to_string()])
        .await?
        .remove(id)
        .unwrap_or_default();
    let counts = Counts {
        builds: counts.builds.into(),
        boots: counts.boots.into(),
        tests: counts.tests.into(),
    };
    let regressions = list(
        db,
        &RegressionFilter {
            tree_name: checkout.tree_name.clone(),
            branch: checkout.git_repository_branch.clone(),
            limit: 1000,
            ..RegressionFilter::default()
        },
    )
    .await?;
    let (mut new, mut still, mut fixed) = (Vec::new(), Vec::new(), Vec::new());
    for r in &regressions {
        if r.identity.git_repository_url != checkout.git_repository_url.clone().unwrap_or_default()
        {
            continue;
        }
        if r.fixed.as_ref().is_some_and(|f| f.checkout_id == id) {
            fixed.push(regression_item(r, base));
        } else if r.first_fail.checkout_id == id {
            new.push(regression_item(r, base));
        } else if r.last_fail.checkout_id == id && r.state != RegressionState::Fixed {
            still.push(regression_item(r, base));
        }
    }
    for list in [&mut new, &mut still, &mut fixed] {
        list.sort_by(|a, b| a.what.cmp(&b.what));
    }
    let linked = store::checkout_issues(db, id).await?;
    let ids: Vec<String> = linked.keys().cloned().collect();
    let firsts = kernelci_kcidb::query::issues::first_incidents(db, &ids).await?;
    let mut new_issues = Vec::new();
    for (issue_id, incidents) in &linked {
        let first_here = firsts.get(issue_id).is_some_and(|f| {
            f.git_commit_hash == checkout.git_commit_hash
                && f.git_repository_branch == checkout.git_repository_branch
                && f.tree_name == checkout.tree_name
        });
        if !first_here {
            continue;
        }
        let issue = kernelci_kcidb::query::issues::get(db, issue_id, None).await?;
        let (version, comment, culprit) = match &issue {
            Some(i) => {
                let mut culprit = Vec::new();
                if let Some(c) = &i.culprit {
                    for (set, name) in [(c.code, "code"), (c.tool, "tool"), (c.harness, "harness")]
                    {
                        if set == Some(true) {
                            culprit.push(name.to_string());
                        }
                    }
                }
                (i.version, i.comment.clone(), culprit)
            }
            None => (0, None, Vec::new()),
        };
        new_issues.push(IssueItem {
            id: issue_id.clone(),
            version,
            comment,
            culprit,
            incidents: *incidents,
            link: base.map(|b| format!("{b}/issue/{}?version={version}", enc(issue_id))),
        });
    }
    new_issues.sort_by(|a, b| a.id.cmp(&b.id));
    let (missing, missing_total) = store::missing(db, id, MAX_MISSING).await?;
    let links = Links {
        checkout: base.map(|b| {
            let commit = checkout.git_commit_hash.as_deref().unwrap_or_default();
            format!("{b}/tree/{}?origin={}", enc(commit), enc(&checkout.origin))
        }),
        regressions: base.map(|b| format!("{b}/regressions")),
    };
    Ok(Some(Report {
        checkout,
        counts,
        new_regressions: new,
        still_failing: still,
        fixed,
        new_issues,
        missing,
        missing_total,
        links,
    }))
}
