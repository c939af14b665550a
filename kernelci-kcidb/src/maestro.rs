//! Maestro node tree -> KCIDB v5.3 objects, as upstream's bridge (`send_kcidb.py`,
//! specs/pipeline.md §7) maps them.
//!
//! Nodes are the JSON documents the Maestro API returns (`GET node/{id}`); ancestors are
//! read through a [`NodeLookup`] the caller implements (API client, cache, map). Nothing
//! here does IO: log excerpts are fetched (and gunzipped) by the caller and passed in.
//!
//! - `kind: checkout` -> a checkout (§7.2); a timed-out checkout is skipped.
//! - `kind: kbuild` -> a build (§7.3).
//! - `kind: job | test | process` -> a test (§7.4), linked to the nearest `kbuild` or
//!   `checkout` ancestor; a test hanging off a checkout gets a dummy build.
//! - [`should_defer_for_retry`]: the retry suppression of §7.6 (such nodes are marked
//!   processed without being sent; the retry reports instead).
//! - [`submission`] gathers mapped objects into one v5.3 document.
//!
//! Ids are `<origin>:<node id>`; timestamps (naive UTC as the API serializes them) get an
//! explicit `+00:00`; `null`s are removed recursively, as upstream does.
//!
//! # Deliberate differences from upstream
//!
//! 1. **`patchset_hash`** is `data.kernel_revision.patchset` when set (patchset nodes,
//!    which have `kind: checkout`); upstream always sends `""`.
//! 2. **`misc.maestro_viewer`** is `<viewer_base_url>/viewer?node_id=<id>` from the one
//!    configured [`MappingConfig::viewer_base_url`] for builds and tests alike (upstream uses
//!    the API URL for builds and a hard-coded `https://api.kernelci.org` for tests); no base
//!    URL, no link.
//! 3. **No crash on missing fields.** Where upstream raises (`KeyError` on a missing
//!    `parent` or `data.kernel_revision`, a job id concatenated with `None`, an ancestor
//!    that cannot be fetched) the result is [`Mapped::Skip`] with a reason, or the optional
//!    field is simply left out (no `"None"` in comments; an unknown platform has no
//!    compatibles; a repository URL KCIDB cannot take, i.e. not https://, is left out).
//! 4. **NUL characters are stripped** from every string (and key) of every object:
//!    PostgreSQL text cannot store them, and KCIDB would refuse the whole batch.
//! 5. **Each object is validated** against the v5.3 schema before it is returned; an
//!    invalid one (e.g. a commit hash that is not 40 hex digits, a relative artifact URL)
//!    becomes [`Mapped::Skip`] with the problems, instead of making the whole batch invalid
//!    and re-sent forever as upstream does.
//! 6. **Test paths** drop the build link's own path as the prefix (`checkout` for tests
//!    off a checkout, `checkout.<kbuild>` off a kbuild, `checkout.patchset` off a patchset
//!    node) instead of a fixed 1 or 2 elements, so tests under a patchset do not start with
//!    `patchset.`; the `setup` filter looks at whole path elements (upstream's substring
//!    test also dropped e.g. `kselftest.net.setup_veth`); artifacts with an empty name
//!    are left out of `output_files`.
//! 7. **Retry suppression** compares `retry_counter < 3` (upstream `!= 3` would also swallow
//!    nodes whose counter went past 3, which job-retry never retries) and applies the
//!    `baseline*`/`fail` rule only to the kinds job-retry retries (`kbuild`, `job`).
//!
//! Issues and incidents (logspec, §7.5) are not produced here.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

/// The longest `log_excerpt` KCIDB accepts, in characters (code points).
pub const LOG_EXCERPT_MAX_CHARS: usize = 16 * 1024;

/// The retry count after which job-retry gives up (and the result is reported).
pub const MAX_RETRIES: i64 = 3;

