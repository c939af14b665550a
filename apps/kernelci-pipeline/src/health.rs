//! The scheduler's health gate: a runtime with a `hold_back` policy
//! ([`kernelci_sched::health::HoldBack`]) gets no new jobs on a platform whose
//! infrastructure-failure rate is above its threshold, as the dashboard's `/api/health/`
//! reports it (the regression tracker's figures per lab and platform). The figures are
//! fetched at most once per refresh period and shared by every job planned meanwhile; when
//! they cannot be fetched, nothing is held back (the gate fails open, and says so).

use std::time::{Duration, Instant};

use kernelci_sched::health::HoldBack;
use serde_json::Value;
use tokio::sync::Mutex;

/// Figures per (lab, platform): (results, infrastructure failures).
type Figures = std::collections::HashMap<(String, String), (u64, u64)>;

/// The gate (one per process, in [`crate::Settings`]).
#[derive(Debug)]
pub struct HealthGate {
    dashboard_url: Option<String>,
    origin: String,
    refresh: Duration,
    http: reqwest::Client,
    cache: Mutex<Option<(Instant, u64, Figures)>>,
}

impl Default for HealthGate {
    fn default() -> Self {
        HealthGate::new(None, "maestro", Duration::from_secs(60))
    }
}

impl HealthGate {
    /// A gate reading `<dashboard_url>/health/` for `origin`'s results (`None`: never holds
    /// anything back), at most once per `refresh`.
    pub fn new(dashboard_url: Option<String>, origin: &str, refresh: Duration) -> HealthGate {
        HealthGate {
            dashboard_url,
            origin: origin.to_string(),
            refresh,
            http: reqwest::Client::new(),
            cache: Mutex::new(None),
        }
    }

    /// Why a job of `runtime` on `platform` is held back under `policy`, if it is.
    pub async fn held_back(
        &self,
        runtime: &str,
        platform: &str,
        policy: &HoldBack,
    ) -> Option<String> {
        let base = self.dashboard_url.as_deref()?;
        let mut cache = self.cache.lock().await;
        let fresh = cache
            .as_ref()
            .is_some_and(|(at, days, _)| at.elapsed() < self.refresh && *days == policy.days);
        if !fresh {
            match self.fetch(base, policy.days).await {
                Ok(f) => *cache = Some((Instant::now(), policy.days, f)),
                Err(e) => {
                    tracing::warn!("health: {e:#}; holding nothing back");
                    *cache = Some((Instant::now(), policy.days, Figures::new()));
                }
            }
        }
        let (_, _, figures) = cache.as_ref()?;
        let &(total, infra) = figures.get(&(runtime.to_string(), platform.to_string()))?;
        policy.holds(total, infra).then(|| {
            format!(
                "{platform} on {runtime} is held back: {infra} of {total} results in the last \
                 {} day(s) were infrastructure failures (hold_back threshold {})",
                policy.days, policy.threshold
            )
        })
    }

    async fn fetch(&self, base: &str, days: u64) -> anyhow::Result<Figures> {
        let url = format!(
            "{}/health/?interval_in_days={days}&origin={}",
            base.trim_end_matches('/'),
            self.origin
        );
        let resp = self.http.get(&url).send().await?;
        if !resp.status().is_success() {
            anyhow::bail!("{url}: {}", resp.status());
        }
        let rows: Value = resp.json().await?;
        let mut out = Figures::new();
        for r in rows.as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            let num = |k: &str| r[k].as_u64().unwrap_or(0);
            out.insert(
                (text("lab"), text("platform")),
                (num("total"), num("infrastructure")),
            );
        }
        Ok(out)
    }
}
