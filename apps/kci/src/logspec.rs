//! `kci logspec FILE --parser NAME [--json] [--full] [--extra]`.

use anyhow::Context;
use kernelci_logspec::{LogError, Options, ParseResult, Parser, Severity, parse_reader, pyjson};
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kci logspec`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log file (`-` reads standard input).
    file: PathBuf,
    /// Parser: kbuild, generic_linux_boot, test_baseline or test_kselftest.
    #[arg(long, short)]
    parser: String,
    /// Print upstream's JSON (`logspec.py -o json`) instead of one line per error.
    #[arg(long)]
    json: bool,
    /// Include upstream's hidden fields (`--json-full`): excerpts, signatures, offsets.
    #[arg(long)]
    full: bool,
    /// Also run the detectors upstream lacks (KASAN, Oops, lockups, hung tasks, RCU stalls,
    /// login prompt, kernel never started); with --json they go under the key "extra".
    #[arg(long)]
    extra: bool,
}

/// Runs the command: exit code 0 when no error was found, 1 when some were; `Err` (exit 2)
/// for bad input.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let parser = Parser::from_name(&args.parser)?;
    let options = Options {
        extra: args.extra,
        ..Options::default()
    };
    let result = if args.file.as_os_str() == "-" {
        parse_reader(std::io::stdin().lock(), parser, &options)
    } else {
        let file = File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        parse_reader(BufReader::with_capacity(1 << 16, file), parser, &options)
    }
    .with_context(|| format!("cannot read {}", args.file.display()))?;

    let text = if args.json {
        json_report(&result, args)
    } else {
        human_report(&result, args)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("cannot write the report")?;
    stdout.flush().context("cannot write the report")?;

    let extra_errors = result.extra.iter().any(|f| f.severity == Severity::Error);
    Ok(if result.has_errors() || extra_errors {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn json_report(result: &ParseResult, args: &Args) -> String {
    let mut value = if args.full {
        result.output_full()
    } else {
        result.output()
    };
    if args.extra
        && let Some(object) = value.as_object_mut()
    {
        object.insert("extra".into(), result.extra_json());
    }
    let mut text = pyjson::dumps_indented(&value);
    text.push('\n');
    text
}

fn human_report(result: &ParseResult, args: &Args) -> String {
    let mut out = String::new();
    for error in &result.errors {
        out.push_str(&error_line(error));
        if args.full && !error.report.is_empty() {
            for line in error.report.lines() {
                out.push_str("    | ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for finding in &result.extra {
        let line = finding
            .line
            .map_or_else(|| "-".to_string(), |l| l.to_string());
        out.push_str(&format!(
            "line {line}: {} [{}] {}\n",
            finding.finding_type,
            finding.severity.as_str(),
            finding.summary
        ));
    }
    let states: Vec<String> = result
        .states
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !states.is_empty() {
        out.push_str(&format!("state: {}\n", states.join(" ")));
    }
    if args.full {
        for summary in &result.states_summary {
            out.push_str(&format!("state summary: {summary}\n"));
        }
        if let Some(signature) = &result.signature {
            out.push_str(&format!("signature: {signature}\n"));
        }
    }
    let n = result.errors.len();
    out.push_str(&format!(
        "{n} error{} found ({} parser)\n",
        if n == 1 { "" } else { "s" },
        result.parser
    ));
    out
}

/// `line N: <type> <location>: <summary>`.
fn error_line(error: &LogError) -> String {
    let line = error
        .line
        .map_or_else(|| "-".to_string(), |l| l.to_string());
    let location = location(error);
    let summary = if error.error_summary.is_empty() {
        "(no summary)"
    } else {
        &error.error_summary
    };
    if location.is_empty() {
        format!("line {line}: {}: {summary}\n", error.error_type)
    } else {
        format!(
            "line {line}: {} at {location}: {summary}\n",
            error.error_type
        )
    }
}

/// The most precise location the error has: `file:line:col`, `file:location`, the kernel
/// code location, or the make target.
fn location(error: &LogError) -> String {
    let get = |name: &str| error.attribute_str(name).unwrap_or_default().to_string();
    let (src, line_no, position, location) = (
        get("src_file"),
        get("line_no"),
        get("position"),
        get("location"),
    );
    if !src.is_empty() {
        let mut out = src;
        for part in [line_no, position, location] {
            if !part.is_empty() {
                out.push(':');
                out.push_str(&part);
            }
        }
        return out;
    }
    if !location.is_empty() {
        return location;
    }
    get("target")
}