/// `error_code`s of incomplete tests reported as `ERROR` (the test or lab failed).
pub const ERROR_CODES: &[&str] = &[
    "Canceled",
    "Infrastructure",
    "LAVATimeout",
    "MultinodeTimeout",
    "Test",
];

/// `error_code`s of incomplete tests reported as `MISS` (the test did not run).
pub const MISS_CODES: &[&str] = &[
    "Bug",
    "Configuration",
    "invalid_job_params",
    "Job",
    "job_generation_error",
    "ObjectNotPersisted",
    "RequestBodyTooLarge",
    "submit_error",
    "Unexisting permission codename.",
    "kbuild_internal_error",
];

/// The `data` key (`true`) marking a job the pipeline expected but never ran, reported
/// when its checkout settled (its `error_code` is upstream's `submit_error`): builds and
/// tests alike are sent as `MISS`.
pub const MISSING: &str = "missing";

/// The `error_code` the timeout service sets.
const NODE_TIMEOUT: &str = "node_timeout";

/// How deep ancestor walks go (a guard against cycles and broken trees).
const MAX_DEPTH: usize = 64;

/// What the pipeline configuration says about a job name, for test paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// A kernel build job: its name is dropped from test paths.
    Kbuild,
    /// A test job: its name is replaced by its `kcidb_test_suite`; a job without one cannot
    /// be reported (its tests are skipped).
    Test {
        /// The `kcidb_test_suite` of the job, e.g. `boot` for `baseline-arm64`.
        kcidb_test_suite: Option<String>,
    },
}

/// The pipeline configuration the mapping needs.
#[derive(Debug, Clone, Default)]
pub struct MappingConfig {
    /// The KCIDB origin (`maestro`); ids are `<origin>:<node id>`.
    pub origin: String,
    /// The API base URL for `misc.maestro_viewer` links, e.g. `https://api.kernelci.org`
    /// (`None`: no link).
    pub viewer_base_url: Option<String>,
    /// Every configured job, by name.
    pub jobs: HashMap<String, JobKind>,
    /// Runtimes that are labs (LAVA, pull_labs), by name, with the LAVA server URL used
    /// for `job_url` links (`<url>/scheduler/job/<job id>`; `None`: no link).
    pub lab_runtimes: HashMap<String, Option<String>>,
    /// Every configured platform, by name, with its device-tree `compatible` list.
    pub platform_compatible: HashMap<String, Vec<String>>,
}

impl MappingConfig {
    /// A configuration with only an origin.
    pub fn new(origin: impl Into<String>) -> Self {
        MappingConfig {
            origin: origin.into(),
            ..MappingConfig::default()
        }
    }
}

/// Reads nodes by id (the caller implements it over the API or a cache).
pub trait NodeLookup {
    /// The node document with this id, `None` when it does not exist or cannot be read.
    fn node(&self, id: &str) -> Option<Value>;
}

impl NodeLookup for HashMap<String, Value> {
    fn node(&self, id: &str) -> Option<Value> {
        self.get(id).cloned()
    }
}

/// Indexes node documents by their `id`, e.g. to use them as a [`NodeLookup`].
pub fn index_nodes(nodes: impl IntoIterator<Item = Value>) -> HashMap<String, Value> {
    nodes
        .into_iter()
        .filter_map(|node| Some((str_at(&node, "/id")?.to_owned(), node)))
        .collect()
}

/// The result of mapping one node.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A KCIDB checkout object.
    Checkout(Value),
    /// A KCIDB build object.
    Build(Value),
    /// A KCIDB test object, with the dummy build it needs when it hangs off a checkout.
    Test {
        /// The test object.
        test: Value,
        /// `<origin>:dummy_<checkout id>[_<arch>]`, for tests hanging off a checkout.
        dummy_build: Option<Value>,
    },
    /// Nothing to send for this node (upstream's silent drops, and what made it crash).
    Skip {
        /// Why, for the logs.
        reason: String,
    },
}

