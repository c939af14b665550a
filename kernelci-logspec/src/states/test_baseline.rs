//! `test_baseline.test_baseline`: the KernelCI baseline test after the prompt. It starts at
//! `/opt/kernelci/dmesg.sh` and ends at the end of its second occurrence (or of the log);
//! every `kern  :<message>` line in between is a `test.baseline.dmesg` error.

use super::{Ctx, LineTracker, StateOutput, consume_to_first};
use crate::patterns::{Lazy, constant, group, span};
use crate::pycompat::pattern_from_text;
use crate::source::{Source, complete_end};
use crate::{LogError, LogspecError};

static TAG: Lazy = Lazy::new(|| constant(&pattern_from_text("/opt/kernelci/dmesg.sh")));
static DMESG: Lazy = Lazy::new(|| constant(r"kern  :(?P<message>.*)"));

pub(crate) fn run(src: &mut dyn Source, ctx: &mut Ctx) -> Result<StateOutput, LogspecError> {
    let mut out = StateOutput {
        signature_fields: vec!["test.baseline.start"],
        ..StateOutput::default()
    };
    let Some(test_start) = consume_to_first(src, ctx, &TAG)? else {
        out.keys.push(("test.baseline.start", false));
        out.summary = Some("Baseline test not detected");
        return Ok(out);
    };
    let mut test_end: Option<usize> = None;
    let mut tag_scanned = test_start;
    let mut cursor = test_start;
    let mut lines = LineTracker::default();
    loop {
        let over = ctx.over_window(src);
        let base = src.base();
        let eof = src.is_eof();
        let text = src.avail();
        let lines_end = if over {
            text.len()
        } else {
            complete_end(text, eof)
        };
        if test_end.is_none() && tag_scanned - base <= lines_end {
            let from = tag_scanned - base;
            match TAG.find(&text[from..lines_end]) {
                Some(m) => test_end = Some(base + from + m.end()),
                None => tag_scanned = base + lines_end,
            }
        }
        let (region_end, is_final) = match test_end {
            Some(e) => (e - base, true),
            None => (lines_end.max(cursor - base), eof || over),
        };
        let from = cursor - base;
        match DMESG.captures(&text[from..region_end]) {
            Some(c) => {
                let (start, end) = span(&c);
                let mut error = LogError::new("test.baseline.dmesg");
                error.error_summary = group(&c, "message").to_string();
                error.generate_signature(false);
                error.line = Some(lines.line_at(src, base + from + start));
                out.errors.push(error);
                cursor = base + from + end;
            }
            None if is_final && (test_end.is_some() || eof) => break,
            None => {
                cursor = base + region_end;
                src.consume(cursor.min(tag_scanned) - base);
                src.fill()?;
            }
        }
    }
    let end = test_end.unwrap_or(src.base() + src.avail().len());
    src.consume(end - src.base());
    out.keys.push(("test.baseline.start", true));
    out.summary = Some("Baseline test started");
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_compile() {
        let _ = (&*super::TAG, &*super::DMESG);
    }
}
