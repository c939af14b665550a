//! Holding back an unhealthy device type: a runtime's `hold_back` policy (ours) against the
//! lab-health figures the regression tracker keeps (infrastructure failures per lab and
//! platform over a window, served by the dashboard's `/api/health/`).
//!
//! ```yaml
//! runtimes:
//!   lab-a:
//!     lab_type: lava
//!     hold_back: {threshold: 0.5, min_results: 10, days: 1}
//! ```
//!
//! A platform of the runtime whose infrastructure-failure rate over the last `days` is
//! above `threshold`, counted over at least `min_results` results, gets no new jobs: each
//! skipped job is logged with the figures, and reported missing when its checkout settles.

use serde_json::{Map, Value};

/// A runtime's `hold_back` policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldBack {
    /// The infrastructure-failure rate above which a platform is held back (0 to 1).
    pub threshold: f64,
    /// Results needed before the rate counts.
    pub min_results: u64,
    /// The window, in days.
    pub days: u64,
}

impl HoldBack {
    /// The `hold_back` key of a runtime entry's fields (`None` when absent); a bad value is
    /// refused naming the key.
    pub fn from_fields(
        runtime: &str,
        fields: &Map<String, Value>,
    ) -> Result<Option<HoldBack>, String> {
        let Some(v) = fields.get("hold_back").filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let at = format!("runtimes.{runtime}.hold_back");
        let Some(m) = v.as_object() else {
            return Err(format!("{at}: expected {{threshold, min_results, days}}"));
        };
        for key in m.keys() {
            if !["threshold", "min_results", "days"].contains(&key.as_str()) {
                return Err(format!("{at}.{key}: unknown key"));
            }
        }
        let threshold = match m.get("threshold") {
            None => 0.5,
            Some(t) => t
                .as_f64()
                .filter(|t| (0.0..=1.0).contains(t))
                .ok_or_else(|| format!("{at}.threshold: expected a number from 0 to 1"))?,
        };
        let whole = |key: &str, default: u64, max: u64| match m.get(key) {
            None => Ok(default),
            Some(n) => n
                .as_u64()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("{at}.{key}: expected a whole number from 1 to {max}")),
        };
        Ok(Some(HoldBack {
            threshold,
            min_results: whole("min_results", 10, 1_000_000)?,
            days: whole("days", 1, 365)?,
        }))
    }

    /// Whether `infrastructure` failures out of `total` results hold the platform back.
    pub fn holds(&self, total: u64, infrastructure: u64) -> bool {
        #[allow(clippy::cast_precision_loss)]
        let rate = if total == 0 {
            0.0
        } else {
            infrastructure as f64 / total as f64
        };
        total >= self.min_results && rate > self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Option<HoldBack>, String> {
        HoldBack::from_fields("lab", v.as_object().expect("object"))
    }

    #[test]
    fn policy() {
        assert_eq!(parse(json!({})), Ok(None));
        let p = parse(json!({"hold_back": {"threshold": 0.25, "min_results": 4}}))
            .expect("valid")
            .expect("some");
        assert_eq!((p.threshold, p.min_results, p.days), (0.25, 4, 1));
        assert!(!p.holds(3, 3), "too few results");
        assert!(p.holds(4, 2));
        assert!(!p.holds(4, 1), "exactly the threshold is not above it");
        assert!(!p.holds(0, 0));
        let e = parse(json!({"hold_back": {"threshold": 2}})).unwrap_err();
        assert_eq!(
            e,
            "runtimes.lab.hold_back.threshold: expected a number from 0 to 1"
        );
        let e = parse(json!({"hold_back": {"treshold": 0.1}})).unwrap_err();
        assert_eq!(e, "runtimes.lab.hold_back.treshold: unknown key");
        assert!(parse(json!({"hold_back": {"days": 0}})).is_err());
        assert!(parse(json!({"hold_back": true})).is_err());
    }
}