impl Mapped {
    fn skip(reason: impl Into<String>) -> Self {
        Mapped::Skip {
            reason: reason.into(),
        }
    }

    /// The reason when this is a [`Mapped::Skip`].
    pub fn skip_reason(&self) -> Option<&str> {
        match self {
            Mapped::Skip { reason } => Some(reason),
            _ => None,
        }
    }
}

/// Maps one node to its KCIDB object(s).
///
/// `log_excerpt` is the text of the log at [`log_url`] (already fetched and gunzipped by the
/// caller); its last [`LOG_EXCERPT_MAX_CHARS`] characters become `log_excerpt`.
pub fn map_node(
    node: &Value,
    lookup: &dyn NodeLookup,
    cfg: &MappingConfig,
    log_excerpt: Option<&str>,
) -> Mapped {
    let Some(id) = str_at(node, "/id") else {
        return Mapped::skip("node without an id");
    };
    let mapped = match str_at(node, "/kind") {
        Some("checkout") => map_checkout(node, id, cfg),
        Some("kbuild") => map_build(node, id, cfg, log_excerpt),
        Some("job" | "test" | "process") => map_test(node, id, lookup, cfg, log_excerpt),
        Some(kind) => Mapped::skip(format!("node {id}: kind {kind} is not sent to KCIDB")),
        None => Mapped::skip(format!("node {id} without a kind")),
    };
    validated(mapped)
}

