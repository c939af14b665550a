//! Detail pages: a build (`/build/{id}`: metadata, artifacts, log excerpt, its tests and
//! issues; a failure's class beside its status), a test or boot (`/test/{id}`), an issue (`/issue/{id}?version=`, with the builds
//! and tests it was seen in).

use axum::extract::{Path, RawQuery, State};
use axum::response::Html;
use kernelci_kcidb::db::KcidbDb;
use kernelci_kcidb::query::{issues, results};
use kernelci_kcidb::{Resource, Status};

use super::html::{
    class_pill, culprits, enc, esc, fields, link, opt, page, status_pill, table, url_link,
};
use super::{PageError, PageResult};
use crate::ApiError;
use crate::params::Params;

fn not_found(what: &str, id: &str) -> PageError {
    PageError::from(ApiError::NotFound(format!("{what} {id} not found")))
}

fn files(list: &Option<Vec<Resource>>) -> String {
    list.as_ref()
        .map(|files| {
            files
                .iter()
                .map(|f| url_link(&Some(f.url.clone())).replace(&esc(&f.url), &esc(&f.name)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The raw log link, and the viewer with logspec findings for http(s) logs.
fn log_links(url: &Option<String>, kind: &str, id: &str) -> String {
    match url.as_deref() {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => format!(
            "{} ({})",
            link(&format!("/log/{kind}/{}", enc(id)), "view with findings"),
            link(u, "raw")
        ),
        _ => url_link(url),
    }
}

/// The status pill, and for a failure the class the regression tracker gave it (kernel,
/// test or infrastructure) once it has recorded the result.
async fn status_with_class(
    db: &KcidbDb,
    status: Option<Status>,
    id: &str,
) -> Result<String, PageError> {
    let mut out = status_pill(status);
    if matches!(status, Some(Status::Fail | Status::Error)) {
        let classes = kernelci_kcidb::regress::track::classes(db, &[id.to_string()]).await?;
        if let Some(c) = classes.get(id) {
            out.push_str(&class_pill(*c));
        }
    }
    Ok(out)
}

fn excerpt(text: &Option<String>) -> String {
    text.as_deref()
        .map(|t| format!("<h2>Log excerpt</h2><pre>{}</pre>", esc(t)))
        .unwrap_or_default()
}

async fn issue_list(db: &KcidbDb, builds: bool, id: &str) -> Result<String, PageError> {
    let links = issues::links(db, builds, &[id.to_string()]).await?;
    let rows: Vec<Vec<String>> = links
        .iter()
        .map(|l| {
            vec![
                link(
                    &format!("/issue/{}?version={}", enc(&l.issue_id), l.issue_version),
                    &l.issue_id,
                ),
                l.issue_version.to_string(),
                opt(&l.comment),
            ]
        })
        .collect();
    Ok(format!(
        "<h2>Issues</h2>{}",
        table(&["Issue", "Version", "Comment"], &rows)
    ))
}

/// `/build/{id}`.
pub async fn build(State(db): State<KcidbDb>, Path(id): Path<String>) -> PageResult {
    let Some(row) = results::build(&db, &id).await? else {
        return Err(not_found("build", &id));
    };
    let b = &row.build;
    let c = row.checkout.as_deref();
    let tree = c
        .and_then(|c| c.git_commit_hash.as_ref().map(|h| (c, h)))
        .map(|(c, h)| {
            link(
                &format!("/tree/{}?origin={}", enc(h), enc(&c.origin)),
                &format!("{} {}", c.tree_name.as_deref().unwrap_or(""), h),
            )
        })
        .unwrap_or_default();
    let status = status_with_class(&db, b.status, &id).await?;
    let mut body = fields(&[
        ("Status", status),
        ("Checkout", tree),
        (
            "Branch",
            c.map(|c| opt(&c.git_repository_branch)).unwrap_or_default(),
        ),
        ("Architecture", opt(&b.architecture)),
        ("Config", opt(&b.config_name)),
        ("Compiler", opt(&b.compiler)),
        ("Origin", esc(&b.origin)),
        ("Started", opt(&b.start_time)),
        (
            "Duration",
            b.duration.map(|d| format!("{d:.0} s")).unwrap_or_default(),
        ),
        ("Command", opt(&b.command)),
        ("Log", log_links(&b.log_url, "build", &id)),
        ("Kernel config", url_link(&b.config_url)),
        ("Output files", files(&b.output_files)),
        ("Comment", opt(&b.comment)),
    ]);
    body.push_str(&excerpt(&b.log_excerpt));
    body.push_str(&issue_list(&db, true, &id).await?);
    let tests = results::tests(&db, &results::Scope::Build(id.clone()), None, &[]).await?;
    let rows: Vec<Vec<String>> = tests
        .iter()
        .map(|t| {
            vec![
                link(
                    &format!("/test/{}", enc(&t.test.id)),
                    t.test.path.as_deref().unwrap_or(&t.test.id),
                ),
                status_pill(t.test.status),
                opt(&t.test.start_time),
            ]
        })
        .collect();
    body.push_str(&format!(
        "<h2>Tests ({})</h2>{}",
        tests.len(),
        table(&["Path", "Status", "Started"], &rows)
    ));
    let title = format!("Build {}", b.config_name.as_deref().unwrap_or(&b.id));
    let kci = format!("kci results build --id {id}");
    Ok(Html(page(&title, "/tree", &body, Some(&kci))))
}

/// `/test/{id}` (boots too).
pub async fn test(State(db): State<KcidbDb>, Path(id): Path<String>) -> PageResult {
    let Some(row) = results::test(&db, &id).await? else {
        return Err(not_found("test", &id));
    };
    let t = &row.test;
    let env = t.environment.as_ref();
    let compatibles = env
        .and_then(|e| e.compatible.clone())
        .unwrap_or_default()
        .join(", ");
    let misc = |key: &str| {
        env.and_then(|e| e.misc.as_ref())
            .and_then(|m| m.get(key))
            .and_then(|v| v.as_str())
            .map(esc)
            .unwrap_or_default()
    };
    let build = link(&format!("/build/{}", enc(&t.build_id)), &t.build_id);
    let status = status_with_class(&db, t.status, &id).await?;
    let mut body = fields(&[
        ("Status", status),
        ("Path", opt(&t.path)),
        ("Build", build),
        (
            "Architecture",
            row.build
                .as_ref()
                .map(|b| opt(&b.architecture))
                .unwrap_or_default(),
        ),
        ("Platform", misc("platform")),
        ("Lab", misc("lab")),
        ("Compatibles", esc(&compatibles)),
        ("Origin", esc(&t.origin)),
        ("Started", opt(&t.start_time)),
        (
            "Duration",
            t.duration.map(|d| format!("{d:.1} s")).unwrap_or_default(),
        ),
        ("Log", log_links(&t.log_url, "test", &id)),
        ("Output files", files(&t.output_files)),
        ("Comment", opt(&t.comment)),
    ]);
    body.push_str(&excerpt(&t.log_excerpt));
    body.push_str(&issue_list(&db, false, &id).await?);
    let boot = kernelci_kcidb::query::is_boot_path(t.path.as_deref());
    let title = format!(
        "{} {}",
        if boot { "Boot" } else { "Test" },
        t.path.as_deref().unwrap_or(&t.id)
    );
    let kci = format!(
        "kci results {} --id {id}",
        if boot { "boot" } else { "test" }
    );
    Ok(Html(page(&title, "/tree", &body, Some(&kci))))
}

/// `/issue/{id}?version=N` (the highest version without one).
pub async fn issue(
    State(db): State<KcidbDb>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let params = Params::parse(raw.as_deref());
    let version = params
        .int("version", 0, i64::from(u32::MAX))?
        .and_then(|v| u32::try_from(v).ok());
    let Some(issue) = issues::get(&db, &id, version).await? else {
        return Err(not_found("issue", &id));
    };
    let culprit = culprits(&issue.culprit);
    let mut body = fields(&[
        ("Version", issue.version.to_string()),
        ("Origin", esc(&issue.origin)),
        ("Comment", opt(&issue.comment)),
        ("Culprit", culprit),
        (
            "Categories",
            esc(&issue.categories.clone().unwrap_or_default().join(", ")),
        ),
        ("Report", url_link(&issue.report_url)),
        ("Report subject", opt(&issue.report_subject)),
        ("Last seen", opt(&issue.timestamp)),
    ]);
    let scope = results::Scope::Issue {
        id: issue.id.clone(),
        version: issue.version,
    };
    let builds = results::builds(&db, &scope, &[]).await?;
    let tests = results::tests(&db, &scope, None, &[]).await?;
    let row = |href: String, text: &str, status: Option<Status>, tree: String| {
        vec![link(&href, text), status_pill(status), tree]
    };
    let tree_of = |c: Option<&kernelci_kcidb::Checkout>| {
        c.map(|c| {
            format!(
                "{} {}",
                c.tree_name.as_deref().unwrap_or(""),
                c.git_repository_branch.as_deref().unwrap_or("")
            )
        })
        .map(|t| esc(&t))
        .unwrap_or_default()
    };
    let build_rows: Vec<Vec<String>> = builds
        .iter()
        .map(|b| {
            row(
                format!("/build/{}", enc(&b.build.id)),
                &b.build.id,
                b.build.status,
                tree_of(b.checkout.as_deref()),
            )
        })
        .collect();
    let test_rows: Vec<Vec<String>> = tests
        .iter()
        .map(|t| {
            row(
                format!("/test/{}", enc(&t.test.id)),
                t.test.path.as_deref().unwrap_or(&t.test.id),
                t.test.status,
                tree_of(t.checkout.as_deref()),
            )
        })
        .collect();
    body.push_str(&format!(
        "<h2>Builds ({})</h2>{}<h2>Tests ({})</h2>{}",
        builds.len(),
        table(&["Build", "Status", "Tree"], &build_rows),
        tests.len(),
        table(&["Test", "Status", "Tree"], &test_rows)
    ));
    let title = format!("Issue {}", issue.id);
    let kci = format!("kci results issue --id {}", issue.id);
    Ok(Html(page(&title, "/issues", &body, Some(&kci))))
}
