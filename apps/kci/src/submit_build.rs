//! `kci submit build`: one build (and its checkout) sent to KCIDB, as kci-dev's `submit
//! build`, with its deterministic ids so that kci-dev and kci name the same build the same:
//! checkout `ORIGIN:ck-<sha256(url|branch|commit|patchset_hash)>`, build
//! `ORIGIN:b-<sha256(checkout_id|arch|config_name|compiler|start_time)>`.
//!
//! Credentials as kci-dev: `--kcidb-rest-url` and `--kcidb-token` together, else the
//! `KCIDB_REST` variable (`https://TOKEN@host/path`), else the instance's `kcidb_rest_url`
//! and `kcidb_token`. Unlike kci-dev, the payload is validated here first (a bad status or
//! time is exit 2 with the schema's reason, nothing sent). Exit 1: refused by the receiver.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use kernelci_kcidb::client::{Client, ClientError};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::Global;

/// Arguments of `kci submit build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The KCIDB origin (your CI system's name).
    #[arg(long)]
    origin: Option<String>,
    /// The KCIDB `/submit` URL (with --kcidb-token).
    #[arg(long)]
    kcidb_rest_url: Option<String>,
    /// The KCIDB token (with --kcidb-rest-url).
    #[arg(long, hide_env_values = true)]
    kcidb_token: Option<String>,
    /// Print the payload instead of sending it.
    #[arg(long)]
    dry_run: bool,
    /// A local git repository: its remote URL, branch and HEAD fill in what is not given.
    #[arg(long)]
    git_folder: Option<PathBuf>,
    /// The repository URL.
    #[arg(long)]
    giturl: Option<String>,
    /// The branch.
    #[arg(long)]
    branch: Option<String>,
    /// The full commit hash.
    #[arg(long)]
    commit: Option<String>,
    /// The tree name (dashboard grouping).
    #[arg(long)]
    tree_name: Option<String>,
    /// The patchset hash (empty: no patches).
    #[arg(long)]
    patchset_hash: Option<String>,
    /// Architecture, e.g. x86_64.
    #[arg(long)]
    arch: Option<String>,
    /// Configuration name, e.g. defconfig.
    #[arg(long)]
    config_name: Option<String>,
    /// Compiler, e.g. gcc-14.
    #[arg(long)]
    compiler: Option<String>,
    /// PASS, FAIL, ERROR, MISS, DONE or SKIP.
    #[arg(long)]
    status: Option<String>,
    /// RFC 3339 start time (default: now).
    #[arg(long)]
    start_time: Option<String>,
    /// Duration in seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// The build log's URL.
    #[arg(long)]
    log_url: Option<String>,
    /// The kernel configuration's URL.
    #[arg(long)]
    config_url: Option<String>,
    /// A comment.
    #[arg(long)]
    comment: Option<String>,
    /// The build command.
    #[arg(long)]
    command: Option<String>,
    /// Send this complete KCIDB document instead (`--origin` then overrides its origins).
    #[arg(long, conflicts_with = "git_folder")]
    from_json: Option<PathBuf>,
    /// Print the receipt as JSON.
    #[arg(long)]
    json: bool,
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// kci-dev's checkout id.
pub fn checkout_id(origin: &str, url: &str, branch: &str, commit: &str, patchset: &str) -> String {
    format!(
        "{origin}:ck-{}",
        sha256_hex(&format!("{url}|{branch}|{commit}|{patchset}"))
    )
}

/// kci-dev's build id.
pub fn build_id(
    origin: &str,
    checkout_id: &str,
    arch: &str,
    config: &str,
    compiler: &str,
    start_time: &str,
) -> String {
    let seed = format!("{checkout_id}|{arch}|{config}|{compiler}|{start_time}");
    format!("{origin}:b-{}", sha256_hex(&seed))
}

