//! Cost of a large LAVA callback: parse, console text, log YAML and node hierarchy.
//!
//! ```text
//! cargo run --release -p kernelci-lava --example callback_bench -- \
//!     [--cases 10000] [--suites 5] [--log-mb 30] [--rounds 3]
//! ```
//!
//! Generates a callback body shaped like lava-server 2023.01's (`dataset: all`): `results`
//! with a `lava` suite plus `--suites` suites sharing `--cases` test cases (every other
//! suite uses test sets), each suite a YAML text in `export_testcase`'s shape, and a `log`
//! of about `--log-mb` MB written like LAVA's `output.yaml` (one `- {"dt", "lvl", "msg"}`
//! line per entry, double-quoted with PyYAML's escapes): mostly serial console lines with
//! ANSI colours and tabs, dispatcher info/debug lines, and one `results` line per case.
//! Then, for `--rounds` rounds, times `Callback::parse`, `target_log`, `log_yaml` and
//! `hierarchy` and prints the best and mean of each, and the peak resident memory (VmHWM
//! from /proc/self/status) after generating the body and at the end.

use std::time::{Duration, Instant};

use kernelci_lava::Callback;
use serde_json::{Value, json};

#[path = "big_callback/mod.rs"]
mod big_callback;

struct Options {
    cases: usize,
    suites: usize,
    log_mb: usize,
    rounds: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        cases: 10_000,
        suites: 5,
        log_mb: 30,
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse::<usize>()
            .map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--cases" => o.cases = value,
            "--suites" => o.suites = value.max(1),
            "--log-mb" => o.log_mb = value,
            "--rounds" => o.rounds = value.max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn report(name: &str, times: &[Duration]) {
    let best = times.iter().min().copied().unwrap_or_default();
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len().max(1)).unwrap_or(1);
    println!("{name:<12} best {best:>10.3?}  mean {mean:>10.3?}");
}

fn main() -> std::process::ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("callback_bench: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let shape = big_callback::Shape {
        cases: o.cases,
        suites: o.suites,
        log_mb: o.log_mb,
    };
    let (body, log_lines) = big_callback::payload(&shape, "65a1b2c3d4e5f60718293a4b");
    println!(
        "body: {:.1} MB ({} test cases in {} suites, {} log lines), generated in {:.2?}; VmHWM {}",
        body.len() as f64 / 1e6,
        o.cases,
        o.suites,
        log_lines,
        start.elapsed(),
        vm_hwm()
    );
    let node = json!({
        "id": "65a1b2c3d4e5f60718293a4b", "name": "kselftest-bench", "kind": "job",
        "path": ["checkout", "kbuild-gcc-12-x86", "kselftest-bench"],
        "state": "running", "result": null, "artifacts": {},
        "data": {"kernel_revision": {"tree": "mainline", "commit": "abc"}, "arch": "x86_64",
                 "defconfig": "defconfig", "platform": "qemu-x86", "runtime": "lava-bench"},
    });
    let (mut t_parse, mut t_text, mut t_yaml, mut t_tree) = (vec![], vec![], vec![], vec![]);
    let mut summary = String::new();
    for _ in 0..o.rounds {
        let t = Instant::now();
        let cb = match Callback::parse(&body) {
            Ok(cb) => cb,
            Err(e) => {
                eprintln!("callback_bench: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        t_parse.push(t.elapsed());
        let t = Instant::now();
        let text = cb.target_log();
        t_text.push(t.elapsed());
        let t = Instant::now();
        let yaml = cb.log_yaml();
        t_yaml.push(t.elapsed());
        let t = Instant::now();
        let tree = cb.hierarchy(&node);
        t_tree.push(t.elapsed());
        let count = |v: &Value| -> usize {
            fn walk(v: &Value) -> usize {
                v["child_nodes"]
                    .as_array()
                    .map_or(0, |c| c.len() + c.iter().map(walk).sum::<usize>())
            }
            walk(v)
        };
        summary = format!(
            "result {}, {} child nodes, console {:.1} MB, log YAML {:.1} MB",
            tree["node"]["result"],
            count(&tree),
            text.len() as f64 / 1e6,
            yaml.len() as f64 / 1e6
        );
    }
    println!("{summary}");
    // Where parse time goes: the JSON body, then the log alone.
    let t = Instant::now();
    let value: Value = serde_json::from_slice(&body).unwrap_or_default();
    let t_json = t.elapsed();
    let t = Instant::now();
    let entries = kernelci_lava::LavaLog::parse(value["log"].as_str().unwrap_or_default())
        .map(|l| l.entries().len())
        .unwrap_or_default();
    println!(
        "of parse: JSON body {t_json:.3?}, log alone {:.3?} ({entries} kept entries)",
        t.elapsed()
    );
    report("parse", &t_parse);
    report("target_log", &t_text);
    report("log_yaml", &t_yaml);
    report("hierarchy", &t_tree);
    println!("peak RSS (VmHWM): {}", vm_hwm());
    std::process::ExitCode::SUCCESS
}
