//! File names and targets that upstream interpolates into its patterns. Each is literal
//! characters plus `.` wildcards (see [`pattern_from_text`]), so every match has the same
//! length; the rest of upstream's pattern is a constant anchored at the end of the match.
//! Searching this way gives the same matches as upstream's combined patterns, without
//! compiling a Unicode pattern per log.

use crate::pycompat::{dynamic_regex, next_char, pattern_from_text};
use regex::{Captures, Regex};

/// A text used as a pattern.
pub(super) struct Stem {
    re: Option<Regex>,
}

impl Stem {
    pub(super) fn new(text: &str) -> Self {
        Stem {
            re: dynamic_regex(&pattern_from_text(text)),
        }
    }

    /// Every match in `text`, overlapping ones included, in order: (start, end).
    pub(super) fn matches<'t>(
        &'t self,
        text: &'t str,
    ) -> impl Iterator<Item = (usize, usize)> + 't {
        let mut at = 0;
        std::iter::from_fn(move || {
            let re = self.re.as_ref()?;
            if at > text.len() {
                return None;
            }
            let m = re.find_at(text, at)?;
            at = if m.start() >= text.len() {
                text.len() + 1
            } else {
                next_char(text, m.start())
            };
            Some((m.start(), m.end()))
        })
    }

    /// The first match (upstream `re.search(stem, text)`).
    pub(super) fn find(&self, text: &str) -> Option<(usize, usize)> {
        self.re.as_ref()?.find(text).map(|m| (m.start(), m.end()))
    }

    /// Start of the last line that contains a match (upstream: the last match of
    /// `^.*<stem>.*$`).
    pub(super) fn last_line_start(&self, text: &str) -> Option<usize> {
        let last = self.re.as_ref()?.find_iter(text).last()?;
        Some(memchr::memrchr(b'\n', &text.as_bytes()[..last.start()]).map_or(0, |i| i + 1))
    }

    /// The first match of `<stem><suffix>` where `suffix` is anchored (`^...`): the stem's
    /// span and the suffix's captures.
    pub(super) fn with_suffix<'t>(
        &self,
        text: &'t str,
        suffix: &Regex,
    ) -> Option<((usize, usize), Captures<'t>)> {
        self.matches(text)
            .find_map(|(s, e)| suffix.captures(&text[e..]).map(|c| ((s, e), c)))
    }
}
