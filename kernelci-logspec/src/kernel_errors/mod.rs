//! Kernel error reports in boot logs (upstream `utils/linux_kernel_errors.py` and
//! `errors/linux_kernel.py`).
//!
//! The start markers of every class are combined into one alternation; the leftmost match
//! wins and, at equal positions, the earlier class in this order: NULL pointer dereference,
//! BUG, UBSAN, panic, error return code, generic "cut here" block.

mod bug;
mod common;
mod cut_here;
mod error_return_code;
pub(crate) mod memo;
mod null_pointer;
mod panic;
mod ubsan;

use crate::LogError;
use crate::patterns::{Lazy, Need, TS, constant};
use memo::Memo;
use regex::{Captures, Regex};

/// The start markers, as named groups, in upstream's order.
fn start_pattern(include_generic: bool) -> String {
    let mut alternatives = vec![
        format!(r"(?P<null_pointer>{TS} Unable to handle kernel NULL pointer dereference)"),
        format!(r"(?P<bug>{TS} (?:kernel )?BUG)"),
        format!(r"(?P<ubsan>{TS} UBSAN:)"),
        format!(r"(?P<kernel_panic>{TS} Kernel panic)"),
        format!(r"(?P<error_return_code>{TS} .*error -\d+)"),
    ];
    if include_generic {
        alternatives.push(format!(r"(?P<generic>{})", cut_here::START));
    }
    alternatives.join("|")
}

static START_ALL: Lazy = Lazy::new(|| constant(&start_pattern(true)));
static START_SPECIFIC: Lazy = Lazy::new(|| constant(&start_pattern(false)));

/// A literal that every start marker contains on its line: lines without one are skipped
/// by a fast multi-literal search, and the start pattern runs only on the others.
static START_LITERALS: Lazy = Lazy::new(|| {
    constant(
        r"Unable to handle kernel NULL pointer dereference|BUG|UBSAN:|Kernel panic|error -|\[ cut here \]",
    )
});

/// The first start marker in `text`: the offset of the line it is on, and its captures
/// within that line. Every start pattern lies within one line, so this is the same match
/// as searching the whole text.
fn first_start<'t>(re: &Regex, text: &'t str) -> Option<(usize, Captures<'t>)> {
    let mut at = 0;
    while let Some(hit) = START_LITERALS.find_at(text, at) {
        let line_start =
            memchr::memrchr(b'\n', &text.as_bytes()[..hit.start()]).map_or(0, |i| i + 1);
        let line_end = memchr::memchr(b'\n', &text.as_bytes()[hit.end()..])
            .map_or(text.len(), |i| hit.end() + i);
        if let Some(caps) = re.captures(&text[line_start..line_end]) {
            return Some((line_start, caps));
        }
        if line_end >= text.len() {
            return None;
        }
        at = line_end + 1;
    }
    None
}

/// One report found by [`find_error_report`]: the parsed error (`None` when the block could
/// not be parsed and is skipped, as upstream does), where it starts and where the search
/// goes on (byte offsets in the text searched).
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) error: Option<LogError>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// What a class parser returns: the error and where its block ends, or `None` when the
/// block could not be parsed.
pub(crate) type Parsed = Need<Option<(LogError, usize)>>;

/// Upstream `find_error_report`: the first kernel error report in `text`, which starts at
/// absolute offset `abs` of the log. When `is_final` is false, `text` ends at a line
/// boundary and more may follow; the answer is then [`Need::More`] whenever it could change
/// with more text.
pub(crate) fn find_error_report(
    text: &str,
    abs: usize,
    is_final: bool,
    include_generic: bool,
    memo: &mut Memo,
) -> Need<Option<Found>> {
    let re = if include_generic {
        &START_ALL
    } else {
        &START_SPECIFIC
    };
    let Some((line_start, caps)) = first_start(re, text) else {
        return Need::Done(None);
    };
    let Some(whole) = caps.get(0) else {
        return Need::Done(None);
    };
    let (start, end) = (line_start + whole.start(), line_start + whole.end());
    if caps.name("generic").is_some() {
        // A more specific report inside a complete "cut here" block wins.
        match memo.find(&cut_here::END, text, abs, end) {
            Some((_, block_end)) => {
                let inner = find_error_report(&text[end..block_end], abs + end, true, false, memo);
                if let Need::Done(Some(inner)) = inner {
                    return Need::Done(Some(Found {
                        error: inner.error,
                        start: end + inner.start,
                        end: block_end,
                    }));
                }
            }
            None if !is_final => return Need::More,
            None => {}
        }
    }
    let (block, block_abs) = (&text[start..], abs + start);
    let parsed = if caps.name("null_pointer").is_some() {
        null_pointer::parse(block, block_abs, is_final, memo)
    } else if caps.name("bug").is_some() {
        bug::parse(block, block_abs, is_final, memo)
    } else if caps.name("ubsan").is_some() {
        ubsan::parse(block, block_abs, is_final, memo)
    } else if caps.name("kernel_panic").is_some() {
        panic::parse(block, block_abs, is_final, memo)
    } else if caps.name("error_return_code").is_some() {
        error_return_code::parse(block)
    } else {
        cut_here::parse(block, block_abs, is_final, memo)
    };
    match parsed {
        Need::More => Need::More,
        Need::Done(Some((error, parse_end))) if parse_end > 0 => Need::Done(Some(Found {
            error: Some(error),
            start,
            end: start + parse_end,
        })),
        Need::Done(_) => Need::Done(Some(Found {
            error: None,
            start,
            end,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_patterns_compile() {
        let _ = (&*START_ALL, &*START_SPECIFIC, &*START_LITERALS);
        common::force_all();
    }

    #[test]
    fn earlier_class_wins_at_the_same_position() {
        let text = "[    1.0] BUG: foo failed with error -5\n";
        let Need::Done(Some(found)) = find_error_report(text, 0, true, true, &mut Memo::default())
        else {
            panic!("a report")
        };
        let error = found.error.expect("parsed");
        assert_eq!(error.error_type, "linux.kernel.bug");
    }
}
