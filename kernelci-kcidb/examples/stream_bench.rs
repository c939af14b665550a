//! Memory and speed of reading a large submission: streamed ([`kernelci_kcidb::stream`]) or
//! in memory ([`kernelci_kcidb::load`]).
//!
//! ```text
//! cargo run --release -p kernelci-kcidb --example stream_bench -- [--mib 500] [--in-memory]
//! ```
//!
//! Writes a generated v5.3 document of about `--mib` MiB (tests of one build, each with a
//! log excerpt and misc) to a temporary file, reads it once and prints the objects, the
//! time, the throughput and the process's peak RSS (`VmHWM`). Run the two modes as separate
//! processes: the peak is per process.

use std::io::{BufWriter, Write};
use std::time::Instant;

use kernelci_kcidb::stream::{StreamOptions, read_objects};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut mib: u64 = 500;
    let mut in_memory = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mib" => mib = args.next().ok_or("--mib needs a value")?.parse()?,
            "--in-memory" => in_memory = true,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let path = std::env::temp_dir().join(format!("kcidb-stream-bench-{}.json", std::process::id()));
    let written = write_document(&path, mib << 20)?;
    let before = peak_rss_kib();
    let start = Instant::now();
    let objects = if in_memory {
        let bytes = std::fs::read(&path)?;
        kernelci_kcidb::load(&bytes)?.object_count() as u64
    } else {
        let file = std::fs::File::open(&path)?;
        read_objects(file, &StreamOptions::default(), |_, object| {
            std::hint::black_box(object);
            Ok::<(), std::convert::Infallible>(())
        })?
    };
    let elapsed = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    println!(
        "{}: {:.0} MiB, {objects} objects in {elapsed:.1} s ({:.0} objects/s, {:.0} MiB/s); \
         peak RSS {:.0} MiB (before reading: {:.0} MiB)",
        if in_memory { "in memory" } else { "streamed" },
        written as f64 / f64::from(1 << 20),
        objects as f64 / elapsed,
        written as f64 / f64::from(1 << 20) / elapsed,
        peak_rss_kib() as f64 / 1024.0,
        before as f64 / 1024.0,
    );
    Ok(())
}

/// Writes a valid document of at least `size` bytes; returns its size.
fn write_document(path: &std::path::Path, size: u64) -> std::io::Result<u64> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let put = |out: &mut BufWriter<std::fs::File>, text: &str| {
        out.write_all(text.as_bytes()).map(|()| text.len() as u64)
    };
    let mut written = put(
        &mut out,
        r#"{"version": {"major": 5, "minor": 3}, "checkouts": [{"id": "lab:c1", "origin": "lab", "tree_name": "mainline"}], "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1", "status": "PASS"}], "tests": ["#,
    )?;
    let excerpt = "x".repeat(300);
    let mut i: u64 = 0;
    while written < size {
        let sep = if i == 0 { "" } else { ", " };
        let test = format!(
            r#"{sep}{{"id": "lab:t{i}", "origin": "lab", "build_id": "lab:b1", "path": "suite.group{}.case{i}", "status": "{}", "start_time": "2026-11-28T10:00:00Z", "duration": {}.5, "log_excerpt": "{excerpt}", "environment": {{"compatible": ["qemu,x86"], "misc": {{"platform": "qemu-x86"}}}}, "misc": {{"n": {i}, "lab": "lab-a"}}}}"#,
            i % 97,
            ["PASS", "FAIL", "SKIP"][(i % 3) as usize],
            i % 600,
        );
        written += put(&mut out, &test)?;
        i += 1;
    }
    written += put(&mut out, "]}")?;
    out.flush()?;
    Ok(written)
}

/// The process's peak resident set (`VmHWM`, KiB), 0 where /proc is missing.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