/// The log URL [`map_node`] reports for this node, i.e. the log the caller should fetch
/// for its excerpt: `artifacts.build_log` of a kbuild; for a test, `lava_log` or else
/// `test_log` of the node or its nearest ancestor with artifacts (none for `SKIP` tests).
pub fn log_url(node: &Value, lookup: &dyn NodeLookup) -> Option<String> {
    match str_at(node, "/kind")? {
        "kbuild" => non_empty_artifacts(node)
            .and_then(|a| a.get("build_log"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        "job" | "test" | "process" => {
            let chain = Chain::of(node, lookup);
            if test_status(node, &chain) == Some("SKIP") {
                return None;
            }
            test_log_url(chain.artifacts()?).map(str::to_owned)
        }
        _ => None,
    }
}

/// Whether a node is left for its retry (§7.6): marked processed without being sent,
/// because job-retry schedules a new node that will be reported instead.
///
/// True for a node [`is_retried`] whose `retry_counter` is below `max_retries` (the
/// job-retry role's limit; upstream's is [`MAX_RETRIES`]).
pub fn should_defer_for_retry(node: &Value, max_retries: i64) -> bool {
    let retries = node
        .get("retry_counter")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    is_retried(node) && retries < max_retries
}

/// Whether the job-retry role runs this finished node again (retries left aside): a
/// kbuild or job that ended `incomplete`, or a `baseline*` job that failed, unless its
/// `error_code` is the test's fault ([`crate::regress::classify::error_code_class`]: a
/// wrong job definition fails the same way each time) or it is a missing job
/// ([`MISSING`]).
pub fn is_retried(node: &Value) -> bool {
    let retried_kind = matches!(str_at(node, "/kind"), Some("kbuild" | "job"));
    let retried_result = match str_at(node, "/result") {
        Some("incomplete") => true,
        Some("fail") => str_at(node, "/name").is_some_and(|n| n.starts_with("baseline")),
        _ => false,
    };
    let test_fault = str_at(node, "/data/error_code")
        .and_then(crate::regress::classify::error_code_class)
        == Some(crate::regress::FailureClass::Test);
    let missing = node.pointer("/data/missing") == Some(&Value::Bool(true));
    retried_kind && retried_result && !test_fault && !missing
}

/// The KCIDB test path of a node path (§7.4), or why the test is not sent.
///
/// `prefix_len` leading elements (the build link's own path: 1 for a test off a checkout,
/// 2 off a kbuild) are dropped; a duplicated leading pair is collapsed; job names are
/// dropped (kbuilds) or replaced by their `kcidb_test_suite`; the leading pair is collapsed
/// again; characters outside `[.a-zA-Z0-9_-]` become `_`; empty elements vanish. Empty
/// paths, jobs without a suite and `setup` paths (except `os-release`) are refused.
pub fn test_path(
    node_path: &[String],
    prefix_len: usize,
    cfg: &MappingConfig,
) -> Result<String, String> {
    let mut rest: &[String] = node_path.get(prefix_len..).unwrap_or_default();
    if rest.len() >= 2 && rest[0] == rest[1] {
        rest = &rest[1..];
    }
    let mut elements: Vec<&str> = Vec::with_capacity(rest.len());
    for element in rest {
        match cfg.jobs.get(element) {
            Some(JobKind::Kbuild) => {}
            Some(JobKind::Test {
                kcidb_test_suite: Some(suite),
            }) => elements.push(suite),
            Some(JobKind::Test {
                kcidb_test_suite: None,
            }) => return Err(format!("job {element} has no kcidb_test_suite")),
            None => elements.push(element),
        }
    }
    if elements.len() >= 2 && elements[0] == elements[1] {
        elements.remove(0);
    }
    let joined: String = elements
        .join(".")
        .chars()
        .filter(|&c| c != '\0')
        .map(|c| {
            if c == '.' || c == '_' || c == '-' || c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        })
        .collect();
    let segments: Vec<&str> = joined.split('.').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return Err("empty test path".to_owned());
    }
    if segments.contains(&"setup") && !segments.contains(&"os-release") {
        return Err(format!("setup test {} is not sent", segments.join(".")));
    }
    Ok(segments.join("."))
}

/// The last [`LOG_EXCERPT_MAX_CHARS`] characters of a log, NUL characters removed.
pub fn log_excerpt(log: &str) -> String {
    let clean: Vec<char> = log.chars().filter(|&c| c != '\0').collect();
    let start = clean.len().saturating_sub(LOG_EXCERPT_MAX_CHARS);
    clean[start..].iter().collect()
}

/// A node timestamp as a KCIDB date-time: naive values (the API's
/// `2026-11-28T10:47:29.123000`) are UTC and get `+00:00`; values with an offset keep it.
/// Written like Python's `isoformat()` (microseconds only when not zero).
pub fn kcidb_timestamp(created: &str) -> Option<String> {
    use chrono::{DateTime, NaiveDateTime, Timelike};
    let (naive, offset) = match DateTime::parse_from_rfc3339(created) {
        Ok(dt) => (dt.naive_local(), dt.offset().to_string()),
        Err(_) => {
            let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|fmt| NaiveDateTime::parse_from_str(created, fmt).ok())?;
            (naive, "+00:00".to_owned())
        }
    };
    let micros = naive.nanosecond() % 1_000_000_000 / 1000;
    let fraction = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    Some(format!(
        "{}{fraction}{offset}",
        naive.format("%Y-%m-%dT%H:%M:%S")
    ))
}

/// One KCIDB v5.3 document from mapped objects: skips are left out, dummy builds with the
/// same id are sent once, `null`s are removed and NUL characters stripped everywhere.
pub fn submission(objects: impl IntoIterator<Item = Mapped>) -> Value {
    let mut checkouts = Vec::new();
    let mut builds = Vec::new();
    let mut tests = Vec::new();
    let mut dummy_ids = HashSet::new();
    for object in objects {
        match object {
            Mapped::Checkout(checkout) => checkouts.push(clean(checkout)),
            Mapped::Build(build) => builds.push(clean(build)),
            Mapped::Test { test, dummy_build } => {
                if let Some(dummy) = dummy_build {
                    let id = str_at(&dummy, "/id").unwrap_or_default().to_owned();
                    if dummy_ids.insert(id) {
                        builds.push(clean(dummy));
                    }
                }
                tests.push(clean(test));
            }
            Mapped::Skip { .. } => {}
        }
    }
    json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": checkouts,
        "builds": builds,
        "tests": tests,
        "issues": [],
        "incidents": [],
    })
}

