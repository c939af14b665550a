//! Send results to KCIDB (specs/pipeline.md §7): finished nodes are mapped to KCIDB v5.3
//! objects (`kernelci_kcidb::maestro`) and submitted to a KCIDB REST endpoint (ours, or
//! upstream's kcidb-restd), then flagged `processed_by_kcidb_bridge`.
//!
//! Events drive it (durable subscription `kcidb:node`); a sweep of unflagged `done` nodes
//! every [`crate::Settings::kcidb_sweep`] catches anything an event did not bring (a failed
//! submission is simply not flagged and goes out with the next sweep). Issues and incidents
//! for failures are filed by the KCIDB role's triage (logspec over the submitted `log_url`s),
//! with the same ids upstream's bridge would give them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kernelci_kcidb::maestro::{JobKind, Mapped, MappingConfig, NodeLookup};
use serde_json::Value;

use crate::Ctx;
use crate::ancestry::{Ancestors, Chain};

/// Where and how to submit.
#[derive(Debug, Clone)]
pub struct KcidbTarget {
    /// The submit URL, e.g. `http://127.0.0.1:8001/kcidb/submit`.
    pub submit_url: String,
    /// Bearer token whose origin is `origin`.
    pub token: String,
    /// KCIDB origin of our objects (`maestro` upstream).
    pub origin: String,
    /// The dashboard API base over the same KCIDB database (`<public url>/api` in
    /// `kernelci up`), where the bisect role reads new regressions; `None`: no automatic
    /// bisection.
    pub dashboard_url: Option<String>,
}

/// The mapping configuration from the pipeline YAML.
pub fn mapping_config(ctx: &Ctx, origin: &str) -> MappingConfig {
    let cfg = &ctx.config;
    let mut m = MappingConfig::new(origin);
    m.viewer_base_url = Some(ctx.settings.public_api_url());
    for (name, job) in &cfg.jobs {
        let kind = if job.kind == "kbuild" {
            JobKind::Kbuild
        } else {
            JobKind::Test {
                kcidb_test_suite: job.kcidb_test_suite.clone(),
            }
        };
        m.jobs.insert(name.clone(), kind);
    }
    for (name, rt) in &cfg.runtimes {
        if matches!(rt.lab_type.as_str(), "lava" | "pull_labs") {
            let url = rt
                .fields
                .get("url")
                .and_then(Value::as_str)
                .map(String::from);
            m.lab_runtimes.insert(name.clone(), url);
        }
    }
    for (name, p) in &cfg.platforms {
        m.platform_compatible
            .insert(name.clone(), p.compatible.clone());
    }
    m
}

/// Run until dropped (`events`: the durable `kcidb:node` stream).
pub async fn run(ctx: Ctx, target: KcidbTarget, mut events: crate::events::EventStream) {
    let mapping = mapping_config(&ctx, &target.origin);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let mut last_sweep: Option<Instant> = None;
    loop {
        if last_sweep.is_none_or(|t| t.elapsed() >= ctx.settings.kcidb_sweep) {
            last_sweep = Some(Instant::now());
            match sweep(&ctx, &mapping, &http, &target).await {
                Ok(n) if n > 0 => tracing::info!("kcidb: sweep sent {n} nodes"),
                Ok(_) => {}
                Err(e) => tracing::warn!("kcidb: sweep: {e:#}"),
            }
        }
        let next = tokio::time::timeout(ctx.settings.kcidb_sweep, events.next()).await;
        let Ok(Some(ev)) = next else { continue };
        if !ready(&ev) {
            continue;
        }
        let Some(id) = ev["id"].as_str() else {
            continue;
        };
        let nodes = match collect_nodes(&ctx, id, ev["is_hierarchy"] == true).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("kcidb: {id}: {e:#}");
                continue;
            }
        };
        if let Err(e) = send(&ctx, &mapping, &http, &target, nodes).await {
            tracing::warn!("kcidb: {id}: {e:#} (will be retried by the sweep)");
        }
    }
}

/// Which events are worth sending: checkouts and builds once available or done, jobs and
/// tests once done.
pub fn ready(ev: &Value) -> bool {
    matches!(
        (ev["kind"].as_str(), ev["state"].as_str()),
        (Some("checkout" | "kbuild"), Some("available" | "done"))
            | (Some("job" | "test" | "process"), Some("done"))
    )
}

/// The node of an event, and for a hierarchy update every node below it.
async fn collect_nodes(ctx: &Ctx, id: &str, hierarchy: bool) -> anyhow::Result<Vec<Value>> {
    let Some(node) = ctx.api.node(id).await? else {
        return Ok(Vec::new());
    };
    let mut out = vec![node];
    if hierarchy {
        // `visit` never breaks: the walk's outcome says nothing here.
        let _ = crate::ancestry::walk_descendants(&ctx.api, id, 100_000, |child| {
            out.push(child.clone());
            std::ops::ControlFlow::Continue(())
        })
        .await?;
    }
    Ok(out)
}

