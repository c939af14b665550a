//! LAVA notify callbacks, `POST /pipeline/node/{id}` (specs/pipeline.md §5).
//!
//! What is checked before answering, so that a bad request is refused and stores nothing:
//! the token (`Authorization`, raw, compared with every LAVA lab's `runtime_token` and
//! `callback_token`: 401 otherwise, as upstream, not bound to the node's lab), the payload
//! (`kernelci_lava::callback::Callback::parse`: 400 with the reason), the node (404 when it
//! does not exist; 400 when the job definition names another node), and duplicates (a node
//! whose callback was already stored, or is being processed right now, is answered 200
//! "already processed" and nothing is written twice). Then 202 at once, as upstream.
//!
//! After the answer ([`process`]): the console (`lava_log`, `log.txt.gz`), the kept log
//! entries (`lava_logs`, `lava-logs.yaml`) and the payload without its token
//! (`callback_data`, `lava_callback.json.gz`) go to storage under `<name>-<id>/`; the node
//! and its result tree are written in one `PUT nodes/{id}` (the hierarchy upstream's
//! `Callback.get_hierarchy` + `submit_results` make). A node that timed out meanwhile
//! still gets the late result (done -> done), as upstream.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use kernelci_lava::callback::Callback;
use serde_json::{Map, Value};

use crate::Ctx;

/// The tokens labs may call back with, and the nodes whose callback is in progress.
#[derive(Debug, Default)]
pub struct CallbackGate {
    tokens: Vec<String>,
    in_flight: Mutex<HashSet<String>>,
}

/// Why a callback is refused: the HTTP status and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 401, 404 or 503.
    pub status: u16,
    /// Said in `{"message": ...}`.
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// What to do with an accepted callback.
#[derive(Debug)]
pub enum Accepted {
    /// Process it (the node as read now, the parsed payload); call [`CallbackGate::done`]
    /// with the node id afterwards.
    Process(Box<Value>, Box<Callback>),
    /// The node's callback was already stored or is being processed.
    Duplicate,
}