// --- the three mappings -------------------------------------------------------------------

fn map_checkout(node: &Value, id: &str, cfg: &MappingConfig) -> Mapped {
    let result = str_at(node, "/result");
    let error_code = str_at(node, "/data/error_code");
    if result == Some("incomplete") && error_code == Some(NODE_TIMEOUT) {
        return Mapped::skip(format!("checkout {id} timed out"));
    }
    let Some(rev) = node
        .pointer("/data/kernel_revision")
        .filter(|r| r.is_object())
    else {
        return Mapped::skip(format!("checkout {id} has no data.kernel_revision"));
    };
    let rev_str = |key: &str| rev.get(key).and_then(Value::as_str);
    let valid = match result {
        Some("pass") => Some(true),
        Some("fail" | "incomplete") => Some(false),
        _ => None,
    };
    let tags = rev
        .get("commit_tags")
        .and_then(Value::as_array)
        .map(|tags| tags.iter().filter_map(Value::as_str).collect::<Vec<_>>());
    Mapped::Checkout(clean(json!({
        "id": object_id(cfg, id),
        "origin": cfg.origin,
        "tree_name": rev_str("tree"),
        // KCIDB v5.3 takes only https:// repository URLs: a tree watched through a local
        // path, git:// or ssh is sent without one rather than rejected.
        "git_repository_url": rev_str("url").filter(|u| u.starts_with("https://")),
        "git_commit_hash": rev_str("commit"),
        "git_commit_name": rev_str("describe"),
        "git_repository_branch": rev_str("branch"),
        "git_commit_tags": tags,
        "git_commit_message": rev_str("commit_message"),
        "git_repository_branch_tip": rev.get("tip_of_branch").and_then(Value::as_bool),
        "start_time": created(node),
        "patchset_hash": rev_str("patchset").unwrap_or_default(),
        "misc": {"submitted_by": "kernelci-pipeline"},
        "valid": valid,
    })))
}

fn map_build(node: &Value, id: &str, cfg: &MappingConfig, log: Option<&str>) -> Mapped {
    let Some(parent) = str_at(node, "/parent") else {
        return Mapped::skip(format!("kbuild {id} has no parent checkout"));
    };
    let data = |key: &str| node.get("data").and_then(|d| d.get(key));
    let data_str = |key: &str| data(key).and_then(Value::as_str);
    let error_code = data_str("error_code");
    let status = match (str_at(node, "/result"), error_code) {
        (None, _) => None,
        _ if data(MISSING) == Some(&Value::Bool(true)) => Some("MISS"),
        (Some("incomplete"), Some(NODE_TIMEOUT)) => Some("MISS"),
        (Some(_), Some(_)) => Some("ERROR"),
        (Some("pass"), None) => Some("PASS"),
        (Some("fail"), None) => Some("FAIL"),
        (Some("incomplete"), None) => Some("ERROR"),
        (Some(_), None) => None,
    };
    let runtime = data_str("runtime");
    let mut build = json!({
        "id": object_id(cfg, id),
        "origin": cfg.origin,
        "checkout_id": object_id(cfg, parent),
        "comment": node.pointer("/data/kernel_revision/describe").and_then(Value::as_str),
        "start_time": created(node),
        "architecture": data_str("arch"),
        "compiler": data_str("compiler"),
        "config_name": data_str("config_full").or_else(|| data_str("defconfig")),
        "status": status,
        "misc": {
            "platform": data("platform"),
            "runtime": runtime,
            "lab": lab(cfg, runtime),
            "job_id": data("job_id"),
            "job_context": data("job_context"),
            "kernel_type": data("kernel_type"),
            "error_code": data("error_code"),
            "error_msg": data("error_msg"),
            "maestro_viewer": viewer_url(cfg, id),
        },
    });
    if let Some(artifacts) = non_empty_artifacts(node) {
        let log_url = artifacts.get("build_log").and_then(Value::as_str);
        build["output_files"] = output_files(artifacts, &["build_log", "_config"]);
        build["config_url"] = json!(artifacts.get("_config").and_then(Value::as_str));
        build["log_url"] = json!(log_url);
        if let (Some(_), Some(text)) = (log_url, log) {
            build["log_excerpt"] = excerpt_value(text);
        }
    }
    Mapped::Build(clean(build))
}

