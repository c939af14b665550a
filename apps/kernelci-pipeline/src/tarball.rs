//! The tarball role (specs/pipeline.md §1.2): for each new checkout, fetch the tree into a
//! bare mirror, check the commit, pack `linux-<tree>-<branch>-<describe>.tar.gz`, store it
//! and move the checkout to `available` with its revision metadata and a holdoff.
//!
//! Differences from upstream: a git failure marks that checkout failed and the role goes on
//! (upstream exits the process on a second failure); one bare mirror per tree instead of one
//! work tree with a remote per tree (no `reset --hard`/`clean` between checkouts).

use serde_json::{Value, json};

use crate::events::EventStream;
use crate::{Ctx, git, iso_in};

/// Process checkouts as they are created (`events`: the durable `tarball:node` stream).
pub async fn run(ctx: Ctx, mut events: EventStream) {
    loop {
        let Some(ev) = events.next().await else {
            continue;
        };
        if !is_new_checkout(&ev) {
            continue;
        }
        let Some(id) = ev.get("id").and_then(Value::as_str) else {
            continue;
        };
        if let Err(e) = process(&ctx, id).await {
            tracing::error!("tarball: checkout {id}: {e:#}");
        }
    }
}

/// The event filter: `{op: created, kind: checkout, state: running}`, not a patchset.
pub fn is_new_checkout(ev: &Value) -> bool {
    ev["op"] == "created"
        && ev["kind"] == "checkout"
        && ev["state"] == "running"
        && ev["name"] != "patchset"
}

/// Make and store the tarball of checkout `id`, then update the node.
pub async fn process(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let Some(mut node) = ctx.api.node(id).await? else {
        anyhow::bail!("node {id} does not exist");
    };
    if node["state"] != "running" {
        // Redelivered event (at-least-once): already done.
        return Ok(());
    }
    let rev = node["data"]["kernel_revision"].clone();
    let (tree, url, branch, commit) = (
        rev["tree"].as_str().unwrap_or_default().to_string(),
        rev["url"].as_str().unwrap_or_default().to_string(),
        rev["branch"].as_str().unwrap_or_default().to_string(),
        rev["commit"].as_str().unwrap_or_default().to_string(),
    );
    match make_tarball(ctx, &tree, &url, &branch, &commit).await {
        Ok((tarball_url, info)) => {
            let r = node["data"]["kernel_revision"]
                .as_object_mut()
                .ok_or_else(|| anyhow::anyhow!("kernel_revision is not an object"))?;
            r.extend(info);
            node["state"] = "available".into();
            node["result"] = "pass".into();
            node["artifacts"] = json!({"tarball": tarball_url});
            node["holdoff"] = iso_in(ctx.settings.holdoff).into();
            ctx.api.update(&node).await?;
            tracing::info!("tarball: checkout {id}: {tarball_url}");
        }
        Err(e) => {
            tracing::warn!("tarball: checkout {id}: {e:#}");
            node["state"] = "done".into();
            node["result"] = "fail".into();
            node["data"]["error_code"] = "git_checkout_failure".into();
            node["data"]["error_msg"] = format!("{e:#}")
                .chars()
                .take(1000)
                .collect::<String>()
                .into();
            ctx.api.update(&node).await?;
        }
    }
    Ok(())
}

async fn make_tarball(
    ctx: &Ctx,
    tree: &str,
    url: &str,
    branch: &str,
    commit: &str,
) -> anyhow::Result<(String, serde_json::Map<String, Value>)> {
    if !git::is_commit_id(commit) {
        anyhow::bail!("invalid commit id {commit:?}");
    }
    let mirror = git::Mirror::new(&ctx.settings.work_dir.join("git"), tree);
    if let Err(first) = mirror.fetch(url, branch).await {
        // A broken mirror: start again from scratch once.
        tracing::warn!("tarball: {tree}: {first}; re-cloning");
        let _ = tokio::fs::remove_dir_all(&mirror.dir).await;
        mirror.fetch(url, branch).await?;
    }
    let full = mirror.verify(commit).await.map_err(|e| {
        anyhow::anyhow!(
            "commit {commit} is not in {url} (branch {branch}): {}",
            e.reason
        )
    })?;
    let info = mirror.revision_info(tree, branch, &full).await?;
    let describe = info["describe"].as_str().unwrap_or(commit);
    let name = format!("linux-{tree}-{branch}-{describe}").replace('/', "_");
    let out_dir = ctx.settings.work_dir.join("tarballs");
    tokio::fs::create_dir_all(&out_dir).await?;
    let local = out_dir.join(format!("{name}.tar.gz"));
    mirror.archive(&full, &name, &local).await?;
    let stored = ctx.storage.upload(&local, &format!("{name}.tar.gz")).await;
    let _ = tokio::fs::remove_file(&local).await;
    Ok((stored?, info))
}