impl CallbackGate {
    /// A gate accepting `tokens` (empty ones are dropped).
    pub fn new(tokens: Vec<String>) -> CallbackGate {
        CallbackGate {
            tokens: tokens.into_iter().filter(|t| !t.is_empty()).collect(),
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// True when at least one lab token is configured.
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Check a callback for node `id` carrying `authorization` and `body`.
    pub async fn check(
        &self,
        ctx: &Ctx,
        id: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Accepted, Refusal> {
        if self.tokens.is_empty() {
            return Err(refuse(
                401,
                "Unauthorized: no LAVA lab token is configured ([runtime.<name>] runtime_token or callback_token in the settings file)",
            ));
        }
        let Some(given) = authorization.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(refuse(401, "Unauthorized: missing Authorization header"));
        };
        if !self
            .tokens
            .iter()
            .any(|t| kernelci_lava::lab::constant_time_eq(t.as_bytes(), given.as_bytes()))
        {
            return Err(refuse(401, "Unauthorized"));
        }
        if kernelci_model::id::ObjectId::parse(id).is_err() {
            return Err(refuse(404, format!("Node {id} not found (not a node id)")));
        }
        let cb =
            Callback::parse(body).map_err(|e| refuse(400, format!("Invalid callback: {e}")))?;
        if let Some(named) = cb.node_id()
            && named != id
        {
            return Err(refuse(
                400,
                format!("Invalid callback: the job definition is for node {named}, not {id}"),
            ));
        }
        let node = match ctx.api.node(id).await {
            Ok(Some(n)) => n,
            Ok(None) => return Err(refuse(404, format!("Node {id} not found"))),
            Err(e) => return Err(refuse(503, format!("Cannot read node {id}: {e}"))),
        };
        if !node["artifacts"]["callback_data"].is_null() {
            return Ok(Accepted::Duplicate);
        }
        let Ok(mut busy) = self.in_flight.lock() else {
            return Err(refuse(503, "callback state unavailable"));
        };
        if !busy.insert(id.to_string()) {
            return Ok(Accepted::Duplicate);
        }
        Ok(Accepted::Process(Box::new(node), Box::new(cb)))
    }

    /// Node `id`'s callback is processed (or failed): a new one may come.
    pub fn done(&self, id: &str) {
        if let Ok(mut busy) = self.in_flight.lock() {
            busy.remove(id);
        }
    }
}

/// Store the callback's logs and payload, then write the node and its result tree.
pub async fn process(ctx: &Ctx, mut node: Value, cb: &Callback) -> anyhow::Result<()> {
    let id = node["id"].as_str().unwrap_or_default().to_string();
    let dest = format!("{}-{}", node["name"].as_str().unwrap_or("job"), id);
    let mut files: Vec<(&str, String, Vec<u8>)> = Vec::new();
    if cb.has_log() {
        let (text, entries) = (cb.target_log(), cb.log_yaml());
        let gz = tokio::task::spawn_blocking(move || gzip(text.as_bytes())).await??;
        files.push(("lava_log", format!("{dest}/log.txt.gz"), gz));
        files.push((
            "lava_logs",
            format!("{dest}/lava-logs.yaml"),
            entries.into_bytes(),
        ));
    }
    let payload = serde_json::to_vec(&cb.stored_payload())?;
    let gz = tokio::task::spawn_blocking(move || gzip(&payload)).await??;
    files.push(("callback_data", format!("{dest}/lava_callback.json.gz"), gz));
    let mut artifacts = Map::new();
    for (key, name, bytes) in files {
        let tmp = tempfile::NamedTempFile::new()?;
        tokio::fs::write(tmp.path(), &bytes).await?;
        match ctx.storage.upload(tmp.path(), &name).await {
            Ok(url) => {
                artifacts.insert(key.to_string(), url.into());
            }
            Err(e) => tracing::warn!("lava callback: {id}: storing {name}: {e}"),
        }
    }
    // The callback is recorded even if its payload could not be stored, so that a
    // repeated callback is still recognised.
    artifacts
        .entry("callback_data")
        .or_insert_with(|| Value::String(format!("lava-job:{}", cb.job_id())));
    match node["artifacts"].as_object_mut() {
        Some(a) => a.extend(artifacts),
        None => node["artifacts"] = Value::Object(artifacts),
    }
    if node["state"] == "done" {
        tracing::info!("lava callback: {id} was already done; writing the late result");
    }
    let hierarchy = cb.hierarchy(&node);
    ctx.api.update_hierarchy(&id, &hierarchy).await?;
    let root = &hierarchy["node"];
    let mut events = vec![crate::telemetry::event("job_result", root)];
    events.extend(crate::telemetry::test_results(root, &hierarchy));
    crate::telemetry::emit(ctx, events);
    tracing::info!(
        "lava callback: {id}: LAVA job {} ({}) -> {}",
        cb.job_id(),
        cb.health_string().unwrap_or("?"),
        root["result"]
    );
    Ok(())
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes)?;
    enc.finish()
}

/// Run [`process`] in the background and release the node afterwards.
pub fn spawn(ctx: Ctx, gate: Arc<CallbackGate>, node: Value, cb: Callback) {
    tokio::spawn(async move {
        let id = node["id"].as_str().unwrap_or_default().to_string();
        if let Err(e) = process(&ctx, node, &cb).await {
            tracing::error!("lava callback: {id}: {e:#}");
        }
        gate.done(&id);
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_comparison_is_exact() {
        assert!(kernelci_lava::lab::constant_time_eq(b"secret", b"secret"));
        assert!(!kernelci_lava::lab::constant_time_eq(b"secret", b"secreT"));
        assert!(!kernelci_lava::lab::constant_time_eq(b"secret", b"secret2"));
        assert!(!kernelci_lava::lab::constant_time_eq(b"", b"x"));
    }
}
