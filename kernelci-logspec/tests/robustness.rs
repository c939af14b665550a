//! Property tests: any input gives a result without panicking, the same result every time,
//! and the same result whether the log is a string or streamed through a reader in chunks
//! of any size (every `\r\n` or UTF-8 sequence cut anywhere).

mod common;

use kernelci_logspec::{Options, ParseResult, Parser, parse_bytes, parse_reader};
use proptest::prelude::*;
use std::io::Read;

/// A reader that hands out at most `step` bytes per call.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn streamed(bytes: &[u8], parser: Parser, chunk: usize, step: usize, extra: bool) -> ParseResult {
    let options = Options {
        chunk_size: chunk,
        extra,
        ..Options::default()
    };
    parse_reader(Trickle { data: bytes, step }, parser, &options)
        .expect("in-memory reads never fail")
}

/// Number of cases: `default`, or `LOGSPEC_PROPTEST_CASES` for a longer run.
fn cases(default: u32) -> u32 {
    std::env::var("LOGSPEC_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn parser_strategy() -> impl Strategy<Value = Parser> {
    prop::sample::select(Parser::ALL.to_vec())
}

/// Pieces of real build and console output, so random logs reach every code path.
const FRAGMENTS: &[&str] = &[
    "\n",
    "\r",
    "\r\n",
    " ",
    "é",
    "\u{1F600}",
    "\u{0}",
    "\t",
    "[    1.000000] ",
    "[    2.5] ",
    "[",
    "]",
    "12:34:56 ",
    "Starting kernel ...",
    "jumping to kernel",
    "Booting from ROM...",
    "Booting Linux",
    "Linux version 6.8.0",
    "/ #",
    "/ # ",
    "login: ",
    "BUG: ",
    "kernel BUG at mm/slub.c:42!",
    "BUG: KASAN: use-after-free in kfree+0x1/0x2",
    "BUG: spinlock bad magic on CPU#0",
    "BUG: scheduling while atomic: a/0/0x2",
    "BUG: workqueue lockup - pool",
    "sleeping function called at kernel/x.c:1",
    "Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008",
    "UBSAN: shift-out-of-bounds in ./include/linux/log2.h:57:13",
    "================================================================================",
    "Kernel panic - not syncing: Fatal exception",
    "---[ end Kernel panic - not syncing ]---",
    "------------[ cut here ]------------",
    "WARNING: CPU: 0 PID: 1 at kernel/x.c:9 f+0x1/0x2",
    "---[ end trace 0000000000000000 ]---",
    "Modules linked in: b a",
    "Hardware name: Board",
    "Call trace:",
    "Call Trace:",
    " ",
    "  f+0x1/0x2",
    "probe of x failed with error -22",
    "foo: bar failed with error -5",
    "Oops: 0000 [#1] SMP",
    "INFO: task a:1 blocked for more than 120 seconds.",
    "rcu: INFO: rcu_sched self-detected stall on CPU",
    "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [a:1]",
    "/opt/kernelci/dmesg.sh",
    "kern  :err : oops",
    "kselftest.sh",
    "not ok 1 selftests: a: b",
    "ok 2 selftests: a: c",
    "make[1]: *** [scripts/Makefile.build:244: a/b.o] Error 1",
    "make: *** No rule to make target 'x'.  Stop.",
    "make[2]: *** [Makefile:1: vmlinux] Error 2",
    "make[2]: *** [Makefile:1: modules] Error 2",
    "make[2]: *** [scripts/Makefile.modpost:1: Module.symvers] Error 1",
    "make[2]: *** [Makefile:9: defconfig] Error 1",
    "a/b.c:12:3: error: bad thing",
    "a/b.c:12: warning: w",
    "In file included from a/b.c:13:",
    "ld: a/b.o: in function `f':",
    "b.c:(.text+0x10): undefined reference to `g'",
    "arm-ld: a/vmlinux.o: x",
    "ERROR: modpost: missing",
    "*** message ***",
    "***",
    "clang: error: bad",
    "defconfig",
    "a.b",
    "(",
    "+",
    "*",
    "\\",
    "?",
];

fn fragment_log() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..120).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(200), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_stream_the_same(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        parser in parser_strategy(),
        chunk in 1usize..64,
        step in 1usize..64,
    ) {
        let options = Options { extra: true, ..Options::default() };
        let whole = parse_bytes(&bytes, parser, &options);
        prop_assert_eq!(&whole, &parse_bytes(&bytes, parser, &options));
        prop_assert_eq!(&whole, &streamed(&bytes, parser, chunk, step, true));
        let _ = whole.to_upstream_json(true);
    }

    #[test]
    fn log_like_text_never_panics_and_streams_the_same(
        text in fragment_log(),
        parser in parser_strategy(),
        chunk in 1usize..48,
        step in 1usize..48,
    ) {
        let options = Options { extra: true, ..Options::default() };
        let whole = parse_bytes(text.as_bytes(), parser, &options);
        prop_assert_eq!(&whole, &streamed(text.as_bytes(), parser, chunk, step, true));
        prop_assert!(whole.match_end <= text.chars().count() as u64);
        for error in &whole.errors {
            prop_assert!(error.signature.is_empty() || error.signature.len() == 40);
        }
    }

    #[test]
    fn tiny_windows_never_panic(text in fragment_log(), parser in parser_strategy(), window in 1usize..64) {
        let options = Options { max_window: window, chunk_size: 7, extra: true };
        let result = parse_reader(text.as_bytes(), parser, &options).expect("in-memory reads never fail");
        let _ = result.output_full();
    }

    #[test]
    fn lone_carriage_returns_are_newlines(text in fragment_log(), parser in parser_strategy()) {
        let options = Options::default();
        let with_cr = text.replace("\r\n", "\n").replace('\n', "\r");
        let with_lf = text.replace("\r\n", "\n").replace('\r', "\n");
        prop_assert_eq!(
            parse_bytes(with_cr.as_bytes(), parser, &options),
            parse_bytes(with_lf.as_bytes(), parser, &options)
        );
    }
}

