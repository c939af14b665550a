//! `linux.kernel.null_pointer_dereference` (the arm style "Unable to handle kernel NULL
//! pointer dereference" report; x86 prints a `BUG:` line instead).

use super::Parsed;
use super::common::{CALL_TRACE, FRAME, HARDWARE, frames};
use super::memo::Memo;
use crate::patterns::{Lazy, Need, TS, constant, group, span};
use crate::{AttrValue, LogError};

static END: Lazy = Lazy::new(|| constant(&format!(r"{TS} ---\[ end trace")));
static ADDRESS: Lazy = Lazy::new(|| constant(r"at virtual address (?P<address>.*)"));

/// Parses the report that starts `text`; it needs its `---[ end trace` line.
pub(super) fn parse(text: &str, abs: usize, is_final: bool, memo: &mut Memo) -> Parsed {
    let Some((report_end, _)) = memo.find(&END, text, abs, 0) else {
        return if is_final {
            Need::Done(None)
        } else {
            Need::More
        };
    };
    let text = &text[..report_end];
    let mut error = LogError::new("linux.kernel.null_pointer_dereference");
    error
        .signature_fields
        .extend(["address".into(), "call_trace".into()]);
    error.report = text.to_string();
    let mut hardware = AttrValue::Null;
    let mut address = AttrValue::Null;
    let mut match_end = 0;
    if let Some(c) = ADDRESS.captures(text) {
        match_end = span(&c).1;
        address = AttrValue::Str(group(&c, "address").to_string());
    }
    if let Some(c) = HARDWARE.captures(&text[match_end..]) {
        match_end += span(&c).1;
        hardware = AttrValue::Str(group(&c, "hardware").to_string());
    }
    let mut call_trace = Vec::new();
    if let Some(m) = CALL_TRACE.find(&text[match_end..]) {
        match_end += m.end();
        call_trace = frames(&FRAME, &text[match_end..]);
    }
    error.error_summary = match &address {
        AttrValue::Str(a) => format!("NULL pointer dereference at virtual address {a}"),
        _ => "NULL pointer dereference".to_string(),
    };
    error.set("hardware", hardware);
    error.set("address", address);
    error.set("call_trace", AttrValue::List(call_trace));
    error.generate_signature(false);
    Need::Done(Some((error, report_end)))
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = (&*END, &*ADDRESS);
}
