//! Measurements through HTTP: node creates with concurrency and `/nodes` query latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kernelci_model::{Node, time};
use serde_json::{Value, json};

use crate::stats::Summary;
use crate::synth::{self, Rng, Samples, TREES};

/// An authenticated client of one server.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client (connection pool shared by every task).
    pub client: reqwest::Client,
    /// `http://ADDR/latest`.
    pub base: String,
    /// `Bearer <token>`.
    pub auth: String,
}

impl Api {
    /// A client for `base` with the admin token.
    pub fn new(base: &str, token: &str) -> Result<Api> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(1024)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            client,
            base: base.to_string(),
            auth: format!("Bearer {token}"),
        })
    }

    /// POST JSON; the response body on success, an error with status and body otherwise.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Vec<u8>> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        checked(resp, "POST", path).await
    }

    /// GET; the response body on success.
    pub async fn get(&self, path: &str) -> Result<Vec<u8>> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        checked(resp, "GET", path).await
    }
}

async fn checked(resp: reqwest::Response, method: &str, path: &str) -> Result<Vec<u8>> {
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("{method} {path}: reading the body"))?
        .to_vec();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        bail!(
            "{method} {path}: HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    Ok(body)
}

/// Result of the create benchmark.
#[derive(Debug, Clone)]
pub struct Creates {
    /// Requests sent.
    pub requests: usize,
    /// Concurrency.
    pub concurrency: usize,
    /// Failed requests.
    pub errors: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// Per-request latency.
    pub latency: Summary,
}

impl Creates {
    /// Successful creates per second.
    pub fn per_sec(&self) -> f64 {
        (self.requests - self.errors) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests, "concurrency": self.concurrency,
            "errors": self.errors, "first_error": self.first_error,
            "elapsed_s": crate::stats::round3(self.elapsed.as_secs_f64()),
            "per_sec": self.per_sec().round(), "latency": self.latency.to_json(),
        })
    }
}

