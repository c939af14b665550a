//! Where the states read text from: a whole string, or a reader decoded chunk by chunk.
//!
//! A state sees `avail()`, the text not yet consumed. With a string, that is the rest of the
//! whole log and `is_eof()` is always true, so every state runs upstream's whole-text
//! algorithm in one go. With a reader, text arrives in chunks; states ask for more only when
//! their answer could still change, and drop (`consume`) what they no longer need, so memory
//! stays bounded by the largest look-ahead a state needs (see `Options::max_window`).

use crate::LogspecError;
use crate::extra::ExtraScanner;
use crate::normalize::{Decoder, char_count, newline_count};
use std::io::Read;

/// A stream of normalized log text.
pub(crate) trait Source {
    /// The text read and not yet consumed.
    fn avail(&self) -> &str;
    /// True when no more text will come.
    fn is_eof(&self) -> bool;
    /// Reads at least one more chunk (or reaches the end of the input).
    fn fill(&mut self) -> Result<(), LogspecError>;
    /// Drops the first `n` bytes of `avail()` (`n` is a character boundary).
    fn consume(&mut self, n: usize);
    /// Absolute byte offset of `avail()[0]` in the normalized log.
    fn base(&self) -> usize;
    /// Code points consumed so far.
    fn consumed_chars(&self) -> u64;
    /// Newlines consumed so far.
    fn consumed_lines(&self) -> u64;
}

/// End of the complete lines in `text` (just after the last `\n`), or all of it at EOF.
pub(crate) fn complete_end(text: &str, eof: bool) -> usize {
    if eof {
        text.len()
    } else {
        memchr::memrchr(b'\n', text.as_bytes()).map_or(0, |i| i + 1)
    }
}

/// `n` clamped to `text` and moved back to a character boundary.
pub(crate) fn floor_boundary(text: &str, n: usize) -> usize {
    let mut n = n.min(text.len());
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// Reads until `avail()` holds at least `len` bytes or the input ends.
pub(crate) fn fill_to(src: &mut dyn Source, len: usize) -> Result<(), LogspecError> {
    while src.avail().len() < len && !src.is_eof() {
        src.fill()?;
    }
    Ok(())
}

/// A whole log held as one string.
pub(crate) struct StrSource<'a> {
    text: &'a str,
    pos: usize,
    chars: u64,
    lines: u64,
}

impl<'a> StrSource<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        StrSource {
            text,
            pos: 0,
            chars: 0,
            lines: 0,
        }
    }
}

impl Source for StrSource<'_> {
    fn avail(&self) -> &str {
        &self.text[self.pos..]
    }

    fn is_eof(&self) -> bool {
        true
    }

    fn fill(&mut self) -> Result<(), LogspecError> {
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        let n = floor_boundary(self.avail(), n);
        let gone = &self.text[self.pos..self.pos + n];
        self.chars += char_count(gone);
        self.lines += newline_count(gone);
        self.pos += n;
    }

    fn base(&self) -> usize {
        self.pos
    }

    fn consumed_chars(&self) -> u64 {
        self.chars
    }

    fn consumed_lines(&self) -> u64 {
        self.lines
    }
}

/// A log read from a `Read`, decoded (lossy UTF-8, universal newlines) chunk by chunk.
pub(crate) struct ReaderSource<R> {
    reader: R,
    chunk: Vec<u8>,
    decoder: Decoder,
    buf: String,
    start: usize,
    eof: bool,
    base: usize,
    chars: u64,
    lines: u64,
    /// Sees every piece of text once, as it is read.
    pub(crate) scanner: Option<ExtraScanner>,
}

/// Below this many consumed bytes the buffer is not compacted.
const COMPACT_MIN: usize = 1 << 20;

impl<R: Read> ReaderSource<R> {
    pub(crate) fn new(reader: R, chunk_size: usize, scanner: Option<ExtraScanner>) -> Self {
        ReaderSource {
            reader,
            chunk: vec![0; chunk_size.max(1)],
            decoder: Decoder::default(),
            buf: String::new(),
            start: 0,
            eof: false,
            base: 0,
            chars: 0,
            lines: 0,
            scanner,
        }
    }

    /// Reads and drops everything left (so the scanner sees the whole log).
    pub(crate) fn drain(&mut self) -> Result<(), LogspecError> {
        loop {
            let n = self.avail().len();
            self.consume(n);
            if self.eof {
                return Ok(());
            }
            self.fill()?;
        }
    }
}

impl<R: Read> Source for ReaderSource<R> {
    fn avail(&self) -> &str {
        &self.buf[self.start..]
    }

    fn is_eof(&self) -> bool {
        self.eof
    }

    fn fill(&mut self) -> Result<(), LogspecError> {
        if self.eof {
            return Ok(());
        }
        let old_len = self.buf.len();
        let read = loop {
            match self.reader.read(&mut self.chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if read == 0 {
            self.eof = true;
            self.decoder.finish(&mut self.buf);
        } else {
            self.decoder.push(&self.chunk[..read], &mut self.buf);
        }
        if let Some(scanner) = self.scanner.as_mut() {
            scanner.feed(&self.buf[old_len..], self.eof);
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        let n = floor_boundary(self.avail(), n);
        let gone = &self.buf[self.start..self.start + n];
        self.chars += char_count(gone);
        self.lines += newline_count(gone);
        self.start += n;
        self.base += n;
        if self.start >= COMPACT_MIN && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    fn base(&self) -> usize {
        self.base
    }

    fn consumed_chars(&self) -> u64 {
        self.chars
    }

    fn consumed_lines(&self) -> u64 {
        self.lines
    }
}
