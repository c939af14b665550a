//! `kci bisect`: automatic bisection on the server. `start` asks the pipeline to bisect a
//! failing node between a good commit and its own (`POST api/bisect`); `show` prints a
//! bisection node (its tested commits, their runs and verdicts, the culprit and the
//! command that reproduces it), live with `--watch`.
//!
//! Unlike kci-dev's `bisect`, which checks commits out on your machine and waits for each
//! result, the server does the work (through the normal pipeline) and keeps its state in
//! the bisection node, so `kci` can go away and come back.
//!
//! Exit codes: 0 started, or (`show`) a culprit was found or the bisection is still
//! running without `--watch`; 1 the bisection ended without a culprit (flaky,
//! inconclusive, error); 2 bad input or an unknown node; 3 the server is unreachable; 64
//! the pipeline did not take the request (as kci-dev).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};

use crate::Global;
use crate::maestro::{ApiError, Maestro, Service};

/// `kci bisect ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start a bisection of a failing job (or build, or test) node.
    Start(StartArgs),
    /// Show a bisection node (`--watch`: until it ends).
    Show(ShowArgs),
}

/// Arguments of `kci bisect start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The failing node (a job, a test or a build).
    #[arg(long)]
    node: String,
    /// A commit where the test passed.
    #[arg(long)]
    good: String,
    /// A commit where it fails (default: the node's commit).
    #[arg(long)]
    bad: Option<String>,
    /// Runs of the test per commit (1 to 10; default 3).
    #[arg(long)]
    repeat: Option<u64>,
    /// Follow it until it ends (as `kci bisect show --watch`).
    #[arg(long, short = 'w')]
    watch: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kci bisect show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The bisection node id.
    id: String,
    /// Print it again as it changes, until it ends.
    #[arg(long, short = 'w')]
    watch: bool,
    /// Seconds between looks with --watch.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// JSON output (the node).
    #[arg(long)]
    json: bool,
}

/// Runs `kci bisect`.
pub fn run(command: &Command, global: &Global) -> anyhow::Result<ExitCode> {
    let settings = global.settings()?;
    let (name, instance) = settings.instance(global.instance.as_deref())?;
    let token = instance.require(name, "token", &instance.token)?;
    let api = Maestro(Service::new(
        instance.require(name, "api", &instance.api)?,
        Some(token),
    )?);
    match command {
        Command::Start(args) => {
            let pipeline = Service::new(
                instance.require(name, "pipeline", &instance.pipeline)?,
                Some(token),
            )?;
            let mut body = json!({"nodeid": args.node, "good": args.good});
            if let Some(bad) = &args.bad {
                body["bad"] = bad.clone().into();
            }
            if let Some(r) = args.repeat {
                body["repeat"] = r.into();
            }
            let reply = match pipeline.post("api/bisect", &body) {
                Ok(r) => r,
                Err(
                    e @ ApiError::Refused {
                        status: 400 | 404, ..
                    },
                ) => {
                    eprintln!("kci: {e}");
                    return Ok(ExitCode::from(2));
                }
                Err(e) => {
                    eprintln!("kci: the pipeline did not take the request: {e}");
                    return Ok(ExitCode::from(64));
                }
            };
            let id = reply["node"]["id"].as_str().unwrap_or_default().to_string();
            if !args.watch {
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&reply)?);
                } else {
                    println!("bisection_nodeid: {id}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            show(&api, &id, true, 2.0, args.json)
        }
        Command::Show(args) => show(&api, &args.id, args.watch, args.interval, args.json),
    }
}

fn show(
    api: &Maestro,
    id: &str,
    watch: bool,
    interval: f64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !(0.1..=3600.0).contains(&interval) {
        bail!("--interval must be from 0.1 to 3600 seconds");
    }
    let mut last = String::new();
    loop {
        let node = match api.node(id) {
            Ok(n) => n,
            Err(e) if e.is_not_found() || matches!(e, ApiError::Refused { .. }) => {
                eprintln!("kci: {e}");
                return Ok(ExitCode::from(2));
            }
            Err(e) => {
                eprintln!("kci: {e}");
                return Ok(ExitCode::from(3));
            }
        };
        if node["name"] != "bisection" {
            eprintln!(
                "kci: node {id} is a {} {}, not a bisection",
                node["kind"], node["name"]
            );
            return Ok(ExitCode::from(2));
        }
        let text = if json {
            serde_json::to_string_pretty(&node)?
        } else {
            describe(&node)
        };
        if text != last {
            println!("{text}");
            last = text;
        }
        let done = node["state"] == "done";
        if done || !watch {
            let failed = done && node["result"] != "pass";
            return Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        std::thread::sleep(Duration::from_secs_f64(interval));
    }
}

fn short(c: &str) -> &str {
    c.get(..12).unwrap_or(c)
}

/// The bisection as text: the range, each tested commit, the outcome.
pub fn describe(node: &Value) -> String {
    let b = &node["data"]["bisection"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut out = format!(
        "bisection {} ({} {}): {} {} on {}\n  {} {}..{} ({} commits), {} run(s) per commit\n",
        s(&node["id"]),
        s(&node["state"]),
        s(&node["result"]),
        s(&b["kbuild"]),
        b["job"].as_str().unwrap_or("(build)"),
        if s(&b["platform"]).is_empty() {
            "-".into()
        } else {
            s(&b["platform"])
        },
        s(&b["tree"]),
        short(&s(&b["good"])),
        short(&s(&b["bad"])),
        b["commits"].as_array().map_or(0, Vec::len),
        b["repeat"],
    );
    let order: Vec<String> = b["commits"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    let mut steps: Vec<(&String, &Value)> = b["steps"]
        .as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    steps.sort_by_key(|(c, _)| order.iter().position(|o| o == *c).unwrap_or(usize::MAX));
    for (commit, step) in steps {
        let runs: Vec<&str> = step["runs"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| if x == true { "pass" } else { "fail" })
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "  {}  {:<7} [{}]  checkout {}\n",
            short(commit),
            step["verdict"].as_str().unwrap_or("testing"),
            runs.join(" "),
            s(&step["checkout"])
        ));
    }
    match b["outcome"]["kind"].as_str() {
        Some("culprit") => out.push_str(&format!(
            "  culprit: {} {} (parent {} passes)\n  reproduce: {}\n",
            s(&b["outcome"]["commit"]),
            s(&b["culprit_subject"]),
            short(&s(&b["outcome"]["parent"])),
            s(&b["reproduce"])
        )),
        Some("flaky") => out.push_str(&format!(
            "  no culprit: the test is flaky at {}\n",
            s(&b["outcome"]["commit"])
        )),
        Some(_) => out.push_str(&format!("  no culprit: {}\n", s(&b["outcome"]["reason"]))),
        None => {}
    }
    out.trim_end().to_string()
}