fn map_test(
    node: &Value,
    id: &str,
    lookup: &dyn NodeLookup,
    cfg: &MappingConfig,
    log: Option<&str>,
) -> Mapped {
    let chain = Chain::of(node, lookup);
    let Some(link) = chain.build_link() else {
        return Mapped::skip(match &chain.missing {
            Some(missing) => format!("test {id}: ancestor {missing} not found"),
            None => format!("test {id} has no kbuild or checkout ancestor"),
        });
    };
    let data = |key: &str| node.get("data").and_then(|d| d.get(key));
    let data_str = |key: &str| data(key).and_then(Value::as_str);
    let link_id = str_at(link, "/id").unwrap_or_default();
    let off_checkout = str_at(link, "/kind") == Some("checkout");

    let node_path = string_list(node.get("path"));
    let link_path = string_list(link.get("path"));
    let prefix_len = if !link_path.is_empty() && node_path.starts_with(&link_path) {
        link_path.len()
    } else if off_checkout {
        1
    } else {
        2
    };
    let path = match test_path(&node_path, prefix_len, cfg) {
        Ok(path) => path,
        Err(reason) => return Mapped::skip(format!("test {id}: {reason}")),
    };

    let platform = data_str("platform");
    let compatible = match platform {
        Some(p) => match cfg.platform_compatible.get(p) {
            Some(list) if list.is_empty() => None,
            Some(list) => Some(list),
            // A platform the configuration does not describe: no compatible strings.
            None => None,
        },
        None => None,
    };

    let (build_id, dummy_build) = if off_checkout {
        let arch = data_str("arch").filter(|a| !a.is_empty());
        let dummy_id = match arch {
            Some(arch) => format!("{}:dummy_{link_id}_{arch}", cfg.origin),
            None => format!("{}:dummy_{link_id}", cfg.origin),
        };
        let dummy = json!({
            "id": dummy_id,
            "checkout_id": object_id(cfg, link_id),
            "comment": "Dummy build for tests hanging from checkout",
            "origin": cfg.origin,
            "start_time": created(link),
            "architecture": arch,
        });
        (dummy_id, Some(clean(dummy)))
    } else {
        (object_id(cfg, link_id), None)
    };

    let runtime = data_str("runtime");
    let name = str_at(node, "/name").unwrap_or(id);
    let mut comment = name.to_owned();
    if let Some(platform) = platform {
        comment.push_str(&format!(" on {platform}"));
    }
    if let Some(runtime) = runtime {
        comment.push_str(&format!(" in {runtime}"));
    }
    let status = test_status(node, &chain);
    let mut test = json!({
        "build_id": build_id,
        "id": object_id(cfg, id),
        "origin": cfg.origin,
        "comment": comment,
        "start_time": created(node),
        "environment": {
            "comment": runtime.map(|r| format!("Runtime: {r}")),
            "compatible": compatible,
            "misc": {
                "platform": platform,
                "measurement": node.pointer("/data/misc/measurement"),
            },
        },
        "path": path,
        "status": status,
        "misc": {
            "test_source": data("test_source"),
            "test_revision": data("test_revision"),
            "compiler": data("compiler"),
            "kernel_type": data("kernel_type"),
            "arch": data("arch"),
            "runtime": runtime,
            "lab": lab(cfg, runtime),
            "maestro_viewer": viewer_url(cfg, id),
        },
    });
    if status == Some("SKIP") {
        return Mapped::Test {
            test: clean(test),
            dummy_build,
        };
    }

    if let Some(job) = chain.nearest(|n| n.pointer("/data/job_id").is_some_and(truthy)) {
        let job_id = job.pointer("/data/job_id");
        let job_id_text = job_id.and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let job_url = str_at(job, "/data/runtime")
            .and_then(|r| cfg.lab_runtimes.get(r))
            .and_then(Option::as_deref)
            .zip(job_id_text)
            .map(|(url, job_id)| format!("{}/scheduler/job/{job_id}", url.trim_end_matches('/')));
        let env_misc = &mut test["environment"]["misc"];
        env_misc["job_id"] = job_id.cloned().unwrap_or(Value::Null);
        env_misc["job_context"] = job
            .pointer("/data/job_context")
            .cloned()
            .unwrap_or(Value::Null);
        env_misc["job_url"] = json!(job_url);
    }

    if let Some(artifacts) = chain.artifacts() {
        let url = test_log_url(artifacts);
        test["output_files"] = output_files(artifacts, &["lava_log", "test_log"]);
        test["log_url"] = json!(url);
        if let (Some(_), Some(text)) = (url, log) {
            test["log_excerpt"] = excerpt_value(text);
        }
    }

    if str_at(node, "/result") != Some("pass")
        && let Some(error) = chain.error_node()
    {
        test["misc"]["error_code"] = error
            .pointer("/data/error_code")
            .cloned()
            .unwrap_or(Value::Null);
        test["misc"]["error_msg"] = error
            .pointer("/data/error_msg")
            .cloned()
            .unwrap_or(Value::Null);
    }

    Mapped::Test {
        test: clean(test),
        dummy_build,
    }
}

