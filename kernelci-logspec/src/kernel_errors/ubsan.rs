//! `linux.kernel.ubsan`: `UBSAN: <check> in <location>` reports.

use super::Parsed;
use super::common::HARDWARE;
use super::memo::Memo;
use crate::patterns::{Lazy, Need, TS, constant, group, span};
use crate::pycompat::next_char;
use crate::{AttrValue, LogError};

static END: Lazy = Lazy::new(|| constant(r"(-+\[ end trace)|(={80})"));
static FIRST: Lazy = Lazy::new(|| {
    constant(&format!(
        r"{TS} UBSAN: (?P<error_msg>.*?) in (?P<location>.*)"
    ))
});
static DETAILS: Lazy = Lazy::new(|| constant(&format!(r"{TS} (?P<error_details>.*)")));

/// Parses the report that starts `text`; it needs its end line (`---[ end trace` or a line
/// of 80 `=`).
pub(super) fn parse(text: &str, abs: usize, is_final: bool, memo: &mut Memo) -> Parsed {
    let Some((report_end, _)) = memo.find(&END, text, abs, 0) else {
        return if is_final {
            Need::Done(None)
        } else {
            Need::More
        };
    };
    let text = &text[..report_end];
    let mut error = LogError::new("linux.kernel.ubsan");
    error.signature_fields.push("location".into());
    error.report = text.to_string();
    let mut location = AttrValue::Null;
    let mut hardware = AttrValue::Null;
    let mut match_end = 0;
    if let Some(c) = FIRST.captures(text) {
        match_end += span(&c).1;
        error.error_summary = group(&c, "error_msg").to_string();
        location = AttrValue::Str(group(&c, "location").to_string());
    }
    // The next timestamped line gives the details, unless it is a `Key: value` line.
    match_end = next_char(text, match_end);
    if let Some(c) = DETAILS.captures(&text[match_end..]) {
        match_end += span(&c).1;
        let details = group(&c, "error_details");
        if !details.contains(':') {
            error.error_summary = format!("{}: {details}", error.error_summary);
        }
    }
    if let Some(c) = HARDWARE.captures(&text[match_end..]) {
        hardware = AttrValue::Str(group(&c, "hardware").to_string());
    }
    error.set("location", location);
    error.set("hardware", hardware);
    if report_end == 0 {
        return Need::Done(None);
    }
    error.generate_signature(false);
    Need::Done(Some((error, report_end)))
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = (&*END, &*FIRST, &*DETAILS);
}
