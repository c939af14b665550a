//! Validation throughput: kernelci-kcidb against the reference validator (kcidb-io), on the
//! same generated corpus, in the same run.
//!
//! ```text
//! cargo run --release -p kernelci-kcidb --example validate_bench -- \
//!     [--corpus DIR | --checkouts 200 --files 400 --invalid-rate 0] \
//!     [--python /tmp/kernelci-ci/kcidb-venv/bin/python] [--rounds 5]
//! ```
//!
//! Without `--corpus`, a corpus is generated into a temporary directory with the fixtures'
//! `gen_submissions.py --seed 1 --checkouts N --files N --indent -1` (found through
//! `$KERNELCI_FIXTURES`, else `../shared/fixtures` next to the workspace). Files are read
//! into memory first; then each side validates every file on one thread:
//!
//! * ours, `check`: the ingester's verdict (parse + validate + upgrade), which for valid v5
//!   documents validates while parsing (the fast path);
//! * ours, `load`: the verdict plus the typed [`kernelci_kcidb::Submission`];
//! * ours, `parse` + `validate`: the path that builds a JSON tree and lists every problem
//!   (what an invalid document costs);
//! * kcidb-io: `tests/kcidb_io_verdicts.py --time` (read, `json.loads`, `LATEST.validate`,
//!   `LATEST.upgrade` per file), timed inside Python (without interpreter start and imports)
//!   and, separately, as the whole subprocess.
//!
//! Objects/s counts the entries of the five lists. Skips kcidb-io (with a message) when its
//! Python is missing: `python3 -m venv /tmp/kernelci-ci/kcidb-venv &&
//! /tmp/kernelci-ci/kcidb-venv/bin/pip install kcidb-io`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use kernelci_kcidb::{check, count_objects, load, parse, validate};

struct Options {
    corpus: Option<PathBuf>,
    checkouts: u32,
    files: u32,
    invalid_rate: String,
    python: PathBuf,
    rounds: u32,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        corpus: None,
        checkouts: 200,
        files: 400,
        invalid_rate: "0".to_string(),
        python: std::env::var_os("KCIDB_IO_PYTHON").map_or_else(
            || PathBuf::from("/tmp/kernelci-ci/kcidb-venv/bin/python"),
            PathBuf::from,
        ),
        rounds: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--corpus" => o.corpus = Some(PathBuf::from(value()?)),
            "--checkouts" => o.checkouts = value()?.parse().map_err(|e| format!("{arg}: {e}"))?,
            "--files" => o.files = value()?.parse().map_err(|e| format!("{arg}: {e}"))?,
            "--invalid-rate" => o.invalid_rate = value()?,
            "--python" => o.python = PathBuf::from(value()?),
            "--rounds" => o.rounds = value()?.parse().map_err(|e| format!("{arg}: {e}"))?,
            "-h" | "--help" => {
                return Err(
                    "usage: validate_bench [--corpus DIR | --checkouts N --files N \
                            --invalid-rate F] [--python PATH] [--rounds N]"
                        .to_string(),
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn fixtures_root() -> PathBuf {
    match std::env::var_os("KERNELCI_FIXTURES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
    }
}

fn generate(o: &Options, out: &Path) -> Result<(), String> {
    let script = fixtures_root().join("kcidb/gen_submissions.py");
    let started = Instant::now();
    let status = Command::new("python3")
        .arg(&script)
        .arg("--out")
        .arg(out)
        .args(["--seed", "1", "--indent", "-1"])
        .args([
            "--checkouts",
            &o.checkouts.to_string(),
            "--files",
            &o.files.to_string(),
        ])
        .args(["--invalid-rate", &o.invalid_rate])
        .status()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!("{} failed", script.display()));
    }
    eprintln!(
        "generated {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs `f` over every file `rounds` times; returns the best time and the accepted count.
fn time_ours(corpus: &[Vec<u8>], rounds: u32, f: impl Fn(&[u8]) -> bool) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut accepted = 0;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        accepted = corpus.iter().filter(|bytes| f(bytes)).count();
        best = best.min(started.elapsed());
    }
    (best, accepted)
}

struct PythonRun {
    inner: f64,
    wall: f64,
    objects: u64,
    accepted: u64,
}

fn time_kcidb_io(python: &Path, files: &[PathBuf]) -> Result<PythonRun, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kcidb_io_verdicts.py");
    let started = Instant::now();
    let mut child = Command::new(python)
        .arg(&script)
        .arg("--time")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        for file in files {
            writeln!(stdin, "{}", file.display()).map_err(|e| e.to_string())?;
        }
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let wall = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err("kcidb_io_verdicts.py failed".to_string());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("python output: {e}"))?;
    Ok(PythonRun {
        inner: v["seconds"].as_f64().unwrap_or(f64::NAN),
        wall,
        objects: v["objects"].as_u64().unwrap_or(0),
        accepted: v["accepted"].as_u64().unwrap_or(0),
    })
}

