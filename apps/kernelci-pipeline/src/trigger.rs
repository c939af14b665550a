//! The trigger role (specs/pipeline.md §1.1): poll every configured tree/branch and create
//! a checkout node for each new head commit.
//!
//! Differences from upstream, on purpose:
//! - a commit is deduplicated per tree **and branch** (upstream counts checkouts of the
//!   commit across all trees, so one tree's commit hides the same commit on another branch);
//! - the checkout carries `data.schedule_key` = `checkout/<tree>/<branch>/<commit>/<attempt>`,
//!   unique in the store, so two triggers racing (or one restarted between its count and its
//!   create) never make two checkouts;
//! - `frequency` is compared in UTC (upstream uses naive local time).

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::client::ApiError;
use crate::{Ctx, SERVICE_PIPELINE, git, iso, iso_in};

/// What one pass did for one build config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A checkout node was created (its id).
    Created(String),
    /// Nothing to do, and why.
    Skipped(String),
}

/// Run the trigger until the task is dropped (`poll_period` 0: one pass).
pub async fn run(ctx: Ctx) {
    let s = &ctx.settings.trigger;
    tokio::time::sleep(s.startup_delay).await;
    loop {
        for (name, outcome) in pass(&ctx).await {
            match outcome {
                Outcome::Created(id) => tracing::info!("trigger: {name}: created checkout {id}"),
                Outcome::Skipped(why) => tracing::debug!("trigger: {name}: {why}"),
            }
        }
        if s.poll_period.is_zero() {
            return;
        }
        tokio::time::sleep(s.poll_period).await;
    }
}

/// One pass over every build config whose tree is selected.
pub async fn pass(ctx: &Ctx) -> Vec<(String, Outcome)> {
    let mut out = Vec::new();
    for (name, bc) in &ctx.config.build_configs {
        if !tree_selected(ctx.settings.trigger.trees.as_deref(), &bc.tree) {
            continue;
        }
        let outcome = match trigger_one(ctx, name).await {
            Ok(o) => o,
            Err(e) => Outcome::Skipped(format!("error: {e}")),
        };
        out.push((name.clone(), outcome));
    }
    out
}

/// `--trees`: `a,b` only these, `!a,b` all but these (ignored when ≤ 1 character).
pub fn tree_selected(filter: Option<&str>, tree: &str) -> bool {
    let Some(f) = filter.filter(|f| f.len() > 1) else {
        return true;
    };
    let (deny, list) = match f.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, f),
    };
    let listed = list.split(',').any(|t| t.trim() == tree);
    listed != deny
}

