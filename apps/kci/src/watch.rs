//! Following a tree of jobs to its end (`kci watch`, `kci checkout --watch`,
//! `kci patchset --watch`), as kci-dev's `maestro_watch_jobs` does, with its exit codes made
//! consistent:
//!
//! | outcome | exit |
//! |---|---|
//! | every watched job finished (and the `--test` passed) | 0 |
//! | the `--test` ran and did not pass | 1 |
//! | a job the test needs failed, or the test result never appeared | 2 |
//! | the Maestro API stayed unreachable (`--give-up` seconds): try again later | 3 |
//!
//! kci-dev's bisect already reads 3 as "Maestro error, retry", but kci-dev never emits it.
//! kci-dev polls every 30 s; `--interval` sets ours (default 10 s).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::maestro::{ApiError, Maestro};
use crate::output::Paint;

/// Options shared by the watching commands.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Seconds between polls of the Maestro API.
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// Seconds the test result may take to appear after the jobs end.
    #[arg(long, default_value_t = 60.0)]
    pub result_grace: f64,
    /// Seconds of an unreachable Maestro API before giving up (exit 3).
    #[arg(long, default_value_t = 600.0)]
    pub give_up: f64,
}

/// How a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every watched job finished; no test asked for.
    Finished,
    /// The test passed.
    TestPassed,
    /// The test ran with this result.
    TestFailed(String),
    /// This job failed before the test could run.
    PrerequisiteFailed(String),
    /// The jobs ended but the test result did not appear.
    ResultMissing,
    /// The API could not be reached for too long.
    Unreachable(String),
}

impl Outcome {
    /// The process exit code (see the module documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Finished | Outcome::TestPassed => 0,
            Outcome::TestFailed(_) => 1,
            Outcome::PrerequisiteFailed(_) | Outcome::ResultMissing => 2,
            Outcome::Unreachable(_) => 3,
        }
    }

    fn describe(&self, test: Option<&str>) -> String {
        let test = test.unwrap_or("?");
        match self {
            Outcome::Finished => "all watched jobs finished".into(),
            Outcome::TestPassed => format!("test {test} passed"),
            Outcome::TestFailed(r) => format!("test {test} did not pass: {r}"),
            Outcome::PrerequisiteFailed(job) => {
                format!("job {job} failed, test {test} could not run")
            }
            Outcome::ResultMissing => format!("test {test}: no result after the jobs ended"),
            Outcome::Unreachable(e) => format!("the Maestro API stayed unreachable: {e}"),
        }
    }
}

/// kci-dev's three-way node status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    Done,
    Failed,
}

fn str_of<'a>(node: &'a Value, key: &str) -> &'a str {
    node.get(key).and_then(Value::as_str).unwrap_or("")
}

/// kci-dev's `maestro_check_node`, with two fixes: a job that passed is done in any of the
/// finished states (kci-dev calls a passed kbuild still `available` for its tests failed),
/// and a failed kbuild is a failure (kci-dev counts it done, then waits for a test that
/// cannot come). A test that ran and failed is done: its result is the answer.
fn status(node: &Value, root: &str) -> Status {
    let (state, result) = (
        str_of(node, "state"),
        node.get("result").and_then(Value::as_str),
    );
    let finished = matches!(state, "available" | "closing" | "done");
    if state == "running" {
        return Status::Running;
    }
    if str_of(node, "name") == root {
        return match (state, result) {
            ("available" | "closing", _) | ("done", Some("pass")) => Status::Done,
            _ => Status::Failed,
        };
    }
    match (state, result) {
        (_, Some("pass")) if finished => Status::Done,
        ("done", Some("fail")) if str_of(node, "kind") != "kbuild" => Status::Done,
        ("available" | "closing", None) => Status::Running,
        _ => Status::Failed,
    }
}