/// A test's status (§7.4): an own or inherited `Infrastructure` error is `ERROR`; an
/// incomplete result is `ERROR`/`MISS` by its own error code (none: no status); otherwise
/// the result in upper case. No result, no status.
fn test_status(node: &Value, chain: &Chain) -> Option<&'static str> {
    let result = str_at(node, "/result")?;
    let effective_code = chain
        .error_node()
        .and_then(|n| str_at(n, "/data/error_code"));
    if effective_code == Some("Infrastructure") {
        return Some("ERROR");
    }
    match result {
        "incomplete" => {
            let own = str_at(node, "/data/error_code")?;
            if ERROR_CODES.contains(&own) {
                Some("ERROR")
            } else if MISS_CODES.contains(&own) {
                Some("MISS")
            } else {
                None
            }
        }
        "pass" => Some("PASS"),
        "fail" => Some("FAIL"),
        "skip" => Some("SKIP"),
        _ => None,
    }
}

// --- ancestors ----------------------------------------------------------------------------

/// A node and its ancestors, nearest first, as far as they could be read.
struct Chain {
    nodes: Vec<Value>,
    /// The id of the first ancestor that could not be read.
    missing: Option<String>,
}

impl Chain {
    fn of(node: &Value, lookup: &dyn NodeLookup) -> Chain {
        let mut nodes = vec![node.clone()];
        let mut seen: HashSet<String> =
            str_at(node, "/id").map(str::to_owned).into_iter().collect();
        let mut missing = None;
        let mut parent = str_at(node, "/parent").map(str::to_owned);
        while let Some(id) = parent.take() {
            if nodes.len() > MAX_DEPTH || !seen.insert(id.clone()) {
                break;
            }
            match lookup.node(&id) {
                Some(next) => {
                    parent = str_at(&next, "/parent").map(str::to_owned);
                    nodes.push(next);
                }
                None => missing = Some(id),
            }
        }
        Chain { nodes, missing }
    }

    /// The nearest node (itself included) matching `pred`.
    fn nearest(&self, pred: impl Fn(&Value) -> bool) -> Option<&Value> {
        self.nodes.iter().find(|n| pred(n))
    }

