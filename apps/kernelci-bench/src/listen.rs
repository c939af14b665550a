//! Publish-to-listen latency: `L` subscriptions on one channel, each long-polling `/listen`
//! in its own task, while `P` paced events carrying their send time are published; plus the
//! server's RSS sampled meanwhile.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::http::Api;
use crate::server;
use crate::stats::Summary;

/// The channel used.
const CHANNEL: &str = "bench";
/// How long listeners may lag behind the last publish before the run is cut off.
const DRAIN: Duration = Duration::from_secs(20);

/// Result of the pub/sub benchmark.
#[derive(Debug, Clone)]
pub struct PubSub {
    /// Listeners.
    pub listeners: usize,
    /// Events published.
    pub events: usize,
    /// Publish-to-receipt latency over every receipt.
    pub latency: Summary,
    /// Latency of the `POST /publish` requests themselves.
    pub publish: Summary,
    /// Distinct (listener, event) receipts.
    pub received: usize,
    /// Expected receipts never seen.
    pub missing: usize,
    /// Receipts of an event a listener had already seen.
    pub duplicates: usize,
    /// `/listen` requests that failed.
    pub listen_errors: u64,
    /// Largest server RSS seen during the run (KiB).
    pub rss_max_kib: u64,
    /// Server RSS after the listeners unsubscribed (KiB).
    pub rss_after_kib: u64,
    /// Wall time from the first publish to the last receipt (or the cut-off).
    pub wall_s: f64,
    /// CPU seconds the server used meanwhile.
    pub server_cpu_s: f64,
    /// CPU seconds this benchmark process used meanwhile.
    pub bench_cpu_s: f64,
}

impl PubSub {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "listeners": self.listeners, "events": self.events,
            "latency": self.latency.to_json(), "publish_request": self.publish.to_json(),
            "received": self.received, "expected": self.listeners * self.events,
            "missing": self.missing, "duplicates": self.duplicates,
            "listen_errors": self.listen_errors,
            "rss_max_kib": self.rss_max_kib, "rss_after_kib": self.rss_after_kib,
            "wall_s": crate::stats::round3(self.wall_s),
            "server_cpu_s": crate::stats::round3(self.server_cpu_s),
            "bench_cpu_s": crate::stats::round3(self.bench_cpu_s),
        })
    }
}

/// Microseconds since the epoch.
fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// One receipt: (listener, event number, latency in microseconds).
type Receipt = (usize, u64, i64);

/// Long-poll until `events` events arrived or `stop` is set.
async fn listener(
    api: Api,
    idx: usize,
    sub: i64,
    events: usize,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    out: tokio::sync::mpsc::UnboundedSender<Receipt>,
) {
    let path = format!("/listen/{sub}");
    let mut got = 0;
    while got < events && !stop.load(Ordering::Relaxed) {
        let body = match api.get(&path).await {
            Ok(b) => b,
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let at = now_us();
        let envelope: Option<Value> = serde_json::from_slice::<Value>(&body).ok().and_then(|m| {
            m["data"]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
        });
        let data = envelope.as_ref().map(|e| &e["data"]);
        let (Some(seq), Some(sent)) = (
            data.and_then(|d| d["seq"].as_u64()),
            data.and_then(|d| d["sent_us"].as_i64()),
        ) else {
            continue; // keep-alive BEEP or something else
        };
        got += 1;
        if out.send((idx, seq, at - sent)).is_err() {
            return;
        }
    }
}

/// Run the benchmark against a server whose process id is `pid`.
pub async fn pubsub(
    api: &Api,
    pid: u32,
    listeners: usize,
    events: usize,
    interval: Duration,
) -> Result<PubSub> {
    let mut subs = Vec::with_capacity(listeners);
    for _ in 0..listeners {
        let body = api
            .post(&format!("/subscribe/{CHANNEL}"), &json!({}))
            .await
            .context("subscribing")?;
        let v: Value = serde_json::from_slice(&body).context("subscribe response")?;
        subs.push(v["id"].as_i64().context("subscribe response without id")?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Receipt>();
    let tasks: Vec<_> = subs
        .iter()
        .enumerate()
        .map(|(i, sub)| {
            tokio::spawn(listener(
                api.clone(),
                i,
                *sub,
                events,
                stop.clone(),
                errors.clone(),
                tx.clone(),
            ))
        })
        .collect();
    drop(tx);
    let rss_max = Arc::new(AtomicU64::new(server::rss_kib(pid)?));
    let sampler = {
        let (stop, rss_max) = (stop.clone(), rss_max.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(kib) = server::rss_kib(pid) {
                    rss_max.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // Let every listener reach its first long-poll.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid_text = pid.to_string();
    let (cpu0_server, cpu0_bench) = (server::cpu_secs(&pid_text)?, server::cpu_secs("self")?);
    let first_publish = Instant::now();
    let mut publish_lat = Vec::with_capacity(events);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut publish_error = None;
    for seq in 0..events {
        tick.tick().await;
        let body = json!({"data": {"seq": seq, "sent_us": now_us()}});
        let t0 = Instant::now();
        match api.post(&format!("/publish/{CHANNEL}"), &body).await {
            Ok(_) => publish_lat.push(t0.elapsed().as_secs_f64() * 1e3),
            Err(e) => {
                publish_error = Some(e);
                break;
            }
        }
    }

    let expected = listeners * events;
    let mut seen = HashSet::with_capacity(expected);
    let mut lat = Vec::with_capacity(expected);
    let mut duplicates = 0;
    let deadline = tokio::time::Instant::now() + DRAIN;
    while seen.len() < expected && publish_error.is_none() {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((i, seq, us))) => {
                if seen.insert((i, seq)) {
                    lat.push(us as f64 / 1e3);
                } else {
                    duplicates += 1;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let wall_s = first_publish.elapsed().as_secs_f64();
    let server_cpu_s = server::cpu_secs(&pid_text)? - cpu0_server;
    let bench_cpu_s = server::cpu_secs("self")? - cpu0_bench;
    stop.store(true, Ordering::Relaxed);
    for t in &tasks {
        t.abort();
    }
    let _ = sampler.await;
    for sub in &subs {
        let _ = api.post(&format!("/unsubscribe/{sub}"), &json!({})).await;
    }
    if let Some(e) = publish_error {
        bail!("publishing failed: {e:#}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = server::rss_kib(pid)?;
    Ok(PubSub {
        listeners,
        events,
        latency: Summary::of(lat),
        publish: Summary::of(publish_lat),
        received: seen.len(),
        missing: expected - seen.len(),
        duplicates,
        listen_errors: errors.load(Ordering::Relaxed),
        rss_max_kib: rss_max.load(Ordering::Relaxed),
        rss_after_kib: rss_after,
        wall_s,
        server_cpu_s,
        bench_cpu_s,
    })
}
