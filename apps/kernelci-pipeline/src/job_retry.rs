//! The job-retry role (specs/pipeline.md §1.6): a kbuild or job that ends `incomplete`
//! (an infrastructure problem), or a `baseline*` job that fails, is scheduled again from its
//! parent through the `retry` channel, at most [`crate::Settings::max_retries`] times.
//! Unlike upstream, an `error_code` classed as the test's fault (LAVA's `Job` and `Test`,
//! `invalid_job_params`, ...: `kernelci_kcidb::regress::classify::error_code_class`) is not
//! retried: it fails the same way each time. Missing jobs (`crate::missing`) are not
//! retried either.
//! The failed node is never changed; the scheduler creates a new node whose
//! `retry_counter` (and so `data.schedule_key`) differs.

use serde_json::{Value, json};

use crate::Ctx;
use crate::ancestry::Ancestors;
use crate::events::EventStream;

/// Publish retries (`events`: the durable `job-retry:node` stream).
pub async fn run(ctx: Ctx, mut events: EventStream) {
    loop {
        let Some(ev) = events.next().await else {
            continue;
        };
        if !wants_retry(&ev, ctx.settings.max_retries) {
            continue;
        }
        if let Err(e) = retry(&ctx, &ev).await {
            tracing::warn!("job-retry: {}: {e:#}", ev["id"]);
        }
    }
}

/// The event filter: done kbuild/job, incomplete (or failed baseline), retries left.
pub fn wants_retry(ev: &Value, max_retries: i64) -> bool {
    let kind_ok = matches!(ev["kind"].as_str(), Some("kbuild" | "job"));
    let failed = match ev["result"].as_str() {
        Some("incomplete") => true,
        Some("fail") => ev["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("baseline")),
        _ => false,
    };
    // A hierarchy update is the job reporting its own results, not a new failure.
    let counter = ev["retry_counter"].as_i64().unwrap_or(0);
    ev["state"] == "done"
        && ev["previous_state"] != "done"
        && kind_ok
        && failed
        && counter < max_retries
}

async fn retry(ctx: &Ctx, ev: &Value) -> anyhow::Result<()> {
    let id = ev["id"].as_str().unwrap_or_default();
    let Some(node) = ctx.api.node(id).await? else {
        anyhow::bail!("node is gone");
    };
    // Only what the infrastructure may have caused is worth running again (the KCIDB
    // bridge defers exactly these: `should_defer_for_retry`).
    if !kernelci_kcidb::maestro::is_retried(&node) {
        tracing::info!(
            "job-retry: {} {id}: not retried ({} is not an infrastructure error)",
            node["name"],
            node["data"]["error_code"]
        );
        return Ok(());
    }
    // A bisection decides on its own repeats. (The ancestors, fetched once, also give the
    // parent and the node to schedule from.)
    let chain = Ancestors::new(&ctx.api).prefetch(&node).await;
    if crate::bisect::in_bisection(&node, |id| chain.get(id).cloned()) {
        return Ok(());
    }
    // Node events carry no `retry_counter`: the limit is checked on the node itself.
    let counter = node["retry_counter"].as_i64().unwrap_or(0);
    if counter >= ctx.settings.max_retries {
        tracing::info!("job-retry: {} {id}: no retries left", node["name"]);
        return Ok(());
    }
    let Some(parent_id) = node["parent"].as_str() else {
        anyhow::bail!("no parent to schedule from");
    };
    let Some(parent) = chain.get(parent_id) else {
        anyhow::bail!("parent {parent_id} is gone");
    };
    let (target, jobfilter, platform_filter) = if node["kind"] == "kbuild" {
        let Some(checkout) = chain.nearest(parent, &["checkout"]) else {
            anyhow::bail!("no checkout above {id}");
        };
        let name = node["name"].as_str().unwrap_or_default();
        (checkout, json!([format!("{name}+")]), Value::Null)
    } else {
        let Some(kbuild) = chain.nearest(parent, &["kbuild", "checkout"]) else {
            anyhow::bail!("no kbuild or checkout above {id}");
        };
        (
            kbuild,
            json!([node["name"]]),
            json!([node["data"]["platform"]]),
        )
    };
    let mut data = target.clone();
    data["jobfilter"] = jobfilter;
    data["state"] = "available".into();
    if !platform_filter.is_null() {
        data["platform_filter"] = platform_filter;
    }
    data["retry_counter"] = (counter + 1).into();
    data["debug"] = json!({"retry_by": id});
    ctx.api.publish("retry", &data).await?;
    tracing::info!(
        "job-retry: {} {} -> retry {} from {}",
        node["name"],
        id,
        counter + 1,
        target["id"]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_gets_retried() {
        let ev = |kind: &str, name: &str, result: &str, counter: i64| {
            json!({"op": "updated", "kind": kind, "name": name, "state": "done", "result": result,
                   "retry_counter": counter, "previous_state": "running"})
        };
        assert!(wants_retry(&ev("kbuild", "kbuild-x86", "incomplete", 0), 3));
        assert!(!wants_retry(&ev("kbuild", "kbuild-x86", "fail", 0), 3));
        assert!(wants_retry(&ev("job", "baseline-x86", "fail", 2), 3));
        assert!(!wants_retry(&ev("job", "baseline-x86", "fail", 3), 3));
        assert!(!wants_retry(&ev("test", "login", "incomplete", 0), 3));
        assert!(!wants_retry(&ev("job", "kunit", "pass", 0), 3));
    }
}
