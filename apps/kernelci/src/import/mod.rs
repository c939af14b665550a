//! `kernelci admin import-maestro` and `kernelci admin import-kcidb`: migration from an
//! upstream deployment (MongoDB exports of the Maestro API, an upstream KCIDB PostgreSQL
//! database or KCIDB JSON files) into our databases.
//!
//! Both are idempotent and resumable: ids are kept, so a second run finds every object
//! already there (unchanged, or updated when the source changed since) and writes nothing
//! twice; work is committed batch by batch, so an interrupted run loses at most one batch
//! and the next run continues. See `maestro.rs` and `kcidb.rs` for the details.

pub mod kcidb;
pub mod maestro;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A counter line on stderr: rewritten in place on a terminal, one line every few seconds
/// otherwise (logs), and a last line when done.
pub struct Progress {
    what: String,
    count: u64,
    tty: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    /// Count `what` (e.g. `nodes`).
    pub fn new(what: &str) -> Progress {
        let now = Instant::now();
        Progress {
            what: what.to_string(),
            count: 0,
            tty: std::io::stderr().is_terminal(),
            started: now,
            last: now,
        }
    }

    /// Add `n` and show the line if it is time to.
    pub fn add(&mut self, n: u64) {
        self.count += n;
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.show(false);
        }
    }

    /// The last line.
    pub fn finish(&mut self) {
        if self.count > 0 || self.tty {
            self.show(true);
        }
    }

    fn show(&self, last: bool) {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.count as f64 / secs
        } else {
            0.0
        };
        let line = format!("{} {}: {:.1}s, {:.0}/s", self.count, self.what, secs, rate);
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}
