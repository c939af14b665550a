//! Event × configuration → jobs to schedule (pipeline spec §2.9), plus the node-level filters
//! (`jobfilter`, `platform_filter`, §2.11) and job `frequency` parsing.
//!
//! [`get_schedule`] follows core `Scheduler.get_schedule`, with two deliberate changes:
//! - **Edge trigger.** An `updated` event carrying `previous_state` does not match an entry
//!   whose pattern also matches the node's previous state and result: the node was already in
//!   the matched condition (this is what stops duplicate jobs when an `available` node is
//!   updated again). Creation events, retry events and events without `previous_state` are
//!   level-triggered.
//! - **Deterministic runtime by type.** An entry selecting its runtime by `type` gets the
//!   loaded runtime of that `lab_type` whose name sorts first (upstream picks one at random).
//!
//! [`explain_schedule`] also returns why each matching entry was dropped, since a silently
//! unscheduled job is a recurring upstream complaint.

use crate::config::{JobConfig, PipelineConfig, PlatformConfig, SchedulerEntry};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The runtimes this scheduler process runs (name → `lab_type`), a subset of the
/// configuration's `runtimes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedRuntimes {
    by_name: BTreeMap<String, String>,
}

impl LoadedRuntimes {
    /// From `(name, lab_type)` pairs.
    pub fn new<I, N, T>(runtimes: I) -> Self
    where
        I: IntoIterator<Item = (N, T)>,
        N: Into<String>,
        T: Into<String>,
    {
        LoadedRuntimes {
            by_name: runtimes
                .into_iter()
                .map(|(n, t)| (n.into(), t.into()))
                .collect(),
        }
    }

    /// The scheduler's `--runtimes` / `--runtime-type` selection: the configured runtimes
    /// named in `names` (unknown names ignored) when `names` is not empty, otherwise those
    /// whose `lab_type` is in `types`.
    pub fn select(config: &PipelineConfig, names: &[String], types: &[String]) -> Self {
        let by_name = config
            .runtimes
            .values()
            .filter(|r| {
                if names.is_empty() {
                    types.contains(&r.lab_type)
                } else {
                    names.contains(&r.name)
                }
            })
            .map(|r| (r.name.clone(), r.lab_type.clone()))
            .collect();
        LoadedRuntimes { by_name }
    }

    /// The `lab_type` of a loaded runtime.
    pub fn lab_type(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(String::as_str)
    }

    /// The loaded runtime of this `lab_type` whose name sorts first.
    pub fn first_of_type(&self, lab_type: &str) -> Option<&str> {
        self.by_name
            .iter()
            .find(|(_, t)| *t == lab_type)
            .map(|(n, _)| n.as_str())
    }

    /// Names of the loaded runtimes, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// True when no runtime is loaded.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// One job to schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledJob<'c> {
    /// The scheduler entry that matched.
    pub entry: &'c SchedulerEntry,
    /// The job.
    pub job: &'c JobConfig,
    /// The runtime's name.
    pub runtime: String,
    /// The runtime's `lab_type`.
    pub lab_type: String,
    /// The platform.
    pub platform: &'c PlatformConfig,
    /// The entry's rules, evaluated on the input node.
    pub rules: Option<&'c Value>,
}

/// Why an entry whose event matched did not give a job (or gave fewer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Position of the entry in `scheduler`.
    pub entry: usize,
    /// The entry's job name.
    pub job: String,
    /// Why.
    pub reason: String,
}

/// Event keys that are not part of the node's state.
fn event_matches(pattern: &Map<String, Value>, event: &Map<String, Value>) -> bool {
    pattern
        .iter()
        .filter(|(k, _)| k.as_str() != "channel")
        .all(|(k, v)| event.get(k) == Some(v))
}

/// The event as it would have been before the update: `state` = `previous_state`, `result`
/// = `previous_result`. `None` unless `op` is `updated` and `previous_state` is present.
fn previous_view(event: &Map<String, Value>) -> Option<Map<String, Value>> {
    if event.get("op").and_then(Value::as_str) != Some("updated") {
        return None;
    }
    let previous_state = event.get("previous_state")?;
    let mut prev = event.clone();
    prev.insert("state".into(), previous_state.clone());
    prev.insert(
        "result".into(),
        event.get("previous_result").cloned().unwrap_or(Value::Null),
    );
    Some(prev)
}

/// The jobs to schedule for `event` (the node event payload, spec §0.2).
pub fn get_schedule<'c>(
    config: &'c PipelineConfig,
    runtimes: &LoadedRuntimes,
    event: &Value,
) -> Vec<ScheduledJob<'c>> {
    explain_schedule(config, runtimes, event).0
}

