//! A job's base priority, 0 to 100, as upstream's LAVA runtime computes it (`_get_priority`,
//! specs/pipeline.md §3.4) before a lab scales it into its own range.
//!
//! Levels: highest 80, high 60, medium 40, low 20. A node the pipeline made by itself
//! (`submitter == service:pipeline`) takes its tree's priority (`data.tree_priority`, from
//! the build config), else the job's, else low. A node a user asked for (any other
//! submitter) takes its `data.priority`, else highest: people waiting go first.

use serde_json::Value;

use crate::config::Priority;

/// `submitter` of the nodes the pipeline makes by itself.
pub const SERVICE_PIPELINE: &str = "service:pipeline";

/// `highest`: user-requested jobs without a priority of their own.
pub const HIGHEST: u8 = 80;
/// `high`.
pub const HIGH: u8 = 60;
/// `medium`.
pub const MEDIUM: u8 = 40;
/// `low`: the default.
pub const LOW: u8 = 20;

/// The priority `value` names: `high`/`medium`/`low` (60/40/20), or a number clamped to
/// 0..=100 (a numeric string counts); anything else is `None`.
pub fn level(value: &Value) -> Option<u8> {
    match value {
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "highest" => Some(HIGHEST),
            "high" => Some(HIGH),
            "medium" => Some(MEDIUM),
            "low" => Some(LOW),
            other => other.parse::<f64>().ok().map(clamp),
        },
        Value::Number(n) => n.as_f64().map(clamp),
        _ => None,
    }
}

fn clamp(x: f64) -> u8 {
    if x.is_nan() {
        return LOW;
    }
    x.clamp(0.0, 100.0) as u8
}

/// The base priority of job node `node` (or of the node it is made from: both carry the
/// same submitter and data), for a job whose configured priority is `job_priority`.
pub fn base_priority(node: &Value, job_priority: Option<Priority>) -> u8 {
    let by_pipeline = node["submitter"].as_str() == Some(SERVICE_PIPELINE);
    if !by_pipeline {
        return level(&node["data"]["priority"]).unwrap_or(HIGHEST);
    }
    level(&node["data"]["tree_priority"])
        .or_else(|| job_priority.map(job_level))
        .unwrap_or(LOW)
}

/// A job's configured priority as a level: names map to 60/40/20 here (not the
/// runtime-range values of [`Priority::value`]), numbers stay.
pub fn job_level(p: Priority) -> u8 {
    match p {
        Priority::High => HIGH,
        Priority::Medium => MEDIUM,
        Priority::Low => LOW,
        Priority::Number(n) => n.min(100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_numbers() {
        assert_eq!(level(&json!("high")), Some(60));
        assert_eq!(level(&json!("Medium")), Some(40));
        assert_eq!(level(&json!("low")), Some(20));
        assert_eq!(level(&json!(150)), Some(100));
        assert_eq!(level(&json!(-3)), Some(0));
        assert_eq!(level(&json!("35")), Some(35));
        assert_eq!(level(&json!("urgent")), None);
        assert_eq!(level(&Value::Null), None);
    }

    #[test]
    fn pipeline_nodes_take_the_tree_then_the_job_priority() {
        let pipeline = json!({"submitter": "service:pipeline", "data": {"tree_priority": "high"}});
        assert_eq!(base_priority(&pipeline, Some(Priority::Low)), HIGH);
        let pipeline = json!({"submitter": "service:pipeline", "data": {}});
        assert_eq!(base_priority(&pipeline, Some(Priority::Medium)), MEDIUM);
        assert_eq!(base_priority(&pipeline, None), LOW);
    }

    #[test]
    fn user_nodes_take_their_own_priority_else_highest() {
        let user = json!({"submitter": "user:ann@example.org", "data": {}});
        assert_eq!(base_priority(&user, Some(Priority::Low)), HIGHEST);
        let user = json!({"submitter": "user:ann@example.org", "data": {"priority": 45}});
        assert_eq!(base_priority(&user, None), 45);
    }
}
