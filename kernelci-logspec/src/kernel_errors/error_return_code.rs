//! `linux.kernel.error_return_code`: one timestamped line reporting `error -N`, such as
//! `[    3.57] generic-adc-thermal: probe of thermal-sensor2 failed with error -22`.

use super::Parsed;
use crate::LogError;
use crate::patterns::{Lazy, Need, TS, constant, group};

/// The summary is the text after the first `: ` up to `error -N`.
static LINE: Lazy = Lazy::new(|| constant(&format!(r"^{TS} .*?: (?P<message>.*?error -\d+)")));

/// Parses the line that starts `text`; the report is that line.
pub(super) fn parse(text: &str) -> Parsed {
    let line_end = memchr::memchr(b'\n', text.as_bytes()).unwrap_or(text.len());
    let line = &text[..line_end];
    let Some(c) = LINE.captures(line) else {
        return Need::Done(None);
    };
    let mut error = LogError::new("linux.kernel.error_return_code");
    error.error_summary = group(&c, "message").to_string();
    error.report = line.to_string();
    error.generate_signature(false);
    Need::Done(Some((error, line_end)))
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = &*LINE;
}