/// Create a checkout, then `n` test/job nodes under it with `concurrency` workers.
pub async fn creates(api: &Api, n: usize, concurrency: usize, seed: u64) -> Result<Creates> {
    let mut rng = Rng::new(seed);
    let body = api
        .post("/node", &synth::checkout_body(&mut rng))
        .await
        .context("creating the parent checkout")?;
    let checkout: Node =
        serde_json::from_slice(&body).context("the created checkout is not a node")?;
    let checkout = Arc::new(checkout);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let (api, next, checkout) = (api.clone(), next.clone(), checkout.clone());
        let mut rng = Rng::new(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = synth::create_body(&mut rng, i, &checkout);
                let t0 = Instant::now();
                match api.post("/node", &body).await {
                    Ok(_) => lat.push(t0.elapsed().as_secs_f64() * 1e3),
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for t in tasks {
        let (l, e) = t.await.context("a create worker panicked")?;
        lat.extend(l);
        errors.extend(e);
    }
    let elapsed = started.elapsed();
    if errors.len() == n && n > 0 {
        bail!("every create failed; the first: {}", errors[0]);
    }
    Ok(Creates {
        requests: n,
        concurrency,
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        elapsed,
        latency: Summary::of(lat),
    })
}

/// One query shape with its parameters filled in.
#[derive(Debug, Clone)]
pub struct Query {
    /// Short name of the shape (for per-shape results).
    pub shape: &'static str,
    /// The query string after `?`, without `limit`.
    pub params: String,
}

/// The query shapes, in rotation order.
pub const SHAPES: [&str; 5] = [
    "kind+tree+state",
    "treeid",
    "parent",
    "name+result+created",
    "checkout+commit",
];

/// `count` realistic queries over the loaded nodes, rotating through [`SHAPES`].
pub fn queries(samples: &Samples, count: usize, seed: u64) -> Result<Vec<Query>> {
    if samples.treeids.is_empty() || samples.parents.is_empty() || samples.commits.is_empty() {
        bail!("too few nodes loaded to sample query parameters");
    }
    let recent = time::format(&samples.recent.unwrap_or_else(time::now));
    let mut rng = Rng::new(seed);
    Ok((0..count)
        .map(|i| {
            let shape = SHAPES[i % SHAPES.len()];
            let params = match i % SHAPES.len() {
                0 => format!(
                    "kind=kbuild&data.kernel_revision.tree={}&state=done",
                    rng.pick(&TREES)
                ),
                1 => format!("treeid={}", rng.pick(&samples.treeids)),
                2 => format!("parent={}", rng.pick(&samples.parents)),
                3 => format!("name=baseline-arm64&result=fail&created__gte={recent}"),
                _ => format!(
                    "kind=checkout&data.kernel_revision.commit={}",
                    rng.pick(&samples.commits)
                ),
            };
            Query { shape, params }
        })
        .collect())
}

/// Latency of one endpoint over a query set.
#[derive(Debug, Clone)]
pub struct QueryRun {
    /// `/nodes` or `/nodes/fast`.
    pub endpoint: &'static str,
    /// Queries planned (the time budget may cut the run short: see `all.count`).
    pub planned: usize,
    /// Whether the time budget ran out before every planned query ran.
    pub cut_short: bool,
    /// Over every query.
    pub all: Summary,
    /// Per shape: (shape, latency, mean number of items returned).
    pub shapes: Vec<(&'static str, Summary, f64)>,
}

impl QueryRun {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        let shapes: serde_json::Map<String, Value> = self
            .shapes
            .iter()
            .map(|(s, sum, items)| {
                let mut v = sum.to_json();
                v["mean_items"] = json!(crate::stats::round3(*items));
                (s.to_string(), v)
            })
            .collect();
        json!({"endpoint": self.endpoint, "planned": self.planned, "timed": self.all.count,
               "cut_short": self.cut_short, "all": self.all.to_json(), "shapes": shapes})
    }
}

/// Run every query once, sequentially, against `endpoint` (`/nodes` or `/nodes/fast`),
/// with `limit=50`, after one unmeasured warm-up query per shape; stop early (after at least
/// one round of shapes) once `budget` has been spent.
pub async fn run_queries(
    api: &Api,
    endpoint: &'static str,
    qs: &[Query],
    budget: Duration,
) -> Result<QueryRun> {
    for q in qs.iter().take(SHAPES.len()) {
        api.get(&format!("{endpoint}?{}&limit=50", q.params))
            .await?;
    }
    let mut all = Vec::with_capacity(qs.len());
    let mut per: Vec<(Vec<f64>, usize)> = vec![(Vec::new(), 0); SHAPES.len()];
    let started = Instant::now();
    let mut cut_short = false;
    for (i, q) in qs.iter().enumerate() {
        if i >= SHAPES.len() && started.elapsed() > budget {
            cut_short = true;
            break;
        }
        let path = format!("{endpoint}?{}&limit=50", q.params);
        let t0 = Instant::now();
        let body = api.get(&path).await?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let v: Value = serde_json::from_slice(&body).with_context(|| format!("GET {path}"))?;
        let items = match &v {
            Value::Array(a) => a.len(),
            v => v["items"].as_array().map_or(0, Vec::len),
        };
        all.push(ms);
        if let Some(slot) = SHAPES.iter().position(|s| *s == q.shape) {
            per[slot].0.push(ms);
            per[slot].1 += items;
        }
    }
    let shapes = SHAPES
        .iter()
        .zip(per)
        .map(|(s, (lat, items))| {
            let n = lat.len().max(1) as f64;
            (*s, Summary::of(lat), items as f64 / n)
        })
        .collect();
    Ok(QueryRun {
        endpoint,
        planned: qs.len(),
        cut_short,
        all: Summary::of(all),
        shapes,
    })
}