async fn sweep(
    ctx: &Ctx,
    mapping: &MappingConfig,
    http: &reqwest::Client,
    target: &KcidbTarget,
) -> anyhow::Result<usize> {
    let nodes = ctx
        .api
        .find(&[
            ("state", "done".into()),
            ("processed_by_kcidb_bridge", "false".into()),
            ("limit", "500".into()),
        ])
        .await?;
    let n = nodes.len();
    if send(ctx, mapping, http, target, nodes.clone())
        .await
        .is_ok()
    {
        return Ok(n);
    }
    // One bad batch must not hold back the backlog: retry in chunks of 50 (upstream's
    // fallback), so only the chunk with the offending node stays unsent.
    let mut sent = 0;
    let mut last_error = None;
    for chunk in nodes.chunks(50) {
        match send(ctx, mapping, http, target, chunk.to_vec()).await {
            Ok(_) => sent += chunk.len(),
            Err(e) => last_error = Some(e),
        }
    }
    match last_error {
        Some(e) if sent == 0 => Err(e),
        Some(e) => {
            tracing::warn!("kcidb: sweep: {} of {n} nodes not sent: {e:#}", n - sent);
            Ok(sent)
        }
        None => Ok(sent),
    }
}

struct Lookup<'a> {
    ancestors: &'a Chain,
    nodes: &'a HashMap<String, Value>,
}

impl NodeLookup for Lookup<'_> {
    fn node(&self, id: &str) -> Option<Value> {
        self.nodes
            .get(id)
            .or_else(|| self.ancestors.get(id))
            .cloned()
    }
}

/// Map `nodes`, submit them in one KCIDB submission, then flag them processed.
pub async fn send(
    ctx: &Ctx,
    mapping: &MappingConfig,
    http: &reqwest::Client,
    target: &KcidbTarget,
    nodes: Vec<Value>,
) -> anyhow::Result<usize> {
    if nodes.is_empty() {
        return Ok(0);
    }
    let fetch = Ancestors::new(&ctx.api);
    // One chain for the batch: the nodes of a batch share most of their ancestors.
    let mut ancestors = Chain::default();
    let by_id: HashMap<String, Value> = nodes
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?.to_string(), n.clone())))
        .collect();
    for n in &nodes {
        fetch.prefetch_into(&mut ancestors, n).await;
    }
    let lookup = Lookup {
        ancestors: &ancestors,
        nodes: &by_id,
    };
    let mut mapped = Vec::new();
    let mut ids = Vec::new();
    for n in &nodes {
        let Some(id) = n["id"].as_str() else { continue };
        ids.push(id.to_string());
        if kernelci_kcidb::maestro::should_defer_for_retry(n, ctx.settings.max_retries) {
            continue;
        }
        // Bisection runs are old commits tested today: not results of the branch.
        if crate::bisect::in_bisection(n, |id| by_id.get(id).or_else(|| ancestors.get(id)).cloned())
        {
            continue;
        }
        let excerpt = match kernelci_kcidb::maestro::log_url(n, &lookup) {
            Some(url) if !matches!(n["result"].as_str(), Some("pass" | "skip") | None) => {
                fetch_tail(http, &url).await
            }
            _ => None,
        };
        match kernelci_kcidb::maestro::map_node(n, &lookup, mapping, excerpt.as_deref()) {
            Mapped::Skip { reason } => tracing::debug!("kcidb: {id}: not sent: {reason}"),
            m => mapped.push(m),
        }
    }
    let count = mapped.len();
    if count > 0 {
        let body = kernelci_kcidb::maestro::submission(mapped);
        let resp = http
            .post(&target.submit_url)
            .bearer_auth(&target.token)
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            anyhow::bail!("KCIDB refused the submission: {status}: {text}");
        }
    }
    ctx.api
        .set_on_nodes(&ids, "processed_by_kcidb_bridge", "True")
        .await?;
    Ok(count)
}

/// The last 64 KiB of a log (the mapping keeps the last 16,384 characters). Logs stored
/// gzipped (upstream's `log.txt.gz`, `build.log.gz`) are decompressed; at most 32 MiB are
/// downloaded and 256 MiB decompressed.
async fn fetch_tail(http: &reqwest::Client, url: &str) -> Option<String> {
    const MAX_DOWNLOAD: usize = 32 << 20;
    const MAX_TEXT: u64 = 256 << 20;
    const TAIL: usize = 64 * 1024;
    let mut resp = http.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let mut bytes: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_DOWNLOAD {
            if bytes.starts_with(&[0x1f, 0x8b]) {
                return None;
            }
            // Plain text: only the end matters.
            let cut = bytes.len() - TAIL;
            bytes.drain(..cut);
        }
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut text = Vec::new();
        let decoder = flate2::read::MultiGzDecoder::new(&bytes[..]);
        decoder.take(MAX_TEXT).read_to_end(&mut text).ok()?;
        bytes = text;
    }
    let tail = &bytes[bytes.len().saturating_sub(TAIL)..];
    Some(String::from_utf8_lossy(tail).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sent_when() {
        let ev = |kind: &str, state: &str| serde_json::json!({"kind": kind, "state": state});
        assert!(ready(&ev("checkout", "available")));
        assert!(ready(&ev("kbuild", "done")));
        assert!(!ready(&ev("kbuild", "running")));
        assert!(!ready(&ev("job", "available")));
        assert!(ready(&ev("test", "done")));
    }
}
