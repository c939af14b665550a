//! kci-dev's pipeline commands: `kci checkout`, `kci patchset`, `kci testretry` (the
//! pipeline API) and `kci watch` (the Maestro API).
//!
//! Exit codes: 0 done; 64 the pipeline did not take the request (unreachable, refused,
//! 5xx), as kci-dev; 2 bad input (flags, settings, an unknown node); with `--watch` the
//! codes of [`crate::watch`].

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::Global;
use crate::maestro::{ApiError, Maestro, Service};
use crate::watch::{WatchArgs, watch};

/// kci-dev's exit code for a request the pipeline did not take.
const NOT_TAKEN: u8 = 64;

/// Job and platform filters, watching.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// Only this job (repeat for more). Without one, every job of the configuration runs.
    #[arg(long = "job-filter")]
    job_filter: Vec<String>,
    /// Only this platform (repeat for more).
    #[arg(long = "platform-filter")]
    platform_filter: Vec<String>,
    /// Follow the jobs until they end (needs --job-filter).
    #[arg(long, short = 'w')]
    watch: bool,
    /// With --watch: the exit code follows this test's result.
    #[arg(long, requires = "watch")]
    test: Option<String>,
    #[command(flatten)]
    timing: WatchArgs,
    /// JSON output (the pipeline's reply; JSON lines while watching).
    #[arg(long)]
    json: bool,
}

/// Arguments of `kci checkout`.
#[derive(Debug, clap::Args)]
pub struct CheckoutArgs {
    /// The git repository URL.
    #[arg(long, required = true)]
    giturl: String,
    /// The branch.
    #[arg(long, required = true)]
    branch: String,
    /// The commit to test (40 hexadecimal characters).
    #[arg(
        long,
        conflicts_with = "tipoftree",
        required_unless_present = "tipoftree"
    )]
    commit: Option<String>,
    /// Test the branch's current head (`git ls-remote`).
    #[arg(long)]
    tipoftree: bool,
    #[command(flatten)]
    jobs: JobArgs,
}

/// Arguments of `kci patchset`.
#[derive(Debug, clap::Args)]
pub struct PatchsetArgs {
    /// The checkout node to apply the patches on.
    #[arg(long, required = true)]
    nodeid: String,
    /// A local patch file (repeat for a series, in order).
    #[arg(
        long,
        conflicts_with = "patchurl",
        required_unless_present = "patchurl"
    )]
    patch: Vec<PathBuf>,
    /// A patch URL on an allowed domain, e.g. a patchwork mbox (repeat for more).
    #[arg(long)]
    patchurl: Vec<String>,
    #[command(flatten)]
    jobs: JobArgs,
}

/// Arguments of `kci testretry`.
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The job node to run again.
    #[arg(long, required = true)]
    nodeid: String,
    /// Print the pipeline's reply as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kci watch`.