fn git_out(folder: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Inserts the fields that are given.
fn put(map: &mut Map<String, Value>, fields: &[(&str, Option<Value>)]) {
    for (key, value) in fields {
        if let Some(v) = value {
            map.insert((*key).to_string(), v.clone());
        }
    }
}

/// The payload of the flags (kci-dev's `build` mode).
fn payload_from_flags(args: &Args) -> anyhow::Result<Value> {
    let Some(origin) = args.origin.as_deref() else {
        bail!("--origin is required (or use --from-json)");
    };
    let (mut url, mut branch, mut commit) = (
        args.giturl.clone(),
        args.branch.clone(),
        args.commit.clone(),
    );
    if let Some(folder) = &args.git_folder {
        if !folder.is_dir() {
            bail!("--git-folder {}: not a directory", folder.display());
        }
        url = url.or_else(|| git_out(folder, &["remote", "get-url", "origin"]));
        branch = branch.or_else(|| git_out(folder, &["rev-parse", "--abbrev-ref", "HEAD"]));
        commit = commit.or_else(|| git_out(folder, &["rev-parse", "HEAD"]));
    }
    let (Some(url), Some(commit)) = (url, commit) else {
        bail!("--giturl and --commit are required (or use --git-folder or --from-json)");
    };
    let branch = branch.unwrap_or_default();
    let patchset = args.patchset_hash.clone().unwrap_or_default();
    let start = args.start_time.clone().unwrap_or_else(|| {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
    });
    let ck = checkout_id(origin, &url, &branch, &commit, &patchset);
    let text = |v: &Option<String>| v.as_ref().map(|s| json!(s));
    let b = build_id(
        origin,
        &ck,
        args.arch.as_deref().unwrap_or(""),
        args.config_name.as_deref().unwrap_or(""),
        args.compiler.as_deref().unwrap_or(""),
        &start,
    );
    let mut checkout = Map::new();
    checkout.insert("id".into(), json!(ck));
    checkout.insert("origin".into(), json!(origin));
    put(
        &mut checkout,
        &[
            ("tree_name", text(&args.tree_name)),
            ("git_repository_url", Some(json!(url))),
            (
                "git_repository_branch",
                (!branch.is_empty()).then(|| json!(branch)),
            ),
            ("git_commit_hash", Some(json!(commit))),
            (
                "patchset_hash",
                (!patchset.is_empty()).then(|| json!(patchset)),
            ),
        ],
    );
    let mut build = Map::new();
    build.insert("id".into(), json!(b));
    build.insert("origin".into(), json!(origin));
    build.insert("checkout_id".into(), json!(ck));
    put(
        &mut build,
        &[
            ("start_time", Some(json!(start))),
            ("duration", args.duration.map(|d| json!(d))),
            ("architecture", text(&args.arch)),
            ("compiler", text(&args.compiler)),
            ("config_name", text(&args.config_name)),
            ("config_url", text(&args.config_url)),
            ("log_url", text(&args.log_url)),
            ("comment", text(&args.comment)),
            ("command", text(&args.command)),
            ("status", text(&args.status)),
        ],
    );
    Ok(json!({"version": {"major": 5, "minor": 3}, "checkouts": [checkout], "builds": [build]}))
}

/// kci-dev's `--from-json` mode: a whole document, `--origin` overriding its origins.
fn payload_from_file(path: &Path, origin: Option<&str>) -> anyhow::Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if let Some(origin) = origin {
        for list in ["checkouts", "builds", "tests"] {
            if let Some(items) = doc.get_mut(list).and_then(Value::as_array_mut) {
                for item in items.iter_mut().filter(|i| i.is_object()) {
                    item["origin"] = json!(origin);
                }
            }
        }
    }
    Ok(doc)
}

/// `https://TOKEN@host[:port][/path]` -> (`https://host[:port]/path/submit`, TOKEN).
fn parse_kcidb_rest(value: &str) -> Option<(String, String)> {
    let mut url = reqwest::Url::parse(value).ok()?;
    let token = url.username().to_string();
    if token.is_empty() {
        return None;
    }
    url.set_username("").ok()?;
    let path = url.path().trim_end_matches('/').to_string();
    if !path.ends_with("/submit") {
        url.set_path(&format!("{path}/submit"));
    }
    Some((url.to_string(), token))
}

fn credentials(args: &Args, global: &Global) -> anyhow::Result<(String, String)> {
    match (&args.kcidb_rest_url, &args.kcidb_token) {
        (Some(u), Some(t)) => return Ok((u.clone(), t.clone())),
        (None, None) => {}
        _ => bail!("--kcidb-rest-url and --kcidb-token go together"),
    }
    if let Ok(env) = std::env::var("KCIDB_REST")
        && !env.is_empty()
    {
        return parse_kcidb_rest(&env)
            .context("KCIDB_REST is set but is not https://TOKEN@host/path");
    }
    let settings = global.settings()?;
    if let Ok((_, instance)) = settings.instance(global.instance.as_deref())
        && let (Some(u), Some(t)) = (&instance.kcidb_rest_url, &instance.kcidb_token)
    {
        return Ok((u.clone(), t.clone()));
    }
    bail!(
        "no KCIDB credentials: pass --kcidb-rest-url and --kcidb-token, set KCIDB_REST, or \
         set kcidb_rest_url and kcidb_token in the instance's settings"
    )
}

/// Runs the command.
pub fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let payload = match &args.from_json {
        Some(path) => payload_from_file(path, args.origin.as_deref())?,
        None => payload_from_flags(args)?,
    };
    let bytes = serde_json::to_vec(&payload)?;
    if let Err(rejection) = kernelci_kcidb::check(&bytes) {
        let mut text = format!("the payload is not valid KCIDB: {rejection}");
        for p in rejection.problems() {
            text.push_str(&format!("\n  {p}"));
        }
        bail!(text);
    }
    if args.dry_run {
        println!("{}", serde_json::to_string_pretty(&payload)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (url, token) = credentials(args, global)?;
    let client = match Client::new(&url, &token) {
        Ok(c) => c,
        Err(e) => bail!("{e}"),
    };
    match client.submit_bytes(bytes) {
        Ok(receipt) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&receipt.reply)?);
            } else {
                println!("Submitted, receipt {}", receipt.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Refused { status, reply, .. }) => {
            eprintln!("kci: KCIDB refused the submission (HTTP {status}):");
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&reply).unwrap_or_default()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("kci: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kci_devs() {
        // Python: hashlib.sha256(b"https://x/linux.git|master|abc|").hexdigest()
        let ck = checkout_id("lab", "https://x/linux.git", "master", "abc", "");
        assert_eq!(
            ck,
            "lab:ck-a144ecf050c1b1cc0502c179c6b3889362f1fa7a6dde7f5cc7a6d5642ab14222"
        );
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let b = build_id(
            "lab",
            &ck,
            "x86_64",
            "defconfig",
            "gcc-14",
            "2026-01-01T00:00:00+00:00",
        );
        assert!(b.starts_with("lab:b-") && b.len() == "lab:b-".len() + 64);
        assert_eq!(
            parse_kcidb_rest("https://tok@db.example:8080/kcidb"),
            Some(("https://db.example:8080/kcidb/submit".into(), "tok".into()))
        );
        assert_eq!(parse_kcidb_rest("https://db.example/submit"), None);
    }
}
