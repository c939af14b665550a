//! The states of upstream's finite state machines. Each state reads from a [`Source`],
//! consumes exactly up to where upstream's `_match_end` puts the next state, and returns the
//! keys, errors, signature fields and summary it produced.

pub(crate) mod generic_boot;
pub(crate) mod kbuild;
pub(crate) mod kernel_load;
pub(crate) mod test_baseline;
pub(crate) mod test_kselftest;

use crate::LogError;
use crate::normalize::newline_count;
use crate::source::{Source, complete_end, fill_to};
use regex::Regex;

/// Settings and flags shared by the states of one parse.
pub(crate) struct Ctx {
    /// Largest look-ahead buffer a state may hold before it decides as if the log ended.
    pub(crate) max_window: usize,
    /// How much to read ahead at least when a decision needs more text.
    pub(crate) read_ahead: usize,
    /// Set when a decision was forced by `max_window`.
    pub(crate) window_limited: bool,
}

impl Ctx {
    /// True (and remembered) when `avail` is over the window limit before the end of input.
    pub(crate) fn over_window(&mut self, src: &dyn Source) -> bool {
        let over = !src.is_eof() && src.avail().len() > self.max_window;
        self.window_limited |= over;
        over
    }

    /// Reads ahead so that the text pending from `from` (offset in `avail`) at least doubles.
    pub(crate) fn read_more(
        &self,
        src: &mut dyn Source,
        from: usize,
    ) -> Result<(), crate::LogspecError> {
        let len = src.avail().len();
        let pending = len.saturating_sub(from);
        fill_to(src, len + pending.max(self.read_ahead))
    }
}

/// What one state produced (upstream's per-state `data` dictionary).
#[derive(Default)]
pub(crate) struct StateOutput {
    pub(crate) keys: Vec<(&'static str, bool)>,
    pub(crate) errors: Vec<LogError>,
    pub(crate) signature_fields: Vec<&'static str>,
    pub(crate) summary: Option<&'static str>,
    /// Where the state stopped (code points from the start of the log), when the state
    /// read past it; otherwise the source's position after the state.
    pub(crate) match_end: Option<u64>,
}

/// Line numbers (1-based) of absolute byte offsets, computed incrementally.
#[derive(Default)]
pub(crate) struct LineTracker {
    pos: usize,
    newlines: u64,
}

impl LineTracker {
    /// The line of the absolute byte offset `abs`, which must be in `src.avail()`.
    pub(crate) fn line_at(&mut self, src: &dyn Source, abs: usize) -> u64 {
        let base = src.base();
        if self.pos < base || self.pos > abs {
            self.pos = base;
            self.newlines = src.consumed_lines();
        }
        let text = src.avail();
        let from = (self.pos - base).min(text.len());
        let to = (abs - base).min(text.len());
        self.newlines += newline_count(text.get(from..to).unwrap_or_default());
        self.pos = abs;
        self.newlines + 1
    }
}

/// Finds the first match of `tag` (a pattern within one line), dropping the lines before
/// it, and returns the absolute offset of its end; `None`, with everything consumed, when
/// there is none.
pub(crate) fn consume_to_first(
    src: &mut dyn Source,
    ctx: &mut Ctx,
    tag: &Regex,
) -> Result<Option<usize>, crate::LogspecError> {
    loop {
        let over = ctx.over_window(src);
        let text = src.avail();
        let end = if over {
            text.len()
        } else {
            complete_end(text, src.is_eof())
        };
        if let Some(m) = tag.find(&text[..end]) {
            return Ok(Some(src.base() + m.end()));
        }
        if src.is_eof() {
            src.consume(text.len());
            return Ok(None);
        }
        src.consume(end);
        src.fill()?;
    }
}
