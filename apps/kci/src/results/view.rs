//! Tables with colored cells (aligned on the visible text) and status counting.

use serde_json::{Value, json};

use crate::output::{Paint, table};

/// How a cell is colored on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// No color.
    Plain,
    /// Green.
    Pass,
    /// Red.
    Fail,
    /// Yellow.
    Other,
}

/// A cell: its text and tone.
pub type Cell = (String, Tone);

/// A plain cell.
pub fn plain(s: impl Into<String>) -> Cell {
    (s.into(), Tone::Plain)
}

/// A status cell: PASS green, FAIL red, anything else yellow.
pub fn status(s: &str) -> Cell {
    let tone = match s {
        "PASS" => Tone::Pass,
        "FAIL" => Tone::Fail,
        _ => Tone::Other,
    };
    (s.to_string(), tone)
}

/// A count cell: colored like its status when not zero.
pub fn count(n: u64, tone: Tone) -> Cell {
    (n.to_string(), if n == 0 { Tone::Plain } else { tone })
}

/// `output::table` on the texts, then the toned cells painted in place (so colors do not
/// upset the alignment).
pub fn render(paint: &Paint, header: &[&str], rows: &[Vec<Cell>]) -> String {
    let texts: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| c.0.clone()).collect())
        .collect();
    let plain_table = table(header, &texts);
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &texts {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut lines = plain_table.lines();
    let mut out = String::new();
    if let Some(h) = lines.next() {
        out.push_str(h);
        out.push('\n');
    }
    for row in rows {
        let _ = lines.next();
        let mut line = String::new();
        for (i, (text, tone)) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(&match tone {
                Tone::Plain => text.clone(),
                Tone::Pass => paint.pass(text),
                Tone::Fail => paint.fail(text),
                Tone::Other => paint.other(text),
            });
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(text.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// (pass, fail, inconclusive) of a status-count object, whatever the case of its keys
/// (`PASS`, `pass`, `pass_count`).
pub fn triple(counts: &Value) -> (u64, u64, u64) {
    let mut t = (0, 0, 0);
    if let Some(m) = counts.as_object() {
        for (k, v) in m {
            let n = v.as_u64().unwrap_or(0);
            match k.to_ascii_lowercase().trim_end_matches("_count") {
                "pass" => t.0 += n,
                "fail" => t.1 += n,
                "error" | "skip" | "miss" | "done" | "null" | "inconclusive" => t.2 += n,
                _ => {}
            }
        }
    }
    t
}

/// `{"pass": p, "fail": f, "inconclusive": i}`.
pub fn triple_json(t: (u64, u64, u64)) -> Value {
    json!({"pass": t.0, "fail": t.1, "inconclusive": t.2})
}

/// `p/f/i` for a table cell.
pub fn triple_text(t: (u64, u64, u64)) -> String {
    format!("{}/{}/{}", t.0, t.1, t.2)
}

/// The three count cells of a summary row.
pub fn triple_cells(t: (u64, u64, u64)) -> [Cell; 3] {
    [
        count(t.0, Tone::Pass),
        count(t.1, Tone::Fail),
        count(t.2, Tone::Other),
    ]
}

/// Writes `text` to standard output; a closed pipe (`kci ... | head`) ends kci quietly.
pub fn write_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("kci: cannot write the output: {e}");
        std::process::exit(2);
    }
}

/// `println!` through [`write_out`].
macro_rules! outln {
    () => { $crate::results::view::write_out("\n") };
    ($($arg:tt)*) => { $crate::results::view::write_out(&format!("{}\n", format!($($arg)*))) };
}
pub(crate) use outln;

/// Prints `value` as JSON on one line.
pub fn print_json(value: &Value) {
    write_out(&format!("{value}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_layout_as_output_table() {
        let rows = vec![
            vec![plain("a"), status("PASS"), plain("x")],
            vec![plain("bbbb"), status("FAIL"), plain("")],
        ];
        let paint = Paint::stdout();
        let texts: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|c| c.0.clone()).collect())
            .collect();
        if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            assert_eq!(
                render(&paint, &["id", "status", "n"], &rows),
                table(&["id", "status", "n"], &texts)
            );
        }
        assert_eq!(
            triple(&json!({"PASS": 2, "ERROR": 1, "null": 1})),
            (2, 0, 2)
        );
        assert_eq!(
            triple(&json!({"pass_count": 1, "fail_count": 3})),
            (1, 3, 0)
        );
    }
}
