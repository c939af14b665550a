//! JSON pointers (RFC 6901) built lazily while walking a document.
//!
//! The validator keeps a chain of [`Loc`] values on the stack, one per level; a pointer string
//! is only rendered when a problem is reported, so valid documents allocate nothing for paths.

use std::fmt::Write;

/// A location in a JSON document: the root, or a key/index below a parent location.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Loc<'a> {
    /// The document itself.
    Root,
    /// An object member.
    Key(&'a Loc<'a>, &'a str),
    /// An array element.
    Index(&'a Loc<'a>, usize),
}

impl<'a> Loc<'a> {
    /// The location of member `key` of the object here.
    pub(crate) fn key(&'a self, key: &'a str) -> Loc<'a> {
        Loc::Key(self, key)
    }

    /// The location of element `index` of the array here.
    pub(crate) fn index(&'a self, index: usize) -> Loc<'a> {
        Loc::Index(self, index)
    }

    /// The JSON pointer of this location (`""` for the root).
    pub(crate) fn pointer(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Loc::Root => {}
            Loc::Key(parent, key) => {
                parent.write_to(out);
                out.push('/');
                push_escaped(out, key);
            }
            Loc::Index(parent, index) => {
                parent.write_to(out);
                // Writing to a String cannot fail.
                let _ = write!(out, "/{index}");
            }
        }
    }
}

/// Appends `segment` with `~` and `/` escaped as RFC 6901 requires.
pub(crate) fn push_escaped(out: &mut String, segment: &str) {
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// Joins a pointer and one more segment.
pub(crate) fn join(pointer: &str, segment: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + segment.len() + 1);
    out.push_str(pointer);
    out.push('/');
    push_escaped(&mut out, segment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let root = Loc::Root;
        assert_eq!(root.pointer(), "");
        let builds = root.key("builds");
        let five = builds.index(5);
        let field = five.key("start_time");
        assert_eq!(field.pointer(), "/builds/5/start_time");
        let misc = five.key("misc");
        let odd = misc.key("a/b~c");
        assert_eq!(odd.pointer(), "/builds/5/misc/a~1b~0c");
        assert_eq!(join("/tests/0", "x/y"), "/tests/0/x~1y");
    }
}
