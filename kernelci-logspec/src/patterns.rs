//! Shared regular-expression pieces and helpers.

use regex::Regex;
use std::sync::LazyLock;

/// Upstream `LINUX_TIMESTAMP`: a kernel log timestamp such as `[    7.113510]`.
pub(crate) const TS: &str = r"\[[ \d\.]+\]";

/// Upstream kbuild `TIMESTAMP`: an optional `hh:mm:ss` line prefix.
pub(crate) const KBUILD_TS: &str = r"(?:\d\d:\d\d:\d\d *)?";

/// Compiles one of the crate's constant patterns (each is exercised by the unit tests).
pub(crate) fn constant(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(re) => re,
        Err(err) => unreachable!("constant pattern {pattern:?} does not compile: {err}"),
    }
}

/// A lazily compiled constant pattern.
pub(crate) type Lazy = LazyLock<Regex>;

/// The result of a step that may need more of the log before it can decide.
#[derive(Debug)]
pub(crate) enum Need<T> {
    /// Decided: more text would not change the answer.
    Done(T),
    /// The answer may change with more text (only when the text given is not final).
    More,
}

/// A named group as a `&str` (empty when the group did not take part).
pub(crate) fn group<'t>(caps: &regex::Captures<'t>, name: &str) -> &'t str {
    caps.name(name).map_or("", |m| m.as_str())
}

/// The whole match of a capture set: (start, end).
pub(crate) fn span(caps: &regex::Captures<'_>) -> (usize, usize) {
    caps.get(0).map_or((0, 0), |m| (m.start(), m.end()))
}
