//! Patterns and steps shared by the kernel error classes.

use crate::patterns::{Lazy, TS, constant};
use crate::pycompat::PY_SPACE_EXTRA;
use regex::Regex;

/// `<ts> Hardware name: <hardware>`.
pub(super) static HARDWARE: Lazy =
    Lazy::new(|| constant(&format!(r"{TS} Hardware name: (?P<hardware>.*)")));

/// `<ts> Call trace:` in any case.
pub(super) static CALL_TRACE: Lazy = Lazy::new(|| constant(&format!(r"(?i){TS} call trace:")));

/// A call-trace frame: two spaces after the timestamp (panic, cut here, NULL pointer).
pub(super) static FRAME: Lazy = Lazy::new(|| constant(&format!(r"{TS}  (.*)")));

/// A call-trace frame that starts with a non-space (BUG).
pub(super) static FRAME_NO_SPACE: Lazy =
    Lazy::new(|| constant(&format!(r"{TS}  ([^\s{PY_SPACE_EXTRA}].*)")));

/// Every frame matched by `frame` in `text` (`re.findall` / `re.finditer` group 1).
pub(super) fn frames(frame: &Regex, text: &str) -> Vec<String> {
    frame
        .captures_iter(text)
        .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
        .collect()
}

#[cfg(test)]
pub(super) fn force_all() {
    let _ = (&*HARDWARE, &*CALL_TRACE, &*FRAME, &*FRAME_NO_SPACE);
    super::bug::force_all();
    super::cut_here::force_all();
    super::error_return_code::force_all();
    super::null_pointer::force_all();
    super::panic::force_all();
    super::ubsan::force_all();
}
