//! `test_kselftest.test_kselftest`: a kselftest run after the prompt. It starts at
//! `kselftest.sh` and ends at the last `ok N selftests:` / `not ok N selftests:` line; every
//! `not ok N selftests: ...` line in between is a `linux.kselftest` error.
//!
//! Finding the last result line needs the whole rest of the log, so this state buffers the
//! text after `kselftest.sh` (up to the reader's window limit).

use super::{Ctx, LineTracker, StateOutput, consume_to_first};
use crate::patterns::{Lazy, constant};
use crate::pycompat::pattern_from_text;
use crate::source::{Source, complete_end};
use crate::{LogError, LogspecError};

static TAG: Lazy = Lazy::new(|| constant(&pattern_from_text("kselftest.sh")));
static RESULT: Lazy = Lazy::new(|| constant(r"(?:not )?ok \d+ selftests:"));
static FAILURE: Lazy = Lazy::new(|| constant(r"not ok \d+ selftests:.*"));

pub(crate) fn run(src: &mut dyn Source, ctx: &mut Ctx) -> Result<StateOutput, LogspecError> {
    let mut out = StateOutput {
        signature_fields: vec!["test.kselftest.script_call", "test.kselftest.start"],
        ..StateOutput::default()
    };
    let Some(test_start) = consume_to_first(src, ctx, &TAG)? else {
        out.keys = vec![
            ("test.kselftest.script_call", false),
            ("test.kselftest.start", false),
        ];
        out.summary = Some("Kselftest not detected");
        return Ok(out);
    };
    let mut over = false;
    while !src.is_eof() && !over {
        over = ctx.over_window(src);
        if !over {
            src.fill()?;
        }
    }
    let base = src.base();
    let text = src.avail();
    let from = test_start - base;
    let text_end = if over {
        complete_end(text, false).max(from)
    } else {
        text.len()
    };
    let test = &text[from..text_end];
    let test_end = RESULT.find_iter(test).last().map(|m| m.end());
    let region = &test[..test_end.unwrap_or(test.len())];
    let mut cursor = 0;
    let mut lines = LineTracker::default();
    while let Some(m) = FAILURE.find(&region[cursor..]) {
        let mut error = LogError::new("linux.kselftest");
        error.error_summary = m.as_str().to_string();
        error.report = region[cursor..cursor + m.end()].to_string();
        error.generate_signature(false);
        error.line = Some(lines.line_at(src, base + from + cursor + m.start()));
        out.errors.push(error);
        cursor += m.end();
    }
    let consumed = from + test_end.unwrap_or(test.len());
    out.keys = vec![
        ("test.kselftest.script_call", true),
        ("test.kselftest.start", test_end.is_some()),
    ];
    out.summary = Some("Kselftest started");
    src.consume(consumed);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_compile() {
        let _ = (&*super::TAG, &*super::RESULT, &*super::FAILURE);
    }
}