/// Follows tree `treeid` until the jobs named in `jobs` (and the root node) end.
pub fn watch(
    maestro: &Maestro,
    treeid: &str,
    jobs: &[String],
    root: &str,
    test: Option<&str>,
    args: &WatchArgs,
    json: bool,
) -> Outcome {
    let mut watched: BTreeSet<String> = jobs.iter().cloned().collect();
    watched.insert(root.to_string());
    let interval = secs(args.interval);
    let printer = Printer::new(json);
    printer.note(&format!(
        "watching tree {treeid}: {}",
        watched.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut unreachable_since: Option<Instant> = None;
    let mut jobs_done_at: Option<Instant> = None;
    loop {
        let nodes = match maestro.nodes(&[("treeid".into(), treeid.into())]) {
            Ok(nodes) => {
                unreachable_since = None;
                nodes
            }
            Err(e @ (ApiError::Unavailable { .. } | ApiError::BadReply { .. })) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= secs(args.give_up) {
                    return printer.finish(Outcome::Unreachable(e.to_string()), test);
                }
                printer.note(&format!("{e} (retrying)"));
                std::thread::sleep(interval);
                continue;
            }
            Err(e) => return printer.finish(Outcome::Unreachable(e.to_string()), test),
        };
        let mut by_name: BTreeMap<&str, Vec<Status>> = BTreeMap::new();
        let mut test_result: Option<String> = None;
        for node in &nodes {
            let name = str_of(node, "name");
            if Some(name) == test && str_of(node, "state") == "done" {
                test_result = Some(
                    node.get("result")
                        .and_then(Value::as_str)
                        .unwrap_or("null")
                        .to_string(),
                );
            }
            if !watched.contains(name) {
                continue;
            }
            let s = status(node, root);
            by_name.entry(name).or_default().push(s);
            if s != Status::Running && reported.insert(str_of(node, "id").to_string()) {
                printer.node(node);
            }
            if s == Status::Failed && test.is_some_and(|t| t != name) {
                return printer.finish(Outcome::PrerequisiteFailed(name.to_string()), test);
            }
        }
        let running = by_name
            .values()
            .flatten()
            .filter(|s| **s == Status::Running)
            .count();
        let all_seen = watched.iter().all(|w| by_name.contains_key(w.as_str()));
        if all_seen && running == 0 {
            let Some(test) = test else {
                return printer.finish(Outcome::Finished, None);
            };
            match test_result.as_deref() {
                Some("pass") => return printer.finish(Outcome::TestPassed, Some(test)),
                Some(other) => {
                    return printer.finish(Outcome::TestFailed(other.to_string()), Some(test));
                }
                None => {
                    let done_at = *jobs_done_at.get_or_insert_with(Instant::now);
                    if done_at.elapsed() >= secs(args.result_grace) {
                        return printer.finish(Outcome::ResultMissing, Some(test));
                    }
                }
            }
        }
        printer.progress(running, reported.len());
        std::thread::sleep(interval);
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// Prints finished nodes as they come: colored lines, or JSON lines with `--json`.
struct Printer {
    json: bool,
    paint: Paint,
    spinner: bool,
    start: Instant,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            json,
            paint: Paint::stdout(),
            spinner: !json && std::io::stderr().is_terminal(),
            start: Instant::now(),
        }
    }

    fn clear_spinner(&self) {
        if self.spinner {
            eprint!("\r\x1b[2K");
        }
    }

    fn note(&self, text: &str) {
        self.clear_spinner();
        eprintln!("{text}");
    }

    fn progress(&self, running: usize, done: usize) {
        if self.spinner {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let t = self.start.elapsed().as_secs();
            eprint!(
                "\r\x1b[2K{} {running} running, {done} finished ({t} s)",
                FRAMES[(t % 4) as usize]
            );
            let _ = std::io::stderr().flush();
        }
    }

    fn node(&self, node: &Value) {
        self.clear_spinner();
        if self.json {
            let line = json!({"event": "node", "id": node.get("id"), "name": node.get("name"),
                "kind": node.get("kind"), "state": node.get("state"),
                "result": node.get("result"), "updated": node.get("updated")});
            println!("{line}");
            return;
        }
        let result = node.get("result").and_then(Value::as_str);
        let label = match (str_of(node, "kind"), result) {
            ("checkout" | "patchset", None | Some("pass")) => self.paint.pass("PASS"),
            (_, Some("pass")) => self.paint.pass("PASS"),
            (_, Some("fail")) => self.paint.fail("FAIL"),
            (_, other) => self.paint.other(&other.unwrap_or("null").to_uppercase()),
        };
        println!(
            "{label} {}: {} - node_id:{} ({})",
            str_of(node, "kind"),
            str_of(node, "name"),
            str_of(node, "id"),
            str_of(node, "updated")
        );
    }

    fn finish(&self, outcome: Outcome, test: Option<&str>) -> Outcome {
        self.clear_spinner();
        let text = outcome.describe(test);
        if self.json {
            println!(
                "{}",
                json!({"event": "end", "outcome": text, "exit_code": outcome.exit_code()})
            );
        } else if outcome.exit_code() == 0 {
            eprintln!("{text}");
        } else {
            eprintln!("kci: {text}");
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_status_follows_kci_dev() {
        let n = |name: &str, kind: &str, state: &str, result: Value| json!({"name": name, "kind": kind, "state": state, "result": result});
        let s = |node: Value| status(&node, "checkout");
        assert_eq!(
            s(n("checkout", "checkout", "available", Value::Null)),
            Status::Done
        );
        assert_eq!(
            s(n("checkout", "checkout", "done", json!("fail"))),
            Status::Failed
        );
        assert_eq!(
            s(n("kbuild-x", "kbuild", "available", json!("pass"))),
            Status::Done
        );
        assert_eq!(
            s(n("kbuild-x", "kbuild", "done", json!("fail"))),
            Status::Failed
        );
        assert_eq!(
            s(n("kbuild-x", "kbuild", "available", Value::Null)),
            Status::Running
        );
        assert_eq!(
            s(n("kbuild-x", "kbuild", "running", Value::Null)),
            Status::Running
        );
        assert_eq!(s(n("baseline", "job", "done", json!("fail"))), Status::Done);
        assert_eq!(
            s(n("baseline", "job", "done", json!("incomplete"))),
            Status::Failed
        );
        assert_eq!(Outcome::TestFailed("fail".into()).exit_code(), 1);
        assert_eq!(Outcome::Unreachable(String::new()).exit_code(), 3);
    }
}
