//! Missing results: when a checkout settles (goes `done`), every job the scheduler would
//! have planned for a node of its tree and that has no node is reported as missing, not
//! left silently absent.
//!
//! The expected jobs are found by replaying the scheduler over the finished tree: for each
//! node, the events it went through (`available` if it passed, and `done`, with its
//! result) are matched
//! against the configuration's scheduler entries (every configured runtime, loaded here or
//! not), and each candidate goes through the scheduler's own deliberate filters
//! ([`crate::scheduler::admit`]: architecture filter, jobfilter, platform filter, rules).
//! What passes them is expected; a job the lab's queue gate skipped, a scheduler that was
//! down, a creation that failed, all leave an expected job without a node.
//!
//! Each missing job becomes a node of its own under the node it was expected below: `done`
//! with result `incomplete`, `data.missing: true`, upstream's `error_code: submit_error`
//! (the job never reached a lab; upstream's clients accept no other codes) and an
//! `error_msg` starting `missing:`, with the `schedule_key` the scheduler would have used.
//! So the Maestro API lists it (`data.missing=true`), the KCIDB bridge sends it as a `MISS`
//! (builds and tests), and the dashboard and reports show it.
//!
//! Not replayed: jobs with a `frequency` parameter (whether one was due depends on the
//! time of the event), and the jobs that would have run below a missing job (a missing
//! build stands for its tests).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use serde_json::Value;

use crate::Ctx;
use crate::ancestry::Chain;
use crate::client::ApiError;

pub use kernelci_kcidb::maestro::MISSING;

/// Most nodes below one checkout that are looked at.
const TREE_LIMIT: usize = 200_000;

/// One expected job without a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The node it was expected below.
    pub parent: String,
    /// The job name.
    pub job: String,
    /// The platform.
    pub platform: String,
    /// The runtime.
    pub runtime: String,
}

/// The expected jobs of `tree` (a checkout and every node below it) that have no node.
pub fn find_missing(ctx: &Ctx, tree: &[Value]) -> Vec<(Missing, Value)> {
    let config = &ctx.config;
    let names: Vec<String> = config.runtimes.keys().cloned().collect();
    let loaded = kernelci_sched::matching::LoadedRuntimes::select(config, &names, &[]);
    let by_id: HashMap<&str, &Value> = tree
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    // (parent, job name, platform) of every node there is.
    let present: HashSet<(String, String, String)> = tree
        .iter()
        .filter_map(|n| {
            Some((
                n["parent"].as_str()?.to_string(),
                n["name"].as_str()?.to_string(),
                n["data"]["platform"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ))
        })
        .collect();
    let mut seen: HashSet<(String, String, String, String)> = HashSet::new();
    let mut out = Vec::new();
    for node in tree {
        let Some(id) = node["id"].as_str() else {
            continue;
        };
        // The node's ancestors, from the tree in memory (and above it: none needed for
        // the checkout, the root).
        let mut input_chain = Chain::default();
        let mut cur = node["parent"].as_str();
        for _ in 0..64 {
            let Some(parent) = cur.and_then(|p| by_id.get(p)) else {
                break;
            };
            input_chain.insert((*parent).clone());
            cur = parent["parent"].as_str();
        }
        let mut child_chain = input_chain.clone();
        child_chain.insert(node.clone());
        let chains = (input_chain, child_chain);
        // A node passes through `available` only with a passing result (a failed build
        // or a checkout whose tarball never came goes straight to `done`).
        let states: &[&str] = if node["result"] == "pass" {
            &["available", "done"]
        } else {
            &["done"]
        };
        for &state in states {
            let mut event = node.clone();
            event["op"] = "created".into();
            event["state"] = state.into();
            let (plans, _) = kernelci_sched::matching::explain_schedule(config, &loaded, &event);
            for plan in plans {
                if plan.job.params.contains_key("frequency") {
                    continue;
                }
                let key = (
                    id.to_string(),
                    plan.job.name.clone(),
                    plan.platform.name.clone(),
                    plan.runtime.clone(),
                );
                if !seen.insert(key.clone()) {
                    continue;
                }
                if present.contains(&(key.0.clone(), key.1.clone(), key.2.clone())) {
                    continue;
                }
                let Ok(job_node) = crate::scheduler::admit(config, node, &plan, &chains, 0) else {
                    continue; // deliberately not scheduled
                };
                out.push((
                    Missing {
                        parent: key.0,
                        job: key.1,
                        platform: key.2,
                        runtime: key.3,
                    },
                    job_node,
                ));
            }
        }
    }
    out
}

/// Reports the missing jobs of the settled `checkout`: one `done`/`incomplete` node with
/// `error_code: missing` each. Returns what was reported (a job reported earlier, or
/// created meanwhile, is not reported twice: the schedule key is unique).
pub async fn report(ctx: &Ctx, checkout: &Value) -> anyhow::Result<Vec<Missing>> {
    let Some(id) = checkout["id"].as_str() else {
        return Ok(Vec::new());
    };
    let mut tree = vec![checkout.clone()];
    let _ = crate::ancestry::walk_descendants(&ctx.api, id, TREE_LIMIT, |child| {
        tree.push(child.clone());
        ControlFlow::Continue(())
    })
    .await?;
    let mut reported = Vec::new();
    for (missing, mut node) in find_missing(ctx, &tree) {
        node["state"] = "done".into();
        node["result"] = "incomplete".into();
        node["data"][MISSING] = true.into();
        node["data"]["error_code"] = "submit_error".into();
        node["data"]["error_msg"] = format!(
            "missing: expected {} on {} ({}) when the checkout settled, but no job was \
             created; the scheduler's log says why (e.g. the lab's queue was full)",
            missing.job, missing.platform, missing.runtime
        )
        .into();
        node["data"]["schedule_key"] = format!(
            "{}/{}/{}/{}/0",
            missing.parent, missing.job, missing.runtime, missing.platform
        )
        .into();
        match ctx.api.create_keyed(&node).await {
            Ok(_) => {
                tracing::warn!(
                    "missing: checkout {id}: {} on {} below {} has no result",
                    missing.job,
                    missing.platform,
                    missing.parent
                );
                reported.push(missing);
            }
            Err(ApiError::Conflict(_)) => {}
            Err(e) => tracing::warn!("missing: checkout {id}: cannot report {}: {e}", missing.job),
        }
    }
    Ok(reported)
}
