//! Timeout, holdoff and closing (specs/pipeline.md §1.5, §9): one polling loop does all
//! three modes in order (upstream runs three processes).
//!
//! - timeout: a pending node (`running|available|closing`) past its `timeout` goes `done`;
//!   a null result becomes `incomplete` with `error_code: node_timeout`.
//! - holdoff: an `available` node past its `holdoff` goes `closing` while it has pending
//!   descendants, `done` otherwise.
//! - closing: a `closing` node goes `done` once no descendant is pending.
//!
//! Unlike upstream, the timeout mode is not limited to nodes owned by our user: in a
//! self-hosted instance every pending node past its deadline is lost work. Descendants of a
//! checkout are counted with one query on its `treeid` instead of a recursive walk.

use std::time::Duration;

use serde_json::Value;

use crate::{Ctx, iso};

const PENDING: &str = "running,available,closing";

/// Poll forever.
pub async fn run(ctx: Ctx) {
    loop {
        if let Err(e) = pass(&ctx).await {
            tracing::warn!("timeout: {e:#}");
        }
        tokio::time::sleep(ctx.settings.timeout_poll).await;
    }
}

/// One pass of the three modes; how many nodes changed.
pub async fn pass(ctx: &Ctx) -> anyhow::Result<usize> {
    let now = iso(chrono::Utc::now());
    let mut changed = 0;
    // timeout
    let late = ctx
        .api
        .find(&[("state__in", PENDING.into()), ("timeout__lt", now.clone())])
        .await?;
    for stale in late {
        // Re-read just before writing: a job may have reported meanwhile (a full-node PUT
        // of the stale copy would overwrite its result and artifacts).
        let Some(mut node) = fresh(ctx, &stale, |n| {
            matches!(
                n["state"].as_str(),
                Some("running" | "available" | "closing")
            ) && n["timeout"] == stale["timeout"]
        })
        .await
        else {
            continue;
        };
        node["state"] = "done".into();
        if node["result"].is_null() {
            node["result"] = "incomplete".into();
            node["data"]["error_code"] = "node_timeout".into();
            node["data"]["error_msg"] = "Node timed-out".into();
        }
        if ctx.api.update(&node).await.is_ok() {
            changed += 1;
            settled(ctx, &node).await;
        }
    }
    // holdoff
    let held = ctx
        .api
        .find(&[("state", "available".into()), ("holdoff__lt", now)])
        .await?;
    for stale in held {
        let Some(mut node) = fresh(ctx, &stale, |n| n["state"] == "available").await else {
            continue;
        };
        node["state"] = if has_pending_descendants(ctx, &node).await? {
            "closing"
        } else {
            "done"
        }
        .into();
        if ctx.api.update(&node).await.is_ok() {
            changed += 1;
            settled(ctx, &node).await;
        }
    }
    // closing
    for stale in ctx.api.find(&[("state", "closing".into())]).await? {
        if !has_pending_descendants(ctx, &stale).await? {
            let Some(mut node) = fresh(ctx, &stale, |n| n["state"] == "closing").await else {
                continue;
            };
            node["state"] = "done".into();
            if ctx.api.update(&node).await.is_ok() {
                changed += 1;
                settled(ctx, &node).await;
            }
        }
    }
    Ok(changed)
}

/// After a node went `done`: a checkout has settled, so its missing results are reported.
async fn settled(ctx: &Ctx, node: &serde_json::Value) {
    if node["kind"] == "checkout" && node["state"] == "done" {
        match crate::missing::report(ctx, node).await {
            Ok(m) if !m.is_empty() => tracing::info!(
                "timeout: checkout {} settled with {} missing result(s)",
                node["id"],
                m.len()
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("timeout: checkout {}: missing results: {e:#}", node["id"]),
        }
    }
}

/// The current version of `stale`, if it still satisfies `still`.
async fn fresh(ctx: &Ctx, stale: &Value, still: impl Fn(&Value) -> bool) -> Option<Value> {
    let id = stale["id"].as_str()?;
    let node = ctx.api.node(id).await.ok()??;
    still(&node).then_some(node)
}

/// Whether any node below `node` is still pending.
pub async fn has_pending_descendants(ctx: &Ctx, node: &Value) -> anyhow::Result<bool> {
    let id = node["id"].as_str().unwrap_or_default().to_string();
    if node["parent"].is_null()
        && let Some(treeid) = node["treeid"].as_str()
    {
        // A root: its whole tree shares its treeid.
        let n = ctx
            .api
            .count(&[
                ("treeid", treeid.to_string()),
                ("state__in", PENDING.into()),
                ("id__ne", id.clone()),
            ])
            .await?;
        // Direct children with a tree id of their own (patchsets) count too.
        let direct = ctx
            .api
            .count(&[("parent", id), ("state__in", PENDING.into())])
            .await?;
        return Ok(n + direct > 0);
    }
    let walk = crate::ancestry::walk_descendants(&ctx.api, &id, 100_000, |child| {
        if matches!(
            child["state"].as_str(),
            Some("running" | "available" | "closing")
        ) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .await?;
    Ok(walk.is_break())
}

/// Default poll period.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);
