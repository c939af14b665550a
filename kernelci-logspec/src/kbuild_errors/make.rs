//! `kbuild.make`: a failure of the `modules` or `Module.symvers` target; the summary is the
//! `***` lines.

use super::with_script_target;
use crate::LogError;
use crate::patterns::{Lazy, constant};
use crate::pycompat::strip_chars;

static STARS: Lazy = Lazy::new(|| constant(r"\*\*\*.*"));

pub(super) fn parse(script: &str, target: &str, text: &str) -> LogError {
    let mut error = with_script_target("kbuild.make", script, target);
    let mut summary = Vec::new();
    for m in STARS.find_iter(text) {
        error.report.push_str(m.as_str());
        error.report.push('\n');
        summary.push(strip_chars(m.as_str(), "*\n "));
    }
    error.error_summary = join_non_empty(&summary);
    error.generate_signature(false);
    error
}

/// `" ".join(s for s in strings if s)`.
pub(super) fn join_non_empty(strings: &[&str]) -> String {
    strings
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = &*STARS;
}
