//! Terminal output: colored statuses on a terminal, plain text when piped (or with
//! `NO_COLOR`), and aligned tables.

use std::io::IsTerminal;

/// Colors statuses when the stream is a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    color: bool,
}

impl Paint {
    /// For standard output.
    pub fn stdout() -> Paint {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Paint { color }
    }

    fn wrap(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Green.
    pub fn pass(&self, text: &str) -> String {
        self.wrap("32", text)
    }

    /// Red.
    pub fn fail(&self, text: &str) -> String {
        self.wrap("31", text)
    }

    /// Yellow.
    pub fn other(&self, text: &str) -> String {
        self.wrap("33", text)
    }
}

/// A spinner on standard error while a request runs: only on a terminal, and only once the
/// request has taken 300 ms. Stopped (and its line cleared) when dropped.
pub struct Spinner {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    /// Starts one labelled `label`.
    pub fn start(label: &str) -> Spinner {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let stop = stop.clone();
            let label = label.to_string();
            std::thread::spawn(move || {
                let frames = ['|', '/', '-', '\\'];
                let mut shown = false;
                for i in 0usize.. {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if i >= 2 {
                        eprint!("\r{} {label}", frames[i % frames.len()]);
                        shown = true;
                    }
                }
                if shown {
                    eprint!("\r\x1b[2K");
                }
            })
        });
        Spinner { stop, thread }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Renders rows as columns padded to the widest cell (by characters).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let text = table(
            &["id", "name"],
            &[
                vec!["1".into(), "kbuild-gcc".into()],
                vec!["12345".into(), "é".into()],
            ],
        );
        assert_eq!(text, "id     name\n1      kbuild-gcc\n12345  é\n");
    }
}
