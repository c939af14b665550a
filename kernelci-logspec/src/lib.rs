//! Log analysis for KernelCI: a re-implementation of upstream
//! [logspec](https://github.com/kernelci/logspec) 1.0.0 (parser definitions 0.0.1) that gives
//! the same findings and bit-identical signatures, much faster, on any input.
//!
//! ```
//! use kernelci_logspec::{Parser, parse_str};
//!
//! let log = "U-Boot 2024.01\nStarting kernel ...\n\
//!            [    0.000000] Booting Linux on physical CPU 0x0\n\
//!            [    3.575030] generic-adc-thermal: probe of thermal-sensor2 failed with error -22\n\
//!            / # ";
//! let result = parse_str(log, Parser::GenericLinuxBoot);
//! assert_eq!(result.state("linux.boot.prompt"), Some(true));
//! assert_eq!(result.errors[0].error_type, "linux.kernel.error_return_code");
//! assert_eq!(result.errors[0].error_summary, "probe of thermal-sensor2 failed with error -22");
//! // Upstream's JSON, as `logspec.py -o json` prints it:
//! let _ = result.to_upstream_json(false);
//! ```
//!
//! # Input
//! Text is read as upstream reads it: universal newlines (`\r\n` and a lone `\r` become
//! `\n`), offsets in code points. Upstream raises on invalid UTF-8; here bytes are decoded
//! lossily (each invalid sequence becomes U+FFFD) so every input gives a result.
//!
//! # Compat and beyond
//! [`ParseResult::output`] and [`ParseResult::output_full`] are exactly upstream's JSON.
//! Detectors upstream lacks (KASAN, Oops, soft lockup, hung task, RCU stall, login prompt,
//! kernel never started) fill [`ParseResult::extra`] only when [`Options::extra`] is set,
//! and never change the compat output.
//!
//! # Memory
//! [`parse_reader`] streams: boot logs are processed line by line and text is dropped as
//! soon as no state needs it. A state keeps text only while a decision needs look-ahead:
//! an error report until its end marker, kbuild the log before the first make error,
//! kselftest the test output after `kselftest.sh`. That buffer is capped by
//! [`Options::max_window`]; past it the state decides as if the log ended there and
//! [`ParseResult::window_limited`] is set.

mod engine;
mod error;
mod extra;
mod kbuild_errors;
mod kernel_errors;
mod normalize;
mod parser;
mod patterns;
mod pycompat;
pub mod pyjson;
mod result;
mod source;
mod states;

pub use error::LogspecError;
pub use extra::{Finding, Severity};
pub use normalize::normalize_newlines;
pub use parser::Parser;
pub use result::{AttrValue, LogError, ParseResult, signature};

use extra::ExtraScanner;
use source::{ReaderSource, StrSource};
use states::Ctx;
use std::io::Read;

/// The logspec version these parsers reproduce.
pub const LOGSPEC_VERSION: &str = "1.0.0";

/// How to parse.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run the beyond-upstream detectors (boot parsers only).
    pub extra: bool,
    /// Largest text a state may hold for look-ahead when reading from a reader (bytes).
    pub max_window: usize,
    /// Bytes read from a reader at a time.
    pub chunk_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra: false,
            max_window: 64 << 20,
            chunk_size: 256 << 10,
        }
    }
}

/// Parses a whole log held in memory with upstream's semantics (compat only).
pub fn parse_str(text: &str, parser: Parser) -> ParseResult {
    parse_str_with(text, parser, &Options::default())
}

/// Parses a whole log held in memory.
pub fn parse_str_with(text: &str, parser: Parser, options: &Options) -> ParseResult {
    let text = normalize_newlines(text);
    let mut src = StrSource::new(&text);
    let mut ctx = ctx(options);
    let result = engine::run(parser, &mut src, &mut ctx);
    // A string source never fails to read.
    let mut result = match result {
        Ok(result) => result,
        Err(err) => unreachable!("reading a string failed: {err}"),
    };
    if options.extra && parser.is_boot() {
        let mut scanner = ExtraScanner::default();
        scanner.feed(&text, true);
        result.extra = finish_extra(scanner, &result);
    }
    result
}

/// Parses a log given as bytes (decoded lossily).
pub fn parse_bytes(bytes: &[u8], parser: Parser, options: &Options) -> ParseResult {
    let text = String::from_utf8_lossy(bytes);
    parse_str_with(&text, parser, options)
}

/// Parses a log from a reader, streaming, with memory bounded by `options.max_window`
/// (plus one chunk and the findings). Only reading can fail.
pub fn parse_reader<R: Read>(
    reader: R,
    parser: Parser,
    options: &Options,
) -> Result<ParseResult, LogspecError> {
    let scanner = (options.extra && parser.is_boot()).then(ExtraScanner::default);
    let mut src = ReaderSource::new(reader, options.chunk_size, scanner);
    let mut ctx = ctx(options);
    let mut result = engine::run(parser, &mut src, &mut ctx)?;
    if src.scanner.is_some() {
        src.drain()?;
        if let Some(scanner) = src.scanner.take() {
            result.extra = finish_extra(scanner, &result);
        }
    }
    Ok(result)
}

fn ctx(options: &Options) -> Ctx {
    Ctx {
        max_window: options.max_window.max(1),
        read_ahead: options.chunk_size.max(1),
        window_limited: false,
    }
}

fn finish_extra(scanner: ExtraScanner, result: &ParseResult) -> Vec<Finding> {
    scanner.finish(
        result.state("bootloader.done"),
        result.state("linux.boot.kernel_started"),
    )
}
