//! `kbuild.kbuild_start`: the first `make...: *** ...` line of a build log, classified and
//! parsed with the log before it.
//!
//! This state buffers the log up to that line (the classification looks back over all of
//! it). Past the reader's window limit, the oldest part is dropped.

use super::{Ctx, LineTracker, StateOutput};
use crate::LogspecError;
use crate::kbuild_errors::{
    LINKER_LINE, MAKE_ERROR, classify_and_parse, linker_script_and_target, script_and_target,
    unknown,
};
use crate::normalize::char_count;
use crate::patterns::group;
use crate::source::{Source, complete_end};

pub(crate) fn run(src: &mut dyn Source, ctx: &mut Ctx) -> Result<StateOutput, LogspecError> {
    let mut out = StateOutput::default();
    let mut scanned = 0;
    let (make_start, make_end, error_str) = loop {
        let over = ctx.over_window(src);
        let text = src.avail();
        let end = if over {
            text.len()
        } else {
            complete_end(text, src.is_eof())
        };
        let from = scanned.min(end);
        if let Some(c) = MAKE_ERROR.captures(&text[from..end]) {
            let whole = c.get(0).map_or(0..0, |m| m.range());
            break (
                from + whole.start,
                from + whole.end,
                group(&c, "error_str").to_string(),
            );
        }
        if src.is_eof() {
            src.consume(text.len());
            return Ok(out);
        }
        scanned = end;
        if over {
            let drop = keep_recent_lines(text, ctx.max_window / 2);
            src.consume(drop);
            scanned -= drop;
        }
        src.fill()?;
    };
    let line = LineTracker::default().line_at(src, src.base() + make_start);
    out.match_end = Some(src.consumed_chars() + char_count(&src.avail()[..make_end]));
    let mut error = match script_and_target(&error_str) {
        Some((script, target)) if !script.is_empty() || !target.is_empty() => {
            if target.ends_with("vmlinux") {
                let (linker, before) = first_linker_line(src, ctx, make_start)?;
                let (script, target) = linker.unwrap_or((script, target));
                match before {
                    Some(before) => classify_and_parse(&script, &target, &before),
                    None => classify_and_parse(&script, &target, &src.avail()[..make_start]),
                }
            } else {
                classify_and_parse(&script, &target, &src.avail()[..make_start])
            }
        }
        _ => unknown(&error_str),
    };
    error.line = Some(line);
    out.errors.push(error);
    Ok(out)
}

/// What [`first_linker_line`] found: the linker's (script, target), and a copy of the log
/// before the make line when the search had to read past the text in memory.
type LinkerSearch = (Option<(String, String)>, Option<String>);

/// The first linker line of the whole log (before or after the make line), for a failed
/// `vmlinux` target. When the rest of the log must be read to find it, the text before the
/// make line is returned as a copy, since the source moves on.
fn first_linker_line(
    src: &mut dyn Source,
    ctx: &mut Ctx,
    make_start: usize,
) -> Result<LinkerSearch, LogspecError> {
    let text = src.avail();
    let end = complete_end(text, src.is_eof()).max(make_start);
    if let Some(c) = LINKER_LINE.captures(&text[..end]) {
        return Ok((Some(linker_script_and_target(&c)), None));
    }
    if src.is_eof() {
        return Ok((None, None));
    }
    let before = text[..make_start].to_string();
    src.consume(end);
    loop {
        src.fill()?;
        let over = ctx.over_window(src);
        let text = src.avail();
        let end = if over {
            text.len()
        } else {
            complete_end(text, src.is_eof())
        };
        if let Some(c) = LINKER_LINE.captures(&text[..end]) {
            return Ok((Some(linker_script_and_target(&c)), Some(before)));
        }
        if src.is_eof() {
            return Ok((None, Some(before)));
        }
        src.consume(end);
    }
}

/// Offset after which at most `keep` bytes of whole lines remain.
fn keep_recent_lines(text: &str, keep: usize) -> usize {
    let cut = text.len().saturating_sub(keep);
    let cut = (cut..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    memchr::memchr(b'\n', &text.as_bytes()[cut..]).map_or(cut, |i| cut + i + 1)
}
