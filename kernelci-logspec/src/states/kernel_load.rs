//! `linux_kernel.kernel_load`: the kernel boot, up to the first `/ #` shell prompt.
//!
//! Errors are searched only before the prompt (or in the whole rest of the log when there
//! is none). `linux.boot.kernel_started` is true with a prompt; without one, when the line
//! after the first newline starts with a kernel timestamp, or `<ts> Linux version` appears
//! anywhere. Upstream raises on a text without any newline; we answer "not started".

use super::{Ctx, LineTracker, StateOutput};
use crate::LogspecError;
use crate::kernel_errors::find_error_report;
use crate::kernel_errors::memo::Memo;
use crate::patterns::{Lazy, Need, TS, constant};
use crate::source::{Source, complete_end, floor_boundary};

const PROMPT: &[u8] = b"/ #";
static TS_AT_START: Lazy = Lazy::new(|| constant(&format!("^{TS}")));
static LINUX_VERSION: Lazy = Lazy::new(|| constant(&format!("{TS} Linux version")));

pub(crate) fn run(src: &mut dyn Source, ctx: &mut Ctx) -> Result<StateOutput, LogspecError> {
    let start = src.base();
    let mut prompt: Option<usize> = None;
    let mut prompt_scanned = start;
    let mut first_line_started: Option<bool> = None;
    let mut linux_version = false;
    let mut version_scanned = start;
    let mut cursor = start;
    let mut errors = Vec::new();
    let mut lines = LineTracker::default();
    let mut memo = Memo::default();
    loop {
        let over = ctx.over_window(src);
        let base = src.base();
        let eof = src.is_eof();
        let text = src.avail();
        if prompt.is_none() {
            let from = (prompt_scanned - base).min(text.len());
            match memchr::memmem::find(&text.as_bytes()[from..], PROMPT) {
                Some(i) => prompt = Some(base + from + i),
                None => {
                    let rescan = text.len().saturating_sub(PROMPT.len() - 1).max(from);
                    prompt_scanned = base + floor_boundary(text, rescan);
                }
            }
        }
        let lines_end = if over {
            text.len()
        } else {
            complete_end(text, eof)
        };
        if first_line_started.is_none() {
            first_line_started = first_line_decision(&text[start - base..], eof || over);
        }
        if !linux_version && prompt.is_none() && version_scanned - base < lines_end {
            linux_version = LINUX_VERSION.is_match(&text[version_scanned - base..lines_end]);
            version_scanned = base + lines_end;
        }
        let (region_end, is_final) = match prompt {
            Some(p) => (p - base, true),
            None => (lines_end, eof || over),
        };
        let from = (cursor - base).min(region_end);
        match find_error_report(
            &text[from..region_end],
            base + from,
            is_final,
            true,
            &mut memo,
        ) {
            Need::More => ctx.read_more(src, from)?,
            Need::Done(Some(found)) => {
                if let Some(mut error) = found.error {
                    error.line = Some(lines.line_at(src, base + from + found.start));
                    errors.push(error);
                }
                cursor = base + from + found.end;
            }
            Need::Done(None) if is_final && (prompt.is_some() || eof) => break,
            Need::Done(None) => {
                cursor = base + region_end;
                let mut keep = cursor.min(prompt_scanned);
                if !linux_version {
                    keep = keep.min(version_scanned);
                }
                if first_line_started.is_none() {
                    keep = keep.min(start);
                }
                src.consume(keep - base);
                src.fill()?;
            }
        }
    }
    let end = match prompt {
        Some(p) => p + PROMPT.len(),
        None => src.base() + src.avail().len(),
    };
    src.consume(end - src.base());
    let found = prompt.is_some();
    let started = found || first_line_started.unwrap_or(false) || linux_version;
    Ok(StateOutput {
        keys: vec![
            ("linux.boot.prompt", found),
            ("linux.boot.kernel_started", started),
        ],
        errors,
        signature_fields: vec!["linux.boot.prompt", "linux.boot.kernel_started"],
        summary: Some(match (found, started) {
            (true, _) => "Linux boot prompt found",
            (false, true) => "Linux boot prompt not found",
            (false, false) => "Kernel didn't start",
        }),
        match_end: None,
    })
}

/// Whether the line after the first newline starts with a kernel timestamp; `None` while
/// the text seen so far cannot tell.
fn first_line_decision(text: &str, is_final: bool) -> Option<bool> {
    let Some(nl) = memchr::memchr(b'\n', text.as_bytes()) else {
        return is_final.then_some(false);
    };
    let next = &text[nl + 1..];
    if memchr::memchr(b'\n', next.as_bytes()).is_none() && !is_final {
        return None;
    }
    Some(TS_AT_START.is_match(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        let _ = (&*TS_AT_START, &*LINUX_VERSION);
    }

    #[test]
    fn first_line() {
        assert_eq!(
            first_line_decision(" ...\n[    0.0] Booting", true),
            Some(true)
        );
        assert_eq!(
            first_line_decision(" ...\n[Enter `^Ec?' for help]\n", true),
            Some(false)
        );
        assert_eq!(first_line_decision(" ...\n[    0.0] Boo", false), None);
        assert_eq!(first_line_decision("no newline", true), Some(false));
    }
}
