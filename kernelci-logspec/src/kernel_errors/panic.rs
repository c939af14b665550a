//! `linux.kernel.panic`: `Kernel panic - not syncing: <message>` reports.

use super::Parsed;
use super::common::{CALL_TRACE, FRAME, HARDWARE, frames};
use super::memo::{Memo, TIMESTAMPED_RUN};
use crate::patterns::{Lazy, Need, TS, constant, group, span};
use crate::{AttrValue, LogError};

static END: Lazy = Lazy::new(|| constant(&format!(r"{TS} ---\[ end Kernel panic")));
static FIRST: Lazy = Lazy::new(|| constant(&format!(r"{TS} Kernel panic .*?: (?P<message>.*)")));
static TS_AT_START: Lazy = Lazy::new(|| constant(&format!("^{TS}")));

/// Parses the report that starts `text`: up to its `---[ end Kernel panic` line, or, when
/// there is none (the board rebooted), the run of timestamped lines that starts it.
pub(super) fn parse(text: &str, abs: usize, is_final: bool, memo: &mut Memo) -> Parsed {
    let report_end = match memo.find(&END, text, abs, 0) {
        Some((start, _)) => start,
        None if !is_final => return Need::More,
        None => memo
            .find_with(TIMESTAMPED_RUN, text, abs, 0, |hay| {
                timestamped_run_end(hay).map(|nl| (nl, nl + 1))
            })
            .map_or(text.len(), |(nl, _)| nl),
    };
    let text = &text[..report_end];
    let mut error = LogError::new("linux.kernel.panic");
    error.report = text.to_string();
    let mut hardware = AttrValue::Null;
    let mut call_trace = Vec::new();
    let mut match_end = 0;
    if let Some(c) = FIRST.captures(text) {
        match_end += span(&c).1;
        error.error_summary = group(&c, "message").to_string();
    }
    if let Some(c) = HARDWARE.captures(&text[match_end..]) {
        match_end += span(&c).1;
        hardware = AttrValue::Str(group(&c, "hardware").to_string());
    }
    if let Some(m) = CALL_TRACE.find(&text[match_end..]) {
        match_end += m.end();
        call_trace = frames(&FRAME, &text[match_end..]);
    }
    error.set("hardware", hardware);
    error.set("call_trace", AttrValue::List(call_trace));
    if report_end == 0 {
        return Need::Done(None);
    }
    error.generate_signature(false);
    Need::Done(Some((error, report_end)))
}

/// Offset of the first newline followed by a line that does not start with a timestamp.
fn timestamped_run_end(text: &str) -> Option<usize> {
    memchr::memchr_iter(b'\n', text.as_bytes()).find(|&nl| !TS_AT_START.is_match(&text[nl + 1..]))
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = (&*END, &*FIRST, &*TS_AT_START);
}