fn python_works(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import kcidb_io"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run() -> Result<(), String> {
    let o = options()?;
    let temp = std::env::temp_dir().join(format!("kcidb-bench-{}", std::process::id()));
    let dir = match &o.corpus {
        Some(dir) => dir.clone(),
        None => {
            let dir = temp.join("corpus");
            generate(&o, &dir)?;
            dir
        }
    };
    let files = json_files(&dir)?;
    let corpus: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).map_err(|e| format!("{}: {e}", f.display())))
        .collect::<Result<_, _>>()?;
    let bytes: usize = corpus.iter().map(Vec::len).sum();
    let objects: usize = corpus
        .iter()
        .filter_map(|b| parse(b).ok())
        .map(|doc| count_objects(&doc))
        .sum();
    println!(
        "corpus: {} ({} files, {objects} objects, {:.1} MB)",
        dir.display(),
        files.len(),
        bytes as f64 / 1e6
    );

    let rate = |d: f64| objects as f64 / d;
    let (full_t, _) = time_ours(&corpus, o.rounds, |b| {
        parse(b).is_ok_and(|doc| validate(&doc).is_ok())
    });
    let (check_t, ours_accepted) = time_ours(&corpus, o.rounds, |b| check(b).is_ok());
    let (load_t, _) = time_ours(&corpus, o.rounds, |b| load(b).is_ok());
    println!(
        "{:<44} {:>10} {:>14} {:>9}",
        "", "seconds", "objects/s", "MB/s"
    );
    let row = |name: &str, secs: f64| {
        println!(
            "{name:<44} {secs:>10.3} {:>14.0} {:>9.1}",
            rate(secs),
            bytes as f64 / 1e6 / secs
        );
    };
    row("ours: check (verdict; fast path)", check_t.as_secs_f64());
    row(
        "ours: load (verdict + typed Submission)",
        load_t.as_secs_f64(),
    );
    row(
        "ours: parse + validate (explaining path)",
        full_t.as_secs_f64(),
    );

    if !python_works(&o.python) {
        println!(
            "kcidb-io: skipped ({} cannot import kcidb_io; python3 -m venv \
             /tmp/kernelci-ci/kcidb-venv && /tmp/kernelci-ci/kcidb-venv/bin/pip install kcidb-io)",
            o.python.display()
        );
    } else {
        let py = time_kcidb_io(&o.python, &files)?;
        row("kcidb-io: read + json.loads + validate + upgrade", py.inner);
        row("kcidb-io: whole subprocess (with start-up)", py.wall);
        println!(
            "speed-up of ours (check) over kcidb-io: {:.0}x (in-process), {:.0}x (subprocess)",
            py.inner / check_t.as_secs_f64(),
            py.wall / check_t.as_secs_f64()
        );
        println!(
            "verdicts: ours accepted {ours_accepted}/{} files, kcidb-io {}/{} ({} objects)",
            files.len(),
            py.accepted,
            files.len(),
            py.objects
        );
    }
    if o.corpus.is_none() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("validate_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