/// Slices of the real fixture logs, cut at random byte offsets (so UTF-8 sequences and
/// `\r\n` pairs are cut too), with lone `\r` sprinkled in: no panic, and streamed == whole.
#[test]
fn truncated_fixture_logs() {
    let Some(dir) = common::logspec_fixtures() else {
        return;
    };
    let logs: Vec<(Parser, Vec<u8>)> = common::fixture_logs(&dir)
        .into_iter()
        .map(|log| {
            let expected: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(log.with_extension("expected.json")).expect("expected"),
            )
            .expect("JSON");
            let parser =
                Parser::from_name(expected["parser"].as_str().expect("parser")).expect("known");
            (parser, std::fs::read(&log).expect("log"))
        })
        .collect();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases(48),
        ..ProptestConfig::default()
    });
    let strategy = (
        0..logs.len(),
        any::<u32>(),
        any::<u32>(),
        64usize..4096,
        prop::collection::vec(any::<u32>(), 0..8),
    );
    runner
        .run(&strategy, |(which, a, b, chunk, crs)| {
            let (parser, bytes) = &logs[which];
            let len = bytes.len().max(1);
            let (mut start, mut end) = (a as usize % len, b as usize % len);
            if start > end {
                std::mem::swap(&mut start, &mut end);
            }
            let end = end.min(start + 300_000);
            let mut slice = bytes[start..end].to_vec();
            for at in crs {
                if !slice.is_empty() {
                    let i = at as usize % slice.len();
                    slice[i] = b'\r';
                }
            }
            let options = Options {
                extra: true,
                ..Options::default()
            };
            let whole = parse_bytes(&slice, *parser, &options);
            prop_assert_eq!(&whole, &streamed(&slice, *parser, chunk, chunk, true));
            Ok(())
        })
        .expect("truncated fixtures");
}

/// Floods of reports without their end line make upstream rescan the rest of the log for
/// each one (quadratic); here they stay linear. No timing: a regression shows as a hang.
#[test]
fn floods_of_unterminated_reports() {
    let mut log = String::from("U-Boot\nStarting kernel ...\n[    0.000000] Booting Linux\n");
    for i in 0..3000 {
        let t = format!("[{:12.6}]", f64::from(i) / 100.0);
        log.push_str(&format!(
            "{t} BUG: scheduling while atomic: swapper/0/0/0x00000002\n{t} Modules linked in: a b\n\
             {t} Call Trace:\n{t}  <TASK>\n{t}  dump_stack+0x10/0x20\n{t}  </TASK>\n\
             {t} UBSAN: shift-out-of-bounds in x.c:1:2\n{t} ------------[ cut here ]------------\n\
             {t} Unable to handle kernel NULL pointer dereference at virtual address 0\n\
             {t} Kernel panic - not syncing: x\nnot a kernel line\n"
        ));
    }
    let result = kernelci_logspec::parse_str(&log, Parser::GenericLinuxBoot);
    let bugs = result
        .errors
        .iter()
        .filter(|e| e.error_type == "linux.kernel.bug")
        .count();
    let panics = result
        .errors
        .iter()
        .filter(|e| e.error_type == "linux.kernel.panic")
        .count();
    assert_eq!((bugs, panics), (3000, 3000));
    let first = &result.errors[0];
    assert_eq!(
        first.attribute("call_trace"),
        Some(kernelci_logspec::AttrValue::List(vec![
            "<TASK>".into(),
            "dump_stack+0x10/0x20".into(),
            "</TASK>".into()
        ]))
    );
    assert_eq!(
        streamed(log.as_bytes(), Parser::GenericLinuxBoot, 4096, 4096, false),
        result
    );
}
