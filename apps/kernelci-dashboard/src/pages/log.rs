//! The log viewer: `/log/build/{id}` and `/log/test/{id}` fetch the object's `log_url`,
//! run the logspec parser triage would use (kbuild for builds; by test path otherwise, with
//! the beyond-upstream detectors), and show the findings above the log, their lines
//! highlighted and linked (`#L123`).
//!
//! Only `http://` and `https://` logs are fetched: a `log_url` comes from submitted data and
//! must not make the server read its own files. Logs are bounded (32 MiB, gzip understood)
//! and at most [`MAX_LINES`] lines are rendered.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Html;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::results;
use kernelci_kcidb_server::logfetch::{FetchLimits, LogFetcher};
use kernelci_kcidb_server::triage::{Kind, parser_for};
use kernelci_logspec::{Options, Parser, parse_str_with};

use super::html::{enc, esc, link, page, table};
use super::{PageError, PageResult};
use crate::ApiError;

/// Log lines rendered at most.
pub const MAX_LINES: usize = 50_000;

/// One fetcher (and its cache) for the process.
fn fetcher() -> &'static LogFetcher {
    static FETCHER: OnceLock<LogFetcher> = OnceLock::new();
    FETCHER.get_or_init(|| {
        LogFetcher::new(FetchLimits {
            max_bytes: 32 << 20,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            cache_bytes: 64 << 20,
        })
    })
}

/// `/log/build/{id}`.
pub async fn build_log(State(db): State<KcidbDb>, Path(id): Path<String>) -> PageResult {
    let Some(row) = results::build(&db, &id).await? else {
        return Err(ApiError::NotFound(format!("build {id} not found")).into());
    };
    let back = link(&format!("/build/{}", enc(&id)), &format!("build {id}"));
    view(row.build.log_url.as_deref(), Parser::Kbuild, &back).await
}

/// `/log/test/{id}`.
pub async fn test_log(State(db): State<KcidbDb>, Path(id): Path<String>) -> PageResult {
    let Some(row) = results::test(&db, &id).await? else {
        return Err(ApiError::NotFound(format!("test {id} not found")).into());
    };
    let parser = parser_for(Kind::Test, row.test.path.as_deref());
    let back = link(&format!("/test/{}", enc(&id)), &format!("test {id}"));
    view(row.test.log_url.as_deref(), parser, &back).await
}

async fn view(url: Option<&str>, parser: Parser, back: &str) -> PageResult {
    let Some(url) = url else {
        return Err(ApiError::NotFound("no log_url for this result".into()).into());
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(PageError::from(ApiError::BadRequest(format!(
            "only http(s) logs are shown here, not {url:?}"
        ))));
    }
    let bytes = match fetcher().fetch(url).await {
        Ok((bytes, _)) => bytes,
        Err(e) => {
            let body = format!(
                "<p>{back}: the log at {} could not be fetched: {}</p>",
                link(url, url),
                esc(&e.to_string())
            );
            return Ok(Html(page("Log unavailable", "/tree", &body, None)));
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let options = Options {
        extra: true,
        ..Options::default()
    };
    let result = parse_str_with(&text, parser, &options);
    // Findings by line: (error type, summary).
    let mut marks: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    let mut rows = Vec::new();
    let normalized = kernelci_logspec::normalize_newlines(&text);
    let lines: Vec<&str> = normalized.split('\n').collect();
    // Each error's excerpt (`report`) ends at or before the line it was detected on: mark
    // the excerpt's lines where they are in the log, else the detection line.
    for e in &result.errors {
        let Some(at) = e.line else {
            rows.push(finding_row(None, &e.error_type, &e.error_summary));
            continue;
        };
        let marked = excerpt_lines(&lines, at, &e.report);
        rows.push(finding_row(
            marked.first().copied(),
            &e.error_type,
            &e.error_summary,
        ));
        for n in marked {
            marks
                .entry(n)
                .or_default()
                .push((e.error_type.clone(), e.error_summary.clone()));
        }
    }
    for f in &result.extra {
        if let Some(line) = f.line {
            marks
                .entry(line)
                .or_default()
                .push((f.finding_type.clone(), f.summary.clone()));
        }
        rows.push(finding_row(f.line, &f.finding_type, &f.summary));
    }
    let mut log = String::from("<pre class=\"log\">");
    for (i, line) in lines.iter().enumerate() {
        if i == MAX_LINES {
            log.push_str("\n… (the rest is not shown here: open the raw log)");
            break;
        }
        let n = i as u64 + 1;
        match marks.get(&n) {
            Some(found) => {
                let title: Vec<String> = found.iter().map(|(t, s)| format!("{t}: {s}")).collect();
                let _ = writeln!(
                    log,
                    "<span id=\"L{n}\" class=\"hit\" title=\"{}\">{n:>6}  {}</span>",
                    esc(&title.join("; ")),
                    esc(line)
                );
            }
            None => {
                let _ = writeln!(log, "<span id=\"L{n}\">{n:>6}  {}</span>", esc(line));
            }
        }
    }
    log.push_str("</pre>");
    let body = format!(
        "<p>{back} · raw log: {} · parser <code>{}</code></p><h2>Findings ({})</h2>{}\
         <style>.log .hit{{background:#fbd9d9;display:block}}</style>{log}",
        link(url, url),
        parser.name(),
        rows.len(),
        table(&["Line", "Type", "Summary"], &rows)
    );
    let kci = format!("kci logspec LOG --parser {} --extra", parser.name());
    Ok(Html(page("Log", "/tree", &body, Some(&kci))))
}

/// The 1-based lines of `report` in `lines`, searched backwards from line `at` (at most
/// 500 lines up); `[at]` when the excerpt is not found there.
fn excerpt_lines(lines: &[&str], at: u64, report: &str) -> Vec<u64> {
    let wanted: Vec<&str> = report
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(first) = wanted.first() else {
        return vec![at];
    };
    let end = usize::try_from(at).unwrap_or(usize::MAX).min(lines.len());
    let start = end.saturating_sub(500);
    for i in (start..end).rev() {
        if lines[i].trim_end() == *first {
            let count = wanted.len().min(end.saturating_sub(i).max(1));
            return (i..i + count).map(|n| n as u64 + 1).collect();
        }
    }
    vec![at]
}

fn finding_row(line: Option<u64>, kind: &str, summary: &str) -> Vec<String> {
    vec![
        line.map(|n| format!("<a href=\"#L{n}\">{n}</a>"))
            .unwrap_or_default(),
        esc(kind),
        esc(summary),
    ]
}
