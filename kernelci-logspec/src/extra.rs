//! Findings beyond upstream logspec, reported apart from the compat result so that they never
//! change it: KASAN reports, Oopses, soft lockups, hung tasks, RCU stalls, a login prompt
//! (upstream only knows `/ #`), and a kernel that never started.
//!
//! The scanner reads every line once, as the text streams in; a prefilter finds candidate
//! lines so the cost on ordinary lines is one pass of a literal search.

use crate::patterns::{Lazy, constant, group};
use crate::result::signature;
use serde_json::{Map, Value, json};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// A failure (counts as an error for the `kci` exit code).
    Error,
    /// Worth knowing, not a failure (for example the login prompt was reached).
    Info,
}

impl Severity {
    /// `"error"` or `"info"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Info => "info",
        }
    }
}

/// One finding of a beyond-upstream detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Dotted type, e.g. `linux.kernel.kasan`, `linux.boot.login_prompt`.
    pub finding_type: String,
    /// One-line description, stable across runs (no addresses, PIDs or times).
    pub summary: String,
    /// Error or information.
    pub severity: Severity,
    /// 1-based line of the normalized log, when the finding comes from a line.
    pub line: Option<u64>,
    /// The log line itself (empty for findings about the whole log).
    pub text: String,
    /// SHA-1 over `{"error_summary", "error_type"}`, computed like upstream's signatures.
    pub signature: String,
}

impl Finding {
    fn new(
        finding_type: &str,
        summary: String,
        severity: Severity,
        line: Option<u64>,
        text: &str,
    ) -> Self {
        let signature = signature(&json!({"error_type": finding_type, "error_summary": summary}));
        Finding {
            finding_type: finding_type.to_string(),
            summary,
            severity,
            line,
            text: text.to_string(),
            signature,
        }
    }

    /// The finding as a JSON object.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("type".into(), Value::String(self.finding_type.clone()));
        object.insert("summary".into(), Value::String(self.summary.clone()));
        object.insert(
            "severity".into(),
            Value::String(self.severity.as_str().into()),
        );
        object.insert("line".into(), self.line.map_or(Value::Null, Value::from));
        object.insert("text".into(), Value::String(self.text.clone()));
        object.insert("signature".into(), Value::String(self.signature.clone()));
        Value::Object(object)
    }
}

/// Lines worth a closer look.
static PREFILTER: Lazy = Lazy::new(|| {
    constant(
        r"BUG: KASAN: |Oops|BUG: soft lockup|blocked for more than|stalls? on CPU|login: *(?:\n|$)",
    )
});
static KASAN: Lazy =
    Lazy::new(|| constant(r"BUG: KASAN: (?P<kind>[\w-]+)(?: in (?P<func>[^\s+]+))?"));
static OOPS: Lazy = Lazy::new(|| constant(r"(?P<oops>Oops(?: - [^:\[]+)?: .*?) \[#\d+\]"));
static SOFT_LOCKUP: Lazy = Lazy::new(|| {
    constant(r"BUG: soft lockup - CPU#\d+ stuck for \d+s! \[(?P<comm>[^\]]*?)(?::\d+)?\]")
});
static HUNG_TASK: Lazy = Lazy::new(|| {
    constant(r"INFO: task (?P<comm>.+?):\d+ blocked for more than (?P<secs>\d+) seconds")
});
static RCU_STALL: Lazy = Lazy::new(|| {
    constant(
        r"INFO: (?P<flavor>rcu\w*) (?P<what>self-detected stall on CPU|detected stalls on CPUs/tasks|detected expedited stalls on CPUs/tasks)",
    )
});
static LOGIN: Lazy = Lazy::new(|| constant(r"(?:^|\s)(?P<host>[\w.-]+) login: *$"));
/// Kernel console output: a `[ seconds.micro]` timestamp or the `Linux version` banner.
static KERNEL_OUTPUT: Lazy = Lazy::new(|| constant(r"\[ *\d+\.\d+\] |Linux version \d"));

/// Longest line prefix kept for a line cut by a chunk boundary.
const MAX_PARTIAL: usize = 64 * 1024;

/// Scans text as it streams in.
#[derive(Debug, Default)]
pub(crate) struct ExtraScanner {
    lines_done: u64,
    partial: String,
    kernel_output: bool,
    login_seen: bool,
    findings: Vec<Finding>,
}

