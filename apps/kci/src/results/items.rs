//! `kci results build|boot|test --id ID`: one result (`build/{id}`, `test/{id}`).

use serde_json::Value;

use super::client::{Dash, Fail, enc, text};
use super::download::{self, Logs};
use super::lists::{build_json, test_json};
use super::view::outln;
use super::view::{self, Tone};

/// The options of `build`, `boot` and `test`.
#[derive(Debug, clap::Args)]
pub struct ItemArgs {
    /// The result's KCIDB id.
    #[arg(long = "id")]
    id: String,
    /// JSON output (kci-dev's fields).
    #[arg(long)]
    json: bool,
    /// Save the result's log in the current directory (kci-dev's file name); exit 1 if it
    /// fails.
    #[arg(long)]
    download_logs: bool,
}

/// Saves the log when asked: its `file://` path (if saved) and the exit code.
fn download(a: &ItemArgs, item: &Value, name: &str) -> Result<(Option<String>, u8), Fail> {
    if !a.download_logs {
        return Ok((None, 0));
    }
    let mut logs = Logs::new(1)?;
    let path = logs.fetch(item, name);
    Ok((path, logs.code()))
}

fn fetch(dash: &Dash, kind: &str, id: &str) -> Result<Value, Fail> {
    if id.trim().is_empty() {
        return Err(Fail::input("--id is empty"));
    }
    dash.get(&format!("{kind}/{}", enc(id)), &[])
        .map_err(|f| match f.code {
            2 if f.message.starts_with("not found") => {
                Fail::input(format!("{kind} {id:?} not found on the dashboard"))
            }
            _ => f,
        })
}

/// `key: value` lines, the keys aligned; the status painted.
fn print_fields(dash: &Dash, fields: &[(&str, String)]) {
    let width = fields.iter().map(|f| f.0.len()).max().unwrap_or(0) + 2;
    for (k, v) in fields {
        let shown = if *k == "status" {
            match view::status(v).1 {
                Tone::Pass => dash.paint.pass(v),
                Tone::Fail => dash.paint.fail(v),
                _ => dash.paint.other(v),
            }
        } else {
            v.clone()
        };
        outln!("{:<width$}{shown}", format!("{k}:"));
    }
}

/// `build --id`.
pub fn build(dash: &Dash, a: &ItemArgs) -> Result<u8, Fail> {
    let b = fetch(dash, "build", &a.id)?;
    let (saved, code) = download(a, &b, &download::build_name(&b))?;
    if a.json {
        let mut v = build_json(dash, &b);
        if let Some(path) = &saved {
            v["log"] = path.clone().into();
        }
        view::print_json(&v);
        return Ok(code);
    }
    let mut fields = vec![
        ("id", text(&b, "id")),
        ("status", text(&b, "status")),
        ("config", text(&b, "config_name")),
        ("arch", text(&b, "architecture")),
        ("compiler", text(&b, "compiler")),
        (
            "tree",
            format!(
                "{}/{}",
                text(&b, "tree_name"),
                text(&b, "git_repository_branch")
            ),
        ),
        ("commit", text(&b, "git_commit_hash")),
        ("start_time", text(&b, "start_time")),
        ("duration", text(&b, "duration")),
        ("config_url", text(&b, "config_url")),
        ("log", saved.unwrap_or_else(|| text(&b, "log_url"))),
    ];
    if let Some(link) = dash.link("build", &a.id) {
        fields.push(("dashboard", link));
    }
    print_fields(dash, &fields);
    Ok(code)
}

/// `boot --id` and `test --id`.
pub fn test(dash: &Dash, a: &ItemArgs) -> Result<u8, Fail> {
    let t = fetch(dash, "test", &a.id)?;
    let (saved, code) = download(a, &t, &download::test_name(&t, &text(&t, "id")))?;
    if a.json {
        let mut v = test_json(dash, &t);
        if let Some(path) = &saved {
            v["log"] = path.clone().into();
        }
        view::print_json(&v);
        return Ok(code);
    }
    let compatibles: Vec<&str> = t["environment_compatible"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut fields = vec![
        ("id", text(&t, "id")),
        ("path", text(&t, "path")),
        ("status", text(&t, "status")),
        ("hardware", text(&t["environment_misc"], "platform")),
        ("compatibles", compatibles.join(" | ")),
        ("config", text(&t, "config_name")),
        ("arch", text(&t, "architecture")),
        ("compiler", text(&t, "compiler")),
        (
            "tree",
            format!(
                "{}/{}",
                text(&t, "tree_name"),
                text(&t, "git_repository_branch")
            ),
        ),
        ("commit", text(&t, "git_commit_hash")),
        ("build_id", text(&t, "build_id")),
        ("start_time", text(&t, "start_time")),
        ("runtime", text(&t["misc"], "runtime")),
        ("log", saved.unwrap_or_else(|| text(&t, "log_url"))),
    ];
    if let Some(link) = dash.link("test", &a.id) {
        fields.push(("dashboard", link));
    }
    print_fields(dash, &fields);
    Ok(code)
}
