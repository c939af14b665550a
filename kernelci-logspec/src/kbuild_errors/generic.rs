//! `kbuild.other`: any other failed target. The report is every unindented line after the
//! first mention of the target; the summary is the `***` lines and the `error:` lines.

use super::make::join_non_empty;
use super::stem::Stem;
use super::with_script_target;
use crate::LogError;
use crate::patterns::{KBUILD_TS, Lazy, constant};
use crate::pycompat::{PY_SPACE_EXTRA, strip_chars};

static UNINDENTED: Lazy = Lazy::new(|| constant(&format!(r"(?m)^[^\s{PY_SPACE_EXTRA}]+.*$")));
static ERROR_LINE: Lazy = Lazy::new(|| constant(&format!(r"{KBUILD_TS}(.*error:.*)")));

pub(super) fn parse(script: &str, target: &str, text: &str) -> LogError {
    let mut error = with_script_target("kbuild.other", script, target);
    let found = Stem::new(target).find(text);
    if let (false, Some(first)) = (target.is_empty(), found) {
        let mut summary = Vec::new();
        for m in UNINDENTED.find_iter(&text[first.1..]) {
            let line = m.as_str();
            error.report.push_str(line);
            error.report.push('\n');
            if line.starts_with("***") {
                summary.push(strip_chars(line, "*\n "));
            } else if let Some(c) = ERROR_LINE.captures(line)
                && let Some(g) = c.get(1)
            {
                summary.push(g.as_str());
            }
        }
        error.error_summary = join_non_empty(&summary);
    }
    error.generate_signature(false);
    error
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = (&*UNINDENTED, &*ERROR_LINE);
}
