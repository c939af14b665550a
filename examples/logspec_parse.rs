//! Parse a kernel log with kernelci-logspec and print what it found.
//!
//! ```text
//! cargo run -p kernelci-examples --example logspec_parse                      # the log below
//! cargo run -p kernelci-examples --example logspec_parse -- console.log       # a boot log
//! cargo run -p kernelci-examples --example logspec_parse -- build.log kbuild  # a build log
//! ```
//!
//! The second argument names the parser (`generic_linux_boot` by default; `kbuild`,
//! `test_baseline`, `test_kselftest`). Each finding is printed with its line, type, summary
//! and signature (the id KCIDB's triage files issues under); the detectors beyond upstream
//! logspec (Oops, KASAN, lockups, ...) are switched on with `Options::extra`. Exit code 0: no
//! error found, 1: errors found, 2: bad input, as `kci logspec`.

use std::process::ExitCode;

use kernelci_logspec::{Options, ParseResult, Parser, parse_bytes};

/// A QEMU boot that panics because the initramfs has no init (cut from a real console).
pub const SAMPLE_LOG: &str = "\
SeaBIOS (version 1.16.2-debian-1.16.2-1)
Booting from ROM...
[    0.000000] Linux version 6.1.0 (builder@ci) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP
[    0.000000] Command line: console=ttyS0,115200 rdinit=/init
[    0.355249] Serial: 8250/16550 driver, 4 ports, IRQ sharing disabled
[    1.063847] Freeing unused kernel image (initmem) memory: 476K
[    1.072395] Run /sbin/init as init process
[    1.077651] Run /bin/sh as init process
[    1.077840] Kernel panic - not syncing: No working init found.  Try passing init= option to kernel. See Linux Documentation/admin-guide/init.rst for guidance.
[    1.078054] Kernel Offset: disabled
[    1.078214] ---[ end Kernel panic - not syncing: No working init found.  Try passing init= option to kernel. See Linux Documentation/admin-guide/init.rst for guidance. ]---
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parser = match Parser::from_name(args.get(1).map_or("generic_linux_boot", String::as_str)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let log = match args.first() {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("cannot read {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => SAMPLE_LOG.as_bytes().to_vec(),
    };
    let result = parse(&log, parser);
    print!("{}", report(&result));
    if result.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Parses `log` with `parser`, with the detectors beyond upstream switched on (they only
/// apply to boot parsers; the upstream-compatible findings are the same either way).
pub fn parse(log: &[u8], parser: Parser) -> ParseResult {
    let options = Options {
        extra: true,
        ..Options::default()
    };
    parse_bytes(log, parser, &options)
}

/// The findings as text: one line per error (`line N: type: summary [signature]`), one per
/// extra finding, then the states the parser reached (`linux.boot.prompt`, ...).
pub fn report(result: &ParseResult) -> String {
    let mut out = String::new();
    let line = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| n.to_string());
    out.push_str(&format!(
        "{} error(s) found by {}\n",
        result.errors.len(),
        result.parser.name()
    ));
    for e in &result.errors {
        out.push_str(&format!(
            "line {}: {}: {} [{}]\n",
            line(e.line),
            e.error_type,
            e.error_summary,
            e.signature
        ));
    }
    for f in &result.extra {
        out.push_str(&format!(
            "line {}: extra {} ({}): {}\n",
            line(f.line),
            f.finding_type,
            f.severity.as_str(),
            f.summary
        ));
    }
    for (key, value) in &result.states {
        out.push_str(&format!("{key}: {value}\n"));
    }
    out
}