/// [`get_schedule`], plus why each entry whose event pattern matched was dropped (edge
/// trigger, runtime not loaded here, unknown job or platform). Entries whose pattern does not
/// match the event are not reported.
pub fn explain_schedule<'c>(
    config: &'c PipelineConfig,
    runtimes: &LoadedRuntimes,
    event: &Value,
) -> (Vec<ScheduledJob<'c>>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let Some(event) = event.as_object() else {
        return (out, skipped);
    };
    let previous = previous_view(event);
    for entry in &config.scheduler {
        if entry.event.get("channel").and_then(Value::as_str) != Some("node") {
            continue;
        }
        if !event_matches(&entry.event, event) {
            continue;
        }
        let skip = |reason: String| Skipped {
            entry: entry.index,
            job: entry.job.clone(),
            reason,
        };
        if previous
            .as_ref()
            .is_some_and(|p| event_matches(&entry.event, p))
        {
            skipped.push(skip(
                "edge trigger: the node already matched before this update \
                 (previous_state/previous_result)"
                    .into(),
            ));
            continue;
        }
        let name = entry.runtime.name.as_deref().filter(|n| !n.is_empty());
        let lab_type = entry.runtime.lab_type.as_deref().filter(|t| !t.is_empty());
        let runtime = match (name, lab_type) {
            (Some(n), _) => match runtimes.lab_type(n) {
                Some(_) => Some(n),
                None => {
                    skipped.push(skip(format!(
                        "runtime `{n}` is not loaded in this scheduler"
                    )));
                    continue;
                }
            },
            (None, Some(t)) => match runtimes.first_of_type(t) {
                Some(n) => Some(n),
                None => {
                    skipped.push(skip(format!(
                        "no runtime of type `{t}` is loaded in this scheduler"
                    )));
                    continue;
                }
            },
            (None, None) => None,
        };
        let Some(runtime) = runtime else {
            skipped.push(skip(
                "the entry selects no runtime (neither name nor type)".into(),
            ));
            continue;
        };
        let runtime_type = runtimes.lab_type(runtime).unwrap_or_default().to_string();
        let Some(job) = config.jobs.get(&entry.job) else {
            skipped.push(skip(format!("unknown job `{}`", entry.job)));
            continue;
        };
        let default_platforms = [runtime_type.clone()];
        let platforms: &[String] = match &entry.platforms {
            Some(p) if !p.is_empty() => p,
            _ => &default_platforms,
        };
        for name in platforms {
            match config.platforms.get(name) {
                Some(platform) => out.push(ScheduledJob {
                    entry,
                    job,
                    runtime: runtime.to_string(),
                    lab_type: runtime_type.clone(),
                    platform,
                    rules: entry.rules.as_ref(),
                }),
                None => skipped.push(skip(format!("unknown platform `{name}`"))),
            }
        }
    }
    (out, skipped)
}

/// `jobfilter` (§2.11): a job named `job_name` whose node path would be `candidate_path`
/// (the input node's path plus the job name) may be created iff the filter is absent or
/// empty, lists the name, or has an entry `X+` with `X` equal to the name or in the path.
pub fn jobfilter_allows(
    jobfilter: Option<&[String]>,
    job_name: &str,
    candidate_path: &[String],
) -> bool {
    let Some(filter) = jobfilter.filter(|f| !f.is_empty()) else {
        return true;
    };
    if filter.iter().any(|f| f == job_name) {
        return true;
    }
    filter
        .iter()
        .filter(|f| f.ends_with('+'))
        .map(|f| f.trim_end_matches('+'))
        .any(|x| x == job_name || candidate_path.iter().any(|p| p == x))
}

/// `platform_filter` (§2.11): only `kind: job` candidates are filtered; they need their
/// platform listed when the filter is present and not empty.
pub fn platform_filter_allows(
    platform_filter: Option<&[String]>,
    job_kind: &str,
    platform_name: &str,
) -> bool {
    match platform_filter {
        Some(f) if !f.is_empty() && job_kind == "job" => f.iter().any(|p| p == platform_name),
        _ => true,
    }
}

/// A job `frequency` (`[Nd][Nh][Nm]`, e.g. `1d12h`) in seconds. `None` when the text is not
/// of that form or is shorter than a minute (upstream ignores such limits).
pub fn parse_frequency(text: &str) -> Option<u64> {
    let mut rest = text;
    let mut total: u64 = 0;
    let mut any = false;
    for (unit, seconds) in [('d', 86_400u64), ('h', 3_600), ('m', 60)] {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || rest.as_bytes().get(digits) != Some(&(unit as u8)) {
            continue;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        total = total.checked_add(n.checked_mul(seconds)?)?;
        rest = &rest[digits + 1..];
        any = true;
    }
    if !any || !rest.is_empty() || total < 60 {
        return None;
    }
    Some(total)
}
