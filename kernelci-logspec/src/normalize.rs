//! Input text as upstream sees it: UTF-8 with Python's universal newlines.
//!
//! Upstream opens the log in text mode, so every `\r\n` and every lone `\r` becomes `\n`.
//! Upstream decodes strictly and raises on invalid UTF-8; we decode lossily instead (each
//! maximal invalid sequence becomes one U+FFFD, exactly like `String::from_utf8_lossy`), so
//! any byte sequence gives a result.

use std::borrow::Cow;

/// Returns `text` with `\r\n` and lone `\r` turned into `\n` (borrowed when there is no `\r`).
pub fn normalize_newlines(text: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\r', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut decoder = Decoder::default();
    decoder.emit(text, &mut out);
    Cow::Owned(out)
}

/// Decodes bytes that arrive in chunks into normalized text. A multi-byte character or a
/// `\r\n` split across two chunks is handled exactly as if the bytes came in one piece.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// The start of a UTF-8 sequence cut by the end of the previous chunk (at most 3 bytes).
    pending: Vec<u8>,
    /// The previous chunk ended with `\r` (already written as `\n`): skip a leading `\n`.
    last_cr: bool,
}

impl Decoder {
    /// Decodes one chunk, appending the normalized text to `out`.
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut String) {
        if self.pending.is_empty() {
            self.decode(bytes, false, out);
        } else {
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(bytes);
            self.decode(&joined, false, out);
        }
    }

    /// Flushes what is left at the end of the input (a cut sequence becomes U+FFFD).
    pub(crate) fn finish(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.decode(&pending, true, out);
        }
    }

    fn decode(&mut self, mut data: &[u8], at_end: bool, out: &mut String) {
        loop {
            match std::str::from_utf8(data) {
                Ok(text) => {
                    self.emit(text, out);
                    return;
                }
                Err(err) => {
                    let (valid, rest) = data.split_at(err.valid_up_to());
                    if let Ok(text) = std::str::from_utf8(valid) {
                        self.emit(text, out);
                    }
                    match err.error_len() {
                        Some(len) => {
                            self.emit("\u{FFFD}", out);
                            data = rest.get(len..).unwrap_or_default();
                        }
                        None if at_end => {
                            self.emit("\u{FFFD}", out);
                            return;
                        }
                        None => {
                            self.pending = rest.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn emit(&mut self, text: &str, out: &mut String) {
        let mut rest = text;
        if self.last_cr && !rest.is_empty() {
            self.last_cr = false;
            if let Some(after) = rest.strip_prefix('\n') {
                rest = after;
            }
        }
        while let Some(i) = memchr::memchr(b'\r', rest.as_bytes()) {
            out.push_str(&rest[..i]);
            out.push('\n');
            let after = &rest[i + 1..];
            if after.is_empty() {
                self.last_cr = true;
                return;
            }
            rest = after.strip_prefix('\n').unwrap_or(after);
        }
        out.push_str(rest);
    }
}

/// Number of Unicode code points in `text` (upstream offsets count code points): the bytes
/// that are not UTF-8 continuation bytes, counted eight at a time.
pub(crate) fn char_count(text: &str) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytes = text.as_bytes();
    let mut words = bytes.chunks_exact(8);
    let mut continuation = 0u64;
    for word in &mut words {
        let w = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        // bit 7 set and bit 6 clear: 10xxxxxx
        continuation += u64::from((w & !(w << 1) & HIGH).count_ones());
    }
    continuation += words
        .remainder()
        .iter()
        .filter(|&&b| (b & 0xC0) == 0x80)
        .count() as u64;
    bytes.len() as u64 - continuation
}

/// Number of `\n` in `text`, counted eight bytes at a time.
pub(crate) fn newline_count(text: &str) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const NEWLINES: u64 = 0x0A0A_0A0A_0A0A_0A0A;
    let bytes = text.as_bytes();
    let mut words = bytes.chunks_exact(8);
    let mut count = 0u64;
    for word in &mut words {
        let w = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        let x = w ^ NEWLINES;
        // A byte is zero exactly when neither its low 7 bits nor its high bit are set.
        let nonzero = ((x & LOW7) + LOW7) | x;
        count += u64::from((!nonzero & !LOW7).count_ones());
    }
    count += words.remainder().iter().filter(|&&b| b == b'\n').count() as u64;
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(bytes: &[u8], size: usize) -> String {
        let mut out = String::new();
        let mut decoder = Decoder::default();
        for chunk in bytes.chunks(size.max(1)) {
            decoder.push(chunk, &mut out);
        }
        decoder.finish(&mut out);
        out
    }

    #[test]
    fn counters_match_the_obvious_ones() {
        let samples = [
            "",
            "a",
            "\n\n\n",
            "é\u{1F600}x\n\u{ff}\u{800}\n abc \n\u{10FFFF}",
            "0123456789\n\n\n\n\n\n\n\n\n",
        ];
        for s in samples {
            for start in 0..s.len() {
                let Some(t) = s.get(start..) else { continue };
                assert_eq!(char_count(t), t.chars().count() as u64, "{t:?}");
                assert_eq!(newline_count(t), t.matches('\n').count() as u64, "{t:?}");
            }
        }
    }

    #[test]
    fn universal_newlines() {
        assert_eq!(normalize_newlines("a\r\nb\rc\n\r\rd\r"), "a\nb\nc\n\n\nd\n");
        assert!(matches!(normalize_newlines("plain\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn chunks_split_anywhere_give_the_same_text() {
        let bytes = "x\r\ny\u{e9}\u{1F600}\r\r\nz\r".as_bytes();
        let whole = chunked(bytes, bytes.len());
        for size in 1..bytes.len() {
            assert_eq!(chunked(bytes, size), whole, "chunk size {size}");
        }
        assert_eq!(whole, "x\ny\u{e9}\u{1F600}\n\nz\n");
    }

    #[test]
    fn invalid_utf8_is_replaced_like_from_utf8_lossy() {
        let bytes = b"a\xff\xe2\x82b\xf0\x9f\x98\r\n\xc3";
        let lossy = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
        for size in 1..bytes.len() {
            assert_eq!(chunked(bytes, size), lossy, "chunk size {size}");
        }
    }
}