    /// The nearest ancestor (not the node itself) of kind kbuild or checkout.
    fn build_link(&self) -> Option<&Value> {
        self.nodes[1..]
            .iter()
            .find(|n| matches!(str_at(n, "/kind"), Some("kbuild" | "checkout")))
    }

    /// The nearest node (itself included) with an `error_code`.
    fn error_node(&self) -> Option<&Value> {
        self.nearest(|n| n.pointer("/data/error_code").is_some_and(truthy))
    }

    /// The artifacts of the nearest node (itself included) that has some.
    fn artifacts(&self) -> Option<&Map<String, Value>> {
        self.nodes.iter().find_map(non_empty_artifacts)
    }
}

// --- helpers ------------------------------------------------------------------------------

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Python truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn object_id(cfg: &MappingConfig, node_id: &str) -> String {
    format!("{}:{node_id}", cfg.origin)
}

fn created(node: &Value) -> Option<String> {
    str_at(node, "/created").and_then(kcidb_timestamp)
}

fn lab<'a>(cfg: &MappingConfig, runtime: Option<&'a str>) -> Option<&'a str> {
    runtime.filter(|r| cfg.lab_runtimes.contains_key(*r))
}

fn viewer_url(cfg: &MappingConfig, id: &str) -> Option<String> {
    let base = cfg.viewer_base_url.as_deref()?.trim_end_matches('/');
    Some(format!("{base}/viewer?node_id={id}"))
}

fn non_empty_artifacts(node: &Value) -> Option<&Map<String, Value>> {
    node.get("artifacts")
        .and_then(Value::as_object)
        .filter(|a| !a.is_empty())
}

fn test_log_url(artifacts: &Map<String, Value>) -> Option<&str> {
    ["lava_log", "test_log"].iter().find_map(|k| {
        artifacts
            .get(*k)
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
    })
}

/// `[{name, url}]` for every artifact but `exclude`, `/` in names replaced by `_`.
fn output_files(artifacts: &Map<String, Value>, exclude: &[&str]) -> Value {
    artifacts
        .iter()
        .filter(|(name, _)| !name.is_empty() && !exclude.contains(&name.as_str()))
        .filter_map(|(name, url)| {
            Some(json!({"name": name.replace('/', "_"), "url": url.as_str()?}))
        })
        .collect()
}

fn excerpt_value(log: &str) -> Value {
    let excerpt = log_excerpt(log);
    if excerpt.is_empty() {
        Value::Null
    } else {
        Value::String(excerpt)
    }
}

/// Removes `null`s (object members and list items) and NUL characters, recursively.
fn clean(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "")),
        Value::Array(items) => items
            .into_iter()
            .filter(|v| !v.is_null())
            .map(clean)
            .collect(),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.replace('\0', ""), clean(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Skips an object that would make the submission invalid, with the problems as reason.
fn validated(mapped: Mapped) -> Mapped {
    let doc = match &mapped {
        Mapped::Checkout(c) => json!({"checkouts": [c]}),
        Mapped::Build(b) => json!({"builds": [b]}),
        Mapped::Test { test, dummy_build } => {
            json!({"builds": dummy_build.iter().collect::<Vec<_>>(), "tests": [test]})
        }
        Mapped::Skip { .. } => return mapped,
    };
    let mut doc = doc;
    doc["version"] = json!({"major": 5, "minor": 3});
    match crate::validate(&doc) {
        Ok(_) => mapped,
        Err(rejection) => {
            let id = match &mapped {
                Mapped::Checkout(o) | Mapped::Build(o) | Mapped::Test { test: o, .. } => {
                    str_at(o, "/id").unwrap_or_default()
                }
                Mapped::Skip { .. } => "",
            };
            Mapped::skip(format!("{id} is not valid KCIDB: {rejection}"))
        }
    }
}