#[derive(Debug, clap::Args)]
pub struct WatchCmdArgs {
    /// A node of the tree to follow (its checkout or patchset node).
    #[arg(long, required = true)]
    nodeid: String,
    /// A job to follow (repeat for more).
    #[arg(long = "job-filter", required = true)]
    job_filter: Vec<String>,
    /// The exit code follows this test's result.
    #[arg(long)]
    test: Option<String>,
    #[command(flatten)]
    timing: WatchArgs,
    /// JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

/// The pipeline and Maestro services of the selected instance.
fn services(global: &Global) -> anyhow::Result<(Service, Maestro)> {
    let settings = global.settings()?;
    let (name, instance) = settings.instance(global.instance.as_deref())?;
    let token = instance.require(name, "token", &instance.token)?;
    let pipeline = instance.require(name, "pipeline", &instance.pipeline)?;
    let api = instance.require(name, "api", &instance.api)?;
    Ok((
        Service::new(pipeline, Some(token)).with_context(|| format!("[{name}] pipeline"))?,
        Maestro(Service::new(api, Some(token)).with_context(|| format!("[{name}] api"))?),
    ))
}

/// The head of `branch` at `url`.
fn tip_of_tree(url: &str, branch: &str) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(["ls-remote", url, &format!("refs/heads/{branch}")])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!(
            "git ls-remote {url}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(sha) if is_commit(sha) => Ok(sha.to_string()),
        _ => bail!("branch {branch:?} not found at {url}"),
    }
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn filters(body: &mut Value, jobs: &JobArgs) {
    if !jobs.job_filter.is_empty() {
        body["jobfilter"] = json!(jobs.job_filter);
    }
    if !jobs.platform_filter.is_empty() {
        body["platformfilter"] = json!(jobs.platform_filter);
    }
}

/// Posts a request to the pipeline: the reply, or exit 64 with the reason.
fn post(pipeline: &Service, path: &str, body: &Value) -> Result<Value, ExitCode> {
    pipeline.post(path, body).map_err(|e| {
        eprintln!("kci: the pipeline did not take the request: {e}");
        ExitCode::from(NOT_TAKEN)
    })
}

/// Prints the reply of a checkout/patchset, then watches when asked.
fn report_and_watch(
    reply: &Value,
    maestro: &Maestro,
    jobs: &JobArgs,
    root: &str,
) -> anyhow::Result<ExitCode> {
    let node = reply.get("node").unwrap_or(&Value::Null);
    let treeid = node.get("treeid").and_then(Value::as_str);
    if jobs.json {
        println!("{}", serde_json::to_string_pretty(reply)?);
    } else {
        if let Some(message) = reply.get("message").and_then(Value::as_str) {
            println!("{message}");
        }
        if let Some(t) = treeid {
            println!("treeid: {t}");
        }
        if let Some(id) = node.get("id").and_then(Value::as_str) {
            println!("{root}_nodeid: {id}");
        }
    }
    if !jobs.watch {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(treeid) = treeid else {
        bail!("the pipeline's reply has no node.treeid: cannot watch");
    };
    let outcome = watch(
        maestro,
        treeid,
        &jobs.job_filter,
        root,
        jobs.test.as_deref(),
        &jobs.timing,
        jobs.json,
    );
    Ok(ExitCode::from(outcome.exit_code()))
}

fn check_watch(jobs: &JobArgs) -> anyhow::Result<()> {
    if jobs.watch && jobs.job_filter.is_empty() {
        bail!("--watch needs at least one --job-filter (the jobs to follow)");
    }
    if jobs.job_filter.is_empty() && !jobs.json {
        eprintln!("No job filter: every job of the configuration will run.");
    }
    Ok(())
}

/// `kci checkout`.
pub fn checkout(args: &CheckoutArgs, global: &Global) -> anyhow::Result<ExitCode> {
    check_watch(&args.jobs)?;
    let (pipeline, maestro) = services(global)?;
    let commit = match &args.commit {
        Some(c) if is_commit(c) => c.to_lowercase(),
        Some(c) => bail!("--commit {c:?} is not a full commit id (40 hexadecimal characters)"),
        None => {
            let sha = tip_of_tree(&args.giturl, &args.branch)?;
            if !args.jobs.json {
                eprintln!("Tip of {} {}: {sha}", args.giturl, args.branch);
            }
            sha
        }
    };
    let mut body = json!({"url": args.giturl, "branch": args.branch, "commit": commit});
    filters(&mut body, &args.jobs);
    match post(&pipeline, "api/checkout", &body) {
        Ok(reply) => report_and_watch(&reply, &maestro, &args.jobs, "checkout"),
        Err(code) => Ok(code),
    }
}

/// The largest patch file sent (the pipeline refuses larger ones anyway).
const MAX_PATCH: u64 = 4 << 20;

/// `kci patchset`.
pub fn patchset(args: &PatchsetArgs, global: &Global) -> anyhow::Result<ExitCode> {
    check_watch(&args.jobs)?;
    let mut patches = Vec::new();
    for path in &args.patch {
        let size = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        if size > MAX_PATCH {
            bail!(
                "{}: patch too large ({size} bytes, at most {MAX_PATCH})",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {} as text", path.display()))?;
        if text.trim().is_empty() {
            bail!("{}: the patch file is empty", path.display());
        }
        patches.push(text);
    }
    let (pipeline, maestro) = services(global)?;
    let mut body = json!({"nodeid": args.nodeid});
    if !patches.is_empty() {
        body["patch"] = json!(patches);
    }
    if !args.patchurl.is_empty() {
        body["patchurl"] = json!(args.patchurl);
    }
    filters(&mut body, &args.jobs);
    match post(&pipeline, "api/patchset", &body) {
        Ok(reply) => report_and_watch(&reply, &maestro, &args.jobs, "patchset"),
        Err(code) => Ok(code),
    }
}

/// `kci testretry`.
pub fn testretry(args: &RetryArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let (pipeline, _) = services(global)?;
    let reply = match post(&pipeline, "api/jobretry", &json!({"nodeid": args.nodeid})) {
        Ok(reply) => reply,
        Err(code) => return Ok(code),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        if let Some(message) = reply.get("message").and_then(Value::as_str) {
            println!("{message}");
        }
        if let Some(id) = reply.pointer("/node/id").and_then(Value::as_str) {
            println!("retry node_id: {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kci watch`.
pub fn watch_cmd(args: &WatchCmdArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let (_, maestro) = services(global)?;
    let node = match maestro.node(&args.nodeid) {
        Ok(node) => node,
        Err(e) if e.is_not_found() => bail!("node {} not found", args.nodeid),
        Err(e @ ApiError::Refused { .. }) => bail!("{e}"),
        Err(e) => {
            eprintln!("kci: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let Some(treeid) = node.get("treeid").and_then(Value::as_str) else {
        bail!("node {} has no treeid", args.nodeid);
    };
    let root = if node.get("name").and_then(Value::as_str) == Some("patchset") {
        "patchset"
    } else {
        "checkout"
    };
    let outcome = watch(
        &maestro,
        treeid,
        &args.job_filter,
        root,
        args.test.as_deref(),
        &args.timing,
        args.json,
    );
    Ok(ExitCode::from(outcome.exit_code()))
}
