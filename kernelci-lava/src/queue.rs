//! The scheduler's queue gate for LAVA labs (specs/pipeline.md §3.4): a job is skipped when
//! its device type has no online device, or when as many jobs as [`queue_limit`] allows are
//! already waiting for that device type.

/// How many jobs may wait (`Submitted`) for a device type before more are skipped:
/// `int(max_queue_depth * online_devices * (1 + base_priority/100 * (factor - 1)))`, so
/// high-priority jobs may fill up to `factor` times more queue than priority-0 jobs.
pub fn queue_limit(
    max_queue_depth: u32,
    online_devices: u32,
    base_priority: u8,
    factor: f64,
) -> u64 {
    let frac = f64::from(base_priority.min(100)) / 100.0;
    let factor = if factor.is_finite() { factor } else { 1.0 };
    let limit =
        f64::from(max_queue_depth) * f64::from(online_devices) * (1.0 + frac * (factor - 1.0));
    // Saturating cast: negative (a factor below 1) gives 0, huge values u64::MAX.
    limit as u64
}

/// Whether a device counts as online: LAVA's REST API reports `health` as `Good`,
/// `Unknown`, `Looping`, `Bad`, `Maintenance` or `Retired`; only `Good` counts, and a missing
/// health (null), as upstream does.
pub fn device_online(health: Option<&str>) -> bool {
    matches!(health, None | Some("Good"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_grows_with_priority() {
        assert_eq!(queue_limit(50, 2, 0, 2.0), 100);
        assert_eq!(queue_limit(50, 2, 20, 2.0), 120);
        assert_eq!(queue_limit(50, 2, 100, 2.0), 200);
        assert_eq!(queue_limit(50, 0, 80, 2.0), 0);
        assert_eq!(queue_limit(3, 1, 50, 1.5), 3); // 3 * 1.25 = 3.75 → 3
        assert_eq!(queue_limit(10, 1, 80, 1.0), 10);
        assert_eq!(queue_limit(u32::MAX, u32::MAX, 100, f64::MAX), u64::MAX);
    }

    #[test]
    fn only_good_or_null_health_is_online() {
        assert!(device_online(None));
        assert!(device_online(Some("Good")));
        for h in [
            "Unknown",
            "Looping",
            "Bad",
            "Maintenance",
            "Retired",
            "good",
        ] {
            assert!(!device_online(Some(h)), "{h}");
        }
    }
}