impl ExtraScanner {
    /// Scans the next piece of normalized text; `eof` marks the last piece.
    pub(crate) fn feed(&mut self, text: &str, eof: bool) {
        let mut rest = text;
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', rest.as_bytes()) {
                Some(nl) => {
                    let mut line = std::mem::take(&mut self.partial);
                    push_capped(&mut line, &rest[..nl]);
                    self.scan_lines(&line, true);
                    rest = &rest[nl + 1..];
                }
                None => {
                    push_capped(&mut self.partial, rest);
                    if eof {
                        let line = std::mem::take(&mut self.partial);
                        self.scan_lines(&line, false);
                    }
                    return;
                }
            }
        }
        let complete = if eof {
            rest.len()
        } else {
            memchr::memrchr(b'\n', rest.as_bytes()).map_or(0, |i| i + 1)
        };
        self.scan_lines(&rest[..complete], false);
        if !eof {
            push_capped(&mut self.partial, &rest[complete..]);
        }
    }

    /// Scans whole lines (`text` ends at a line end or at the end of the log);
    /// `counts_newline` when `text` is one line whose newline was stripped.
    fn scan_lines(&mut self, text: &str, counts_newline: bool) {
        if !self.kernel_output && KERNEL_OUTPUT.is_match(text) {
            self.kernel_output = true;
        }
        let mut counted_to = 0;
        let mut line_no = self.lines_done;
        let mut last_line_start = None;
        for hit in PREFILTER.find_iter(text) {
            let start =
                memchr::memrchr(b'\n', &text.as_bytes()[..hit.start()]).map_or(0, |i| i + 1);
            if last_line_start == Some(start) {
                continue;
            }
            last_line_start = Some(start);
            let end =
                memchr::memchr(b'\n', &text.as_bytes()[start..]).map_or(text.len(), |i| start + i);
            line_no += crate::normalize::newline_count(&text[counted_to..start]);
            counted_to = start;
            self.classify(&text[start..end], line_no + 1);
        }
        self.lines_done += crate::normalize::newline_count(text) + u64::from(counts_newline);
    }

    fn classify(&mut self, line: &str, line_no: u64) {
        let found = if let Some(c) = KASAN.captures(line) {
            let summary = match c.name("func") {
                Some(func) => format!("KASAN: {} in {}", group(&c, "kind"), func.as_str()),
                None => format!("KASAN: {}", group(&c, "kind")),
            };
            Some(("linux.kernel.kasan", summary, Severity::Error))
        } else if let Some(c) = SOFT_LOCKUP.captures(line) {
            Some((
                "linux.kernel.soft_lockup",
                format!("soft lockup in {}", group(&c, "comm")),
                Severity::Error,
            ))
        } else if let Some(c) = HUNG_TASK.captures(line) {
            let summary = format!(
                "task {} blocked for more than {} seconds",
                group(&c, "comm"),
                group(&c, "secs")
            );
            Some(("linux.kernel.hung_task", summary, Severity::Error))
        } else if let Some(c) = RCU_STALL.captures(line) {
            let summary = format!("{} {}", group(&c, "flavor"), group(&c, "what"));
            Some(("linux.kernel.rcu_stall", summary, Severity::Error))
        } else if let Some(c) = OOPS.captures(line) {
            Some((
                "linux.kernel.oops",
                group(&c, "oops").to_string(),
                Severity::Error,
            ))
        } else if !self.login_seen && LOGIN.is_match(line) {
            self.login_seen = true;
            Some((
                "linux.boot.login_prompt",
                "login prompt reached".to_string(),
                Severity::Info,
            ))
        } else {
            None
        };
        if let Some((kind, summary, severity)) = found {
            self.findings
                .push(Finding::new(kind, summary, severity, Some(line_no), line));
        }
    }

    /// The findings, plus `linux.boot.kernel_not_started` when upstream says the kernel did
    /// not start (or the bootloader never handed over) and no line anywhere in the log looks
    /// like kernel console output.
    pub(crate) fn finish(
        mut self,
        bootloader_done: Option<bool>,
        kernel_started: Option<bool>,
    ) -> Vec<Finding> {
        let upstream_says_not_started =
            bootloader_done == Some(false) || kernel_started == Some(false);
        if upstream_says_not_started && !self.kernel_output {
            let summary = if bootloader_done == Some(true) {
                "kernel never started after the bootloader handover"
            } else {
                "kernel never started: no bootloader handover found"
            };
            let finding = Finding::new(
                "linux.boot.kernel_not_started",
                summary.into(),
                Severity::Error,
                None,
                "",
            );
            self.findings.push(finding);
        }
        self.findings
    }
}

fn push_capped(buf: &mut String, text: &str) {
    let room = MAX_PARTIAL.saturating_sub(buf.len());
    if text.len() <= room {
        buf.push_str(text);
    } else {
        let cut = (0..=room)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        buf.push_str(&text[..cut]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        let _ = (
            &*PREFILTER,
            &*KASAN,
            &*OOPS,
            &*SOFT_LOCKUP,
            &*HUNG_TASK,
            &*RCU_STALL,
        );
        let _ = (&*LOGIN, &*KERNEL_OUTPUT);
    }

    #[test]
    fn chunking_does_not_change_findings() {
        let log = "[    1.0] BUG: KASAN: use-after-free in kfree+0x1/0x2\nfoo\n[    2.0] Oops: 0000 [#1] SMP\nbuildroot login: ";
        let mut whole = ExtraScanner::default();
        whole.feed(log, true);
        let expected = whole.finish(None, None);
        assert_eq!(expected.len(), 3);
        for size in 1..log.len() {
            let mut scanner = ExtraScanner::default();
            let mut pieces = Vec::new();
            let mut rest = log;
            while !rest.is_empty() {
                let cut = (size.min(rest.len())..=rest.len())
                    .find(|&i| rest.is_char_boundary(i))
                    .unwrap_or(rest.len());
                pieces.push(&rest[..cut]);
                rest = &rest[cut..];
            }
            let last = pieces.len() - 1;
            for (i, piece) in pieces.iter().enumerate() {
                scanner.feed(piece, i == last);
            }
            assert_eq!(scanner.finish(None, None), expected, "chunk size {size}");
        }
    }
}
