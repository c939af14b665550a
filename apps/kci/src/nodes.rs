//! `kci maestro results`: Maestro nodes, one by id or a filtered page, as kci-dev prints
//! them (`--json`: a JSON list, keys sorted, projected on `--field`s) or as a table.
//!
//! Unlike kci-dev, `--count` asks the server (`latest/count`) for every match instead of
//! counting the page it fetched. Exit 2 for an unknown node or a refused query, 3 when
//! the API cannot be reached.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Map, Value, json};

use crate::Global;
use crate::maestro::{ApiError, Maestro, Service};
use crate::output::table;

/// Arguments of `kci maestro results`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One node by id.
    #[arg(long, conflicts_with = "nodes", required_unless_present = "nodes")]
    nodeid: Option<String>,
    /// A page of nodes (newest first as the server orders them), filtered.
    #[arg(long)]
    nodes: bool,
    /// Page size.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// Nodes to skip.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// `KEY=VALUE` query filter, e.g. `kind=kbuild`, `result=fail`, `treeid=...`,
    /// `created__gte=2026-11-01` (repeat for more).
    #[arg(long)]
    filter: Vec<String>,
    /// Only these fields of each node (repeat for more; dotted paths like `data.arch`).
    #[arg(long)]
    field: Vec<String>,
    /// Only nodes of this tree (`data.kernel_revision.tree`).
    #[arg(long)]
    tree: Option<String>,
    /// Only nodes created at or after this time (ISO 8601).
    #[arg(long)]
    start_date: Option<String>,
    /// Only nodes created at or before this time (ISO 8601).
    #[arg(long)]
    end_date: Option<String>,
    /// Print the number of matching nodes instead.
    #[arg(long, requires = "nodes")]
    count: bool,
    /// Fetch every match, ignoring --limit/--offset.
    #[arg(long)]
    no_paginate: bool,
    /// JSON output (kci-dev's).
    #[arg(long)]
    json: bool,
}

fn query(args: &Args) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for f in &args.filter {
        match f.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => bail!("--filter {f:?} is not KEY=VALUE"),
        }
    }
    if let Some(tree) = &args.tree {
        out.push(("data.kernel_revision.tree".into(), tree.clone()));
    }
    if let Some(d) = &args.start_date {
        out.push(("created__gte".into(), d.clone()));
    }
    if let Some(d) = &args.end_date {
        out.push(("created__lte".into(), d.clone()));
    }
    Ok(out)
}

/// The value at a dotted path (`data.kernel_revision.tree`).
fn field<'a>(node: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(node, |v, key| v.get(key))
        .unwrap_or(&Value::Null)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs the command.
pub fn run(args: &Args, global: &Global) -> anyhow::Result<ExitCode> {
    let settings = global.settings()?;
    let (name, instance) = settings.instance(global.instance.as_deref())?;
    let api = instance.require(name, "api", &instance.api)?;
    let maestro = Maestro(Service::new(api, instance.token.as_deref())?);
    let mut filters = query(args)?;
    let fetched = match &args.nodeid {
        Some(id) => maestro.node(id).map(|n| vec![n]),
        None if args.count => match maestro.count(&filters) {
            Ok(n) => {
                if args.json {
                    println!("{}", json!({"count": n}));
                } else {
                    println!("{n}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => Err(e),
        },
        None => {
            if !args.no_paginate {
                filters.push(("limit".into(), args.limit.to_string()));
                filters.push(("offset".into(), args.offset.to_string()));
            }
            maestro.nodes(&filters)
        }
    };
    let nodes = match fetched {
        Ok(nodes) => nodes,
        Err(e @ ApiError::Unavailable { .. }) => {
            eprintln!("kci: {e}");
            return Ok(ExitCode::from(3));
        }
        Err(e) if e.is_not_found() => bail!("node not found: {e}"),
        Err(e) => bail!("{e}"),
    };
    if args.json {
        let out: Vec<Value> = nodes
            .iter()
            .map(|n| {
                if args.field.is_empty() {
                    return n.clone();
                }
                let map: Map<String, Value> = args
                    .field
                    .iter()
                    .map(|f| (f.clone(), field(n, f).clone()))
                    .collect();
                Value::Object(map)
            })
            .collect();
        // kci-dev prints with sorted keys; serde_json's maps keep insertion order here.
        println!("{}", serde_json::to_string_pretty(&sorted(json!(out)))?);
        return Ok(ExitCode::SUCCESS);
    }
    let columns: Vec<String> = if args.field.is_empty() {
        ["id", "kind", "name", "state", "result", "updated"]
            .map(String::from)
            .to_vec()
    } else {
        args.field.clone()
    };
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| columns.iter().map(|c| cell(field(n, c))).collect())
        .collect();
    let header: Vec<&str> = columns.iter().map(String::as_str).collect();
    print!("{}", table(&header, &rows));
    Ok(ExitCode::SUCCESS)
}

/// The value with every object's keys sorted.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
