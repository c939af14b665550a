//! `kci validate FILE... [--json]`: checks KCIDB submission files the way the KCIDB
//! ingesters would (parse, the schema of the declared version, upgrade to v5.3).

use kernelci_kcidb::{Rejection, SchemaVersion};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `kci validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// KCIDB JSON files (any version from v3.0 to v5.3; `-` reads standard input).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print a JSON array with one result per file instead of text.
    #[arg(long)]
    json: bool,
}

/// The verdict on one file.
#[derive(Debug)]
pub enum Verdict {
    /// Valid: the version it declares and the number of objects in it.
    Valid {
        /// The declared version (older ones are upgraded to v5.3 when loaded).
        version: SchemaVersion,
        /// The objects in the five lists.
        objects: usize,
    },
    /// Invalid, with every problem found.
    Invalid(Rejection),
    /// The file could not be read.
    Unreadable(String),
}

/// Reads and checks one file (`-` is standard input).
pub fn check_file(path: &Path) -> Verdict {
    match read(path) {
        Ok(bytes) => check_bytes(&bytes),
        Err(err) => Verdict::Unreadable(err),
    }
}

/// Reads a file (`-` is standard input), the error as text.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let result = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes).map(|_| bytes)
    } else {
        std::fs::read(path)
    };
    result.map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// Checks a document's bytes.
pub fn check_bytes(bytes: &[u8]) -> Verdict {
    let doc = match kernelci_kcidb::parse(bytes) {
        Ok(doc) => doc,
        Err(err) => return Verdict::Invalid(Rejection::from(err)),
    };
    let objects = kernelci_kcidb::count_objects(&doc);
    match kernelci_kcidb::check_value(doc) {
        Ok(version) => Verdict::Valid { version, objects },
        Err(rejection) => Verdict::Invalid(rejection),
    }
}

/// Runs the command: 0 every file valid, 1 some invalid, 2 some unreadable.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let verdicts: Vec<(&PathBuf, Verdict)> =
        args.files.iter().map(|f| (f, check_file(f))).collect();
    let mut out = String::new();
    if args.json {
        let array: Vec<Value> = verdicts
            .iter()
            .map(|(file, verdict)| json_result(file, verdict))
            .collect();
        out = serde_json::to_string_pretty(&array)?;
        out.push('\n');
    } else {
        for (file, verdict) in &verdicts {
            out.push_str(&human_result(file, verdict));
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    let unreadable = verdicts
        .iter()
        .any(|(_, v)| matches!(v, Verdict::Unreadable(_)));
    let invalid = verdicts
        .iter()
        .any(|(_, v)| matches!(v, Verdict::Invalid(_)));
    Ok(if unreadable {
        ExitCode::from(2)
    } else if invalid {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `file: OK (N objects)`, or `file: INVALID (stage)` then one indented line per problem.
fn human_result(file: &Path, verdict: &Verdict) -> String {
    let name = file.display();
    match verdict {
        Verdict::Valid { version, objects } => {
            let upgraded = if *version == SchemaVersion::LATEST {
                String::new()
            } else {
                format!(", {version} upgraded to {}", SchemaVersion::LATEST)
            };
            format!("{name}: OK ({objects} objects{upgraded})\n")
        }
        Verdict::Invalid(rejection) => {
            let mut text = format!("{name}: INVALID ({})\n", rejection.stage());
            let problems = rejection.problems();
            if problems.is_empty() {
                text.push_str(&format!("  {rejection}\n"));
            }
            for problem in problems {
                text.push_str(&format!("  {problem}\n"));
            }
            text
        }
        Verdict::Unreadable(err) => format!("{name}: ERROR {err}\n"),
    }
}

/// `{"file", "valid", "version", "objects"}`, `{"file", "valid": false, "rejection"}` or
/// `{"file", "valid": false, "error"}`.
fn json_result(file: &Path, verdict: &Verdict) -> Value {
    let name = file.display().to_string();
    match verdict {
        Verdict::Valid { version, objects } => json!({
            "file": name,
            "valid": true,
            "version": version.to_string(),
            "objects": objects,
        }),
        Verdict::Invalid(rejection) => json!({
            "file": name,
            "valid": false,
            "rejection": rejection,
        }),
        Verdict::Unreadable(err) => json!({
            "file": name,
            "valid": false,
            "error": err,
        }),
    }
}
