//! `linux.kernel.bug`: `BUG: <message>` and `kernel BUG at <location>!` reports.

use super::Parsed;
use super::common::{CALL_TRACE, FRAME_NO_SPACE, HARDWARE, frames};
use super::memo::Memo;
use crate::patterns::{Lazy, Need, TS, constant, group, span};
use crate::pycompat::{PY_SPACE_EXTRA, split_whitespace};
use crate::{AttrValue, LogError};

static END: Lazy = Lazy::new(|| constant(&format!(r"{TS} ---\[ end trace")));
static FIRST: Lazy = Lazy::new(|| constant(&format!(r"{TS} (?P<kernel>kernel )?BUG(?P<rest>.*)")));
static KERNEL_AT: Lazy = Lazy::new(|| constant(r"^ at (?P<location>.*?)!?$"));
static CAUSE_AT: Lazy = Lazy::new(|| constant(r"(?P<cause>.*?) at (?P<location>.*)"));
/// A whole line that is a call-trace frame.
static FRAME_LINE: Lazy = Lazy::new(|| constant(&format!(r"^{TS}  ([^\s{PY_SPACE_EXTRA}].*)$")));
static MODULES: Lazy =
    Lazy::new(|| constant(&format!(r"{TS} Modules linked in: *(?P<modules>.*)")));

/// Messages that collapse to a fixed summary (their tails name CPUs, tasks or times).
const COLLAPSED: [&str; 3] = [
    "spinlock bad magic",
    "scheduling while atomic",
    "workqueue lockup",
];

/// Parses the report that starts `text` (at absolute offset `abs`), up to its
/// `---[ end trace` line if there is one.
///
/// Without an end line, the fields are searched in the whole rest of the log, as upstream
/// does (through `memo`, so a flood of such reports stays linear); the call trace is then
/// the run of frame lines right after its header, where upstream 1.0.0 may take every
/// frame to the end of the log.
pub(super) fn parse(text: &str, abs: usize, is_final: bool, memo: &mut Memo) -> Parsed {
    let end = memo.find(&END, text, abs, 0).map(|(start, _)| start);
    if end.is_none() && !is_final {
        return Need::More;
    }
    let mut report_end = end;
    let text = &text[..report_end.unwrap_or(text.len())];
    let mut error = LogError::new("linux.kernel.bug");
    if report_end.is_some() {
        error.report = text.to_string();
    }
    let mut hardware = AttrValue::Null;
    let mut location = None;
    let mut match_end = 0;
    if let Some(c) = FIRST.captures(text) {
        match_end = span(&c).1;
        let rest = group(&c, "rest");
        let kernel_at = c.name("kernel").and_then(|_| KERNEL_AT.captures(rest));
        if let Some(k) = kernel_at {
            let loc = group(&k, "location");
            error.error_summary = format!("kernel BUG at {loc}");
            location = Some(loc.to_string());
        } else {
            let message = rest
                .strip_prefix(':')
                .unwrap_or(rest)
                .trim_start_matches(' ');
            if let Some(collapsed) = COLLAPSED.iter().find(|c| message.starts_with(*c)) {
                error.error_summary = (*collapsed).to_string();
            } else {
                if let Some(at) = CAUSE_AT.captures(message) {
                    location = Some(group(&at, "location").to_string());
                }
                error.error_summary = message.to_string();
            }
        }
    }
    if let Some((s, _)) = memo.find(&HARDWARE, text, abs, match_end)
        && let Some(c) = HARDWARE.captures(&text[s..])
    {
        match_end = s + span(&c).1;
        hardware = AttrValue::Str(group(&c, "hardware").to_string());
    }
    let mut modules = None;
    let mut modules_start = 0;
    if let Some((s, _)) = memo.find(&MODULES, text, abs, match_end)
        && let Some(c) = MODULES.captures(&text[s..])
    {
        modules_start = s;
        match_end = s + span(&c).1;
        let mut list = split_whitespace(group(&c, "modules"));
        list.sort();
        modules = Some(list);
    }
    // The call trace comes before the modules list (x86) or after it (arm64).
    let before = if modules.is_some() {
        &text[..modules_start]
    } else {
        text
    };
    let bounded = report_end.is_some();
    let header_before = if modules.is_some() {
        // Bounded by the modules list: a plain search.
        CALL_TRACE.find(before).map(|m| ((), m.end()))
    } else {
        memo.find(&CALL_TRACE, before, abs, 0).map(|(_, e)| ((), e))
    };
    let call_trace = if let Some((_, e)) = header_before {
        if bounded || modules.is_some() {
            frames(&FRAME_NO_SPACE, &before[e..])
        } else {
            contiguous_frames(&before[e..])
        }
    } else if modules.is_some()
        && let Some((_, e)) = memo.find(&CALL_TRACE, text, abs, match_end)
    {
        if bounded {
            frames(&FRAME_NO_SPACE, &text[e..])
        } else {
            contiguous_frames(&text[e..])
        }
    } else {
        Vec::new()
    };
    error.set("hardware", hardware);
    error.set("call_trace", AttrValue::List(call_trace));
    if let Some(loc) = location {
        error.set_str("location", loc);
    }
    if let Some(list) = modules {
        error.set("modules", AttrValue::List(list));
    }
    if report_end.is_none() && match_end > 0 {
        report_end = Some(match_end);
    }
    match report_end {
        Some(end) if end > 0 => {
            error.generate_signature(false);
            Need::Done(Some((error, end)))
        }
        _ => Need::Done(None),
    }
}

/// The frame lines right after a call-trace header (`text` starts at the header's end).
fn contiguous_frames(text: &str) -> Vec<String> {
    let mut frames = Vec::new();
    for line in text.split('\n').skip(1) {
        match FRAME_LINE.captures(line).and_then(|c| c.get(1)) {
            Some(frame) => frames.push(frame.as_str().to_string()),
            None => break,
        }
    }
    frames
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = (
        &*END,
        &*FIRST,
        &*KERNEL_AT,
        &*CAUSE_AT,
        &*MODULES,
        &*FRAME_LINE,
    );
}