/// Check one build config's branch head and create its checkout if it is new.
pub async fn trigger_one(ctx: &Ctx, build_config: &str) -> anyhow::Result<Outcome> {
    let Some(bc) = ctx.config.build_configs.get(build_config) else {
        anyhow::bail!("no build config {build_config}");
    };
    let Some(tree) = ctx.config.trees.get(&bc.tree) else {
        anyhow::bail!(
            "build config {build_config}: tree {:?} is not in `trees`",
            bc.tree
        );
    };
    let url = tree.url.clone();
    let branch = if bc.branch.starts_with("http://") || bc.branch.starts_with("https://") {
        match nipa_branch(&bc.branch).await {
            Ok(b) => b,
            Err(e) => return Ok(Outcome::Skipped(format!("branch list {}: {e}", bc.branch))),
        }
    } else {
        bc.branch.clone()
    };
    let force = ctx.settings.trigger.force;
    if let Some(secs) = bc
        .frequency
        .as_deref()
        .and_then(kernelci_sched::matching::parse_frequency)
        && !force
    {
        let since = crate::ago(secs);
        let recent = ctx
            .api
            .count(&[
                ("kind", "checkout".into()),
                ("data.kernel_revision.tree", bc.tree.clone()),
                ("data.kernel_revision.branch", branch.clone()),
                ("created__gte", iso(since)),
            ])
            .await?;
        if recent > 0 {
            return Ok(Outcome::Skipped(format!(
                "a checkout was made less than {secs} s ago (frequency)"
            )));
        }
    }
    let Some(commit) = git::remote_head(&url, &branch).await? else {
        return Ok(Outcome::Skipped(format!("{url} has no branch {branch}")));
    };
    let same = [
        ("kind", "checkout".to_string()),
        ("data.kernel_revision.tree", bc.tree.clone()),
        ("data.kernel_revision.branch", branch.clone()),
        ("data.kernel_revision.commit", commit.clone()),
    ];
    let n = ctx.api.count(&same).await?;
    let mut incomplete_filter = same.to_vec();
    incomplete_filter.push(("result", "incomplete".into()));
    let ni = ctx.api.count(&incomplete_filter).await?;
    if ni >= 3 {
        return Ok(Outcome::Skipped(format!(
            "{commit}: {ni} incomplete checkouts already, giving up on this commit"
        )));
    }
    if n > 0 && ni != n && !force {
        return Ok(Outcome::Skipped(format!("{commit} already has a checkout")));
    }
    let now = chrono::Utc::now();
    let mut revision = json!({"tree": bc.tree, "url": url, "branch": branch, "commit": commit});
    let mut data = json!({
        "kernel_revision": revision.take(),
        "schedule_key": format!("checkout/{}/{}/{}/{}", bc.tree, branch, commit, n),
    });
    if let Some(archs) = &bc.architectures {
        data["architecture_filter"] = json!(archs);
    }
    let node = json!({
        "kind": "checkout",
        "name": "checkout",
        "path": ["checkout"],
        "data": data,
        "timeout": iso_in(Duration::from_secs(60 * ctx.settings.trigger.timeout_minutes)),
        "treeid": treeid(&url, &branch, now),
        "submitter": SERVICE_PIPELINE,
    });
    match ctx.api.create_keyed(&node).await {
        Ok(created) => Ok(Outcome::Created(
            created
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )),
        Err(ApiError::Conflict(_)) => Ok(Outcome::Skipped(format!(
            "{commit}: another trigger created this checkout"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// A branch given as an http(s) URL (NIPA's list, e.g. netdev-testing): a JSON list of
/// `{branch, date}`; the entry with the latest `date` wins, as upstream.
pub async fn nipa_branch(url: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let list: Value = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    latest_branch(&list).ok_or_else(|| anyhow::anyhow!("no entry with a branch and a date"))
}

/// The `branch` of the entry with the greatest `date` in a NIPA branch list.
pub fn latest_branch(list: &Value) -> Option<String> {
    list.as_array()?
        .iter()
        .filter_map(|e| Some((e["date"].as_str()?, e["branch"].as_str()?)))
        .max_by(|a, b| a.0.cmp(b.0))
        .map(|(_, b)| b.to_string())
}

/// Upstream's tree id: sha256 of url + branch + the current time.
pub fn treeid(url: &str, branch: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "{url}{branch}{}",
        now.format("%Y-%m-%d %H:%M:%S%.6f")
    ));
    format!("{:x}", h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nipa_lists_pick_the_latest_branch() {
        let list = json!([
            {"branch": "net-next-2026-11-27--18-00", "date": "2026-11-27T18:00:00+00:00"},
            {"branch": "net-next-2026-11-28--06-00", "date": "2026-11-28T06:00:00+00:00"},
            {"branch": "broken"},
        ]);
        assert_eq!(latest_branch(&list).unwrap(), "net-next-2026-11-28--06-00");
        assert!(latest_branch(&json!({})).is_none());
    }

    #[test]
    fn tree_filter() {
        assert!(tree_selected(None, "mainline"));
        assert!(tree_selected(Some("!"), "mainline"));
        assert!(tree_selected(Some("mainline,next"), "next"));
        assert!(!tree_selected(Some("mainline,next"), "stable"));
        assert!(!tree_selected(Some("!mainline"), "mainline"));
        assert!(tree_selected(Some("!mainline"), "next"));
    }
}
