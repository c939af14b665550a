//! Remembered searches. A report without its end marker makes upstream search the whole
//! rest of the log (for the end marker, the hardware name, the modules list, ...), once per
//! report: a flood of such reports is quadratic there. The first match at or after a
//! position does not change while the position stays before it, so one search answers all
//! the reports in between.

use regex::Regex;

/// The last search of each pattern over each haystack end, in absolute offsets of the log.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    entries: Vec<Entry>,
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    used: u64,
    key: usize,
    from: usize,
    hay_end: usize,
    found: Option<(usize, usize)>,
}

/// Searches remembered at once (a few patterns, each over a few haystack ends).
const MAX_ENTRIES: usize = 32;

/// Key of the "end of a run of timestamped lines" search (not a regex).
pub(crate) const TIMESTAMPED_RUN: usize = 1;

impl Memo {
    /// The first match of `re` in `text[pos..]` (offsets in `text`), where `text` starts at
    /// absolute offset `abs`. `re` must have no look-behind (`^`, `\b`).
    pub(crate) fn find(
        &mut self,
        re: &Regex,
        text: &str,
        abs: usize,
        pos: usize,
    ) -> Option<(usize, usize)> {
        let key = std::ptr::from_ref(re) as usize;
        self.find_with(key, text, abs, pos, |hay| {
            re.find(hay).map(|m| (m.start(), m.end()))
        })
    }

    /// Like [`Memo::find`] with any search that returns the first match in a haystack.
    pub(crate) fn find_with(
        &mut self,
        key: usize,
        text: &str,
        abs: usize,
        pos: usize,
        search: impl FnOnce(&str) -> Option<(usize, usize)>,
    ) -> Option<(usize, usize)> {
        let (from, hay_end) = (abs + pos, abs + text.len());
        if let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.key == key && e.hay_end == hay_end)
            && entry.from <= from
        {
            match entry.found {
                None => return None,
                Some((s, e)) if s >= from => return Some((s - abs, e - abs)),
                Some(_) => {}
            }
        }
        let found = search(&text[pos..]).map(|(s, e)| (from + s, from + e));
        let entry = Entry {
            used: self.clock,
            key,
            from,
            hay_end,
            found,
        };
        match self
            .entries
            .iter_mut()
            .find(|e| e.key == key && e.hay_end == hay_end)
        {
            Some(slot) => *slot = entry,
            None => {
                if self.entries.len() >= MAX_ENTRIES
                    && let Some(oldest) =
                        self.entries.iter().enumerate().min_by_key(|(_, e)| e.used)
                {
                    let oldest = oldest.0;
                    self.entries.swap_remove(oldest);
                }
                self.entries.push(entry);
            }
        }
        found.map(|(s, e)| (s - abs, e - abs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_only_what_is_still_true() {
        let re = Regex::new("x").expect("valid");
        let text = "a x b x c";
        let mut memo = Memo::default();
        assert_eq!(memo.find(&re, text, 100, 0), Some((2, 3)));
        assert_eq!(memo.find(&re, text, 100, 1), Some((2, 3)));
        assert_eq!(memo.find(&re, text, 100, 3), Some((6, 7)));
        assert_eq!(memo.find(&re, text, 100, 7), None);
        assert_eq!(memo.find(&re, text, 100, 8), None);
        assert_eq!(memo.find(&re, &text[2..], 102, 0), Some((0, 1)));
    }
}
