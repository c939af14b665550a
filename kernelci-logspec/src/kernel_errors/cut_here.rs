//! Generic `------------[ cut here ]------------` reports: `linux.kernel.<word>` from the
//! banner line, e.g. `linux.kernel.warning`.

use super::Parsed;
use super::common::{CALL_TRACE, FRAME, HARDWARE, frames};
use super::memo::Memo;
use crate::patterns::{Lazy, Need, TS, constant, group, span};
use crate::pycompat::split_whitespace;
use crate::{AttrValue, LogError};

/// The start marker (the whole `cut here` line).
pub(super) const START: &str = r"\[[ \d\.]+\] -+\[ cut here \].*";

/// The end marker of the block.
pub(super) static END: Lazy = Lazy::new(|| constant(&format!(r"{TS} -+\[ end trace")));

static BANNER: Lazy = Lazy::new(|| {
    constant(&format!(
        r"{TS}.*?(?P<report_type>[A-Z]+):?.*? at (?P<location>.*)"
    ))
});
static MODULES: Lazy = Lazy::new(|| constant(&format!(r"{TS} Modules linked in: (?P<modules>.*)")));

/// Parses the block that starts `text` (at the `cut here` line); it needs its end line.
pub(super) fn parse(text: &str, abs: usize, is_final: bool, memo: &mut Memo) -> Parsed {
    let msg_start = memchr::memchr(b'\n', text.as_bytes()).map_or(0, |i| i + 1);
    let Some((end, _)) = memo.find(&END, text, abs, msg_start) else {
        return if is_final {
            Need::Done(None)
        } else {
            Need::More
        };
    };
    let report_end = end;
    let text = &text[msg_start..report_end];
    let mut error = LogError::new("linux.kernel");
    error.signature_fields.push("location".into());
    error.report = text.to_string();
    let mut location = AttrValue::Null;
    let mut hardware = AttrValue::Null;
    let mut modules = Vec::new();
    let mut call_trace = Vec::new();
    let mut match_end = 0;
    if let Some(c) = BANNER.captures(text) {
        match_end += span(&c).1;
        let word = group(&c, "report_type");
        let loc = group(&c, "location");
        error.error_type = format!("linux.kernel.{}", word.to_ascii_lowercase());
        error.error_summary = format!("{word} at {loc}");
        location = AttrValue::Str(loc.to_string());
    }
    if let Some(c) = MODULES.captures(&text[match_end..]) {
        match_end += span(&c).1;
        modules = split_whitespace(group(&c, "modules"));
        modules.sort();
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
    error.set("location", location);
    error.set("call_trace", AttrValue::List(call_trace));
    error.set("modules", AttrValue::List(modules));
    error.generate_signature(false);
    Need::Done(Some((error, report_end)))
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = (&*END, &*BANNER, &*MODULES);
}
