//! Large submissions read one object at a time.
//!
//! [`crate::load`] holds the whole document, and a JSON tree of it, in memory. For a large
//! submission (hundreds of MiB), [`read_objects`] instead walks the text from an
//! `io::Read`: each top-level object is parsed (with the strict parser's rules), validated
//! (with [`crate::validate()`]'s rules and pointers) and converted to its type, then handed
//! to a callback and dropped. Memory stays at the largest single object plus the problems
//! found (at most [`StreamOptions::max_problems`]).
//!
//! Which path a document takes:
//! * up to [`StreamOptions::in_memory_up_to`] bytes: read whole and [`crate::load`]ed, so
//!   verdicts and explanations are exactly the in-memory ones;
//! * larger, v5.x: streamed. The verdict is the same as [`crate::load`]'s; explanations can
//!   differ: problems come in document order, a syntax error stops the walk where it is (the
//!   schema problems found before it are dropped: the document is not JSON), invalid UTF-8
//!   is a syntax error with a line and column, and past `max_problems` the list is cut with
//!   [`Reason::TooManyProblems`]. When `version` is not the first key, a first pass finds it;
//! * larger, v3.0 or v4.x: read whole (their upgrade to v5.3 needs the whole document);
//!   such legacy documents are small in practice.
//!
//! Objects are handed over as they are read. A streamed document found invalid part-way
//! has had its earlier objects handed over already: callers that must not act on part of
//! an invalid document (the ingester) check it first with a callback that does nothing.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{JsonType, ParseError, Problem, Reason, Rejection};
use crate::parse::{StrictValue, syntax};
use crate::pointer::Loc;
use crate::schema::{ObjectType, top_level_lists};
use crate::types::{Build, Checkout, Incident, Issue, Submission, Test};
use crate::validate::Validator;
use crate::version::{Declared, SchemaVersion, declared_version};

/// How [`read_objects`] reads.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Documents up to this many bytes are read whole (exact in-memory explanations).
    pub in_memory_up_to: u64,
    /// Problems listed before the list is cut (streamed documents only).
    pub max_problems: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            in_memory_up_to: 16 << 20,
            max_problems: 1000,
        }
    }
}

/// Why [`read_objects`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E> {
    /// Reading failed.
    #[error("cannot read the submission: {0}")]
    Io(#[from] io::Error),
    /// The document is not a valid submission.
    #[error("{0}")]
    Rejected(Rejection),
    /// The callback returned an error.
    #[error("stopped: {0}")]
    Stopped(E),
}

/// One top-level object of a v5.3 document.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyObject {
    /// A `checkouts[]` element.
    Checkout(Checkout),
    /// A `builds[]` element.
    Build(Build),
    /// A `tests[]` element.
    Test(Test),
    /// An `issues[]` element.
    Issue(Issue),
    /// An `incidents[]` element.
    Incident(Incident),
}

impl AnyObject {
    /// The object's id.
    pub fn id(&self) -> &str {
        match self {
            AnyObject::Checkout(x) => &x.id,
            AnyObject::Build(x) => &x.id,
            AnyObject::Test(x) => &x.id,
            AnyObject::Issue(x) => &x.id,
            AnyObject::Incident(x) => &x.id,
        }
    }

    /// The object's origin.
    pub fn origin(&self) -> &str {
        match self {
            AnyObject::Checkout(x) => &x.origin,
            AnyObject::Build(x) => &x.origin,
            AnyObject::Test(x) => &x.origin,
            AnyObject::Issue(x) => &x.origin,
            AnyObject::Incident(x) => &x.origin,
        }
    }

    /// The name of the list it belongs to (`"builds"`).
    pub fn list(&self) -> &'static str {
        match self {
            AnyObject::Checkout(_) => "checkouts",
            AnyObject::Build(_) => "builds",
            AnyObject::Test(_) => "tests",
            AnyObject::Issue(_) => "issues",
            AnyObject::Incident(_) => "incidents",
        }
    }

    /// Appends it to its list in `submission`.
    pub fn push_into(self, submission: &mut Submission) {
        match self {
            AnyObject::Checkout(x) => submission.checkouts.push(x),
            AnyObject::Build(x) => submission.builds.push(x),
            AnyObject::Test(x) => submission.tests.push(x),
            AnyObject::Issue(x) => submission.issues.push(x),
            AnyObject::Incident(x) => submission.incidents.push(x),
        }
    }

    /// The typed object of a valid v5.x list element.
    fn from_value(list: &str, value: Value) -> Result<AnyObject, serde_json::Error> {
        Ok(match list {
            "checkouts" => AnyObject::Checkout(serde_json::from_value(value)?),
            "builds" => AnyObject::Build(serde_json::from_value(value)?),
            "tests" => AnyObject::Test(serde_json::from_value(value)?),
            "issues" => AnyObject::Issue(serde_json::from_value(value)?),
            _ => AnyObject::Incident(serde_json::from_value(value)?),
        })
    }
}

/// Reads a submission from `reader` and hands `each(index in its list, object)` every
/// object, upgraded to v5.3, in document order. Returns the number of objects.
///
/// See the module documentation for the paths, the memory bound and what "handed over as
/// read" means for invalid documents.
pub fn read_objects<R: Read + Seek, E>(
    mut reader: R,
    options: &StreamOptions,
    mut each: impl FnMut(usize, AnyObject) -> Result<(), E>,
) -> Result<u64, StreamError<E>> {
    let len = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    if len <= options.in_memory_up_to {
        return read_whole(reader, each);
    }
    let mut head = [0u8; 3];
    let n = read_up_to(&mut reader, &mut head)?;
    if head[..n] == [0xef, 0xbb, 0xbf] {
        return Err(StreamError::Rejected(ParseError::ByteOrderMark.into()));
    }
    reader.seek(SeekFrom::Start(0))?;
    let version = match walk(&mut reader, None, options, &mut each)? {
        Walked::Done(objects) => return Ok(objects),
        Walked::WholeDocument => {
            reader.seek(SeekFrom::Start(0))?;
            return read_whole(reader, each);
        }
        Walked::VersionNotFirst => {
            reader.seek(SeekFrom::Start(0))?;
            find_version(&mut reader)?
        }
    };
    reader.seek(SeekFrom::Start(0))?;
    match walk(&mut reader, Some(version), options, &mut each)? {
        Walked::Done(objects) => Ok(objects),
        Walked::WholeDocument | Walked::VersionNotFirst => {
            reader.seek(SeekFrom::Start(0))?;
            read_whole(reader, each)
        }
    }
}

/// [`read_objects`] grouped into submissions of at most `chunk` objects (at least one), each
/// handed to `each` as soon as it is full, the last one when the document ends.
pub fn read_chunks<R: Read + Seek, E>(
    reader: R,
    options: &StreamOptions,
    chunk: usize,
    mut each: impl FnMut(Submission) -> Result<(), E>,
) -> Result<u64, StreamError<E>> {
    let chunk = chunk.max(1);
    let mut current = Submission::new();
    let objects = read_objects(reader, options, |_, object| {
        object.push_into(&mut current);
        if current.object_count() >= chunk {
            each(std::mem::take(&mut current))
        } else {
            Ok(())
        }
    })?;
    if current.object_count() > 0 {
        each(current).map_err(StreamError::Stopped)?;
    }
    Ok(objects)
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The in-memory path: [`crate::load`], then every object in list order.
fn read_whole<R: Read, E>(
    mut reader: R,
    mut each: impl FnMut(usize, AnyObject) -> Result<(), E>,
) -> Result<u64, StreamError<E>> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    let submission = crate::load(&bytes).map_err(StreamError::Rejected)?;
    drop(bytes);
    let objects = submission.object_count() as u64;
    // Each list in turn, its objects moved out one at a time.
    fn hand_over<T, E>(
        list: Vec<T>,
        wrap: fn(T) -> AnyObject,
        each: &mut impl FnMut(usize, AnyObject) -> Result<(), E>,
    ) -> Result<(), StreamError<E>> {
        for (i, object) in list.into_iter().enumerate() {
            each(i, wrap(object)).map_err(StreamError::Stopped)?;
        }
        Ok(())
    }
    hand_over(submission.checkouts, AnyObject::Checkout, &mut each)?;
    hand_over(submission.builds, AnyObject::Build, &mut each)?;
    hand_over(submission.tests, AnyObject::Test, &mut each)?;
    hand_over(submission.issues, AnyObject::Issue, &mut each)?;
    hand_over(submission.incidents, AnyObject::Incident, &mut each)?;
    Ok(objects)
}

/// How a streaming walk ended without an error.
enum Walked {
    /// Valid; this many objects.
    Done(u64),
    /// An older major version: read the whole document instead.
    WholeDocument,
    /// The first key is not `version` and no version was given.
    VersionNotFirst,
}

/// The version decision, from the `version` value (or its absence).
enum Decision {
    /// Validate against this version (`unknown`: the declared one does not exist).
    Stream {
        version: SchemaVersion,
        unknown: bool,
    },
    /// v3/v4: the whole document is needed.
    Whole,
    /// v1.1/v2.0.
    Obsolete(Rejection),
}

fn decide(version: Option<&Value>) -> Decision {
    let mut doc = Map::new();
    if let Some(v) = version {
        doc.insert("version".to_string(), v.clone());
    }
    match declared_version(&Value::Object(doc)) {
        Declared::Known(v) if v.major() < 5 => Decision::Whole,
        Declared::Known(version) => Decision::Stream {
            version,
            unknown: false,
        },
        Declared::Unknown => Decision::Stream {
            version: SchemaVersion::LATEST,
            unknown: true,
        },
        Declared::Obsolete { major, minor } => Decision::Obsolete(Rejection::Schema {
            version: SchemaVersion::LATEST,
            problems: vec![Problem {
                pointer: "/version".to_string(),
                reason: Reason::ObsoleteVersion { major, minor },
            }],
        }),
    }
}

/// Why the walk's deserializer stopped early (its error type carries only a message).
enum Halt<E> {
    /// The version says: read the whole document.
    WholeDocument,
    /// `version` is not the first key.
    VersionNotFirst,
    /// Obsolete version.
    Rejected(Rejection),
    /// Too many problems: the list is cut.
    TooMany,
    /// The callback's error.
    Stopped(E),
}

/// The walk's state, shared by the document, list and element visitors.
struct Walk<'a, E, F> {
    validator: Validator,
    unknown_version: bool,
    given: Option<SchemaVersion>,
    max_problems: usize,
    objects: u64,
    duplicate: RefCell<Option<String>>,
    halt: Option<Halt<E>>,
    each: &'a mut F,
}

fn walk<R: Read, E, F: FnMut(usize, AnyObject) -> Result<(), E>>(
    reader: R,
    given: Option<SchemaVersion>,
    options: &StreamOptions,
    each: &mut F,
) -> Result<Walked, StreamError<E>> {
    let mut state = Walk {
        validator: Validator {
            version: given.unwrap_or(SchemaVersion::LATEST),
            problems: Vec::new(),
        },
        unknown_version: false,
        given,
        max_problems: options.max_problems.max(1),
        objects: 0,
        duplicate: RefCell::new(None),
        halt: None,
        each,
    };
    let bad_utf8 = Cell::new(None);
    let mut de = serde_json::Deserializer::from_reader(utf8_checked(reader, &bad_utf8));
    let result = DocumentSeed(&mut state)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    match (result, state.halt.take()) {
        (_, Some(Halt::WholeDocument)) => Ok(Walked::WholeDocument),
        (_, Some(Halt::VersionNotFirst)) => Ok(Walked::VersionNotFirst),
        (_, Some(Halt::Rejected(r))) => Err(StreamError::Rejected(r)),
        (_, Some(Halt::Stopped(e))) => Err(StreamError::Stopped(e)),
        (_, Some(Halt::TooMany)) => {
            let mut problems = state.validator.problems;
            problems.truncate(state.max_problems);
            problems.push(Problem {
                pointer: String::new(),
                reason: Reason::TooManyProblems {
                    shown: state.max_problems,
                },
            });
            Err(StreamError::Rejected(Rejection::Schema {
                version: state.validator.version,
                problems,
            }))
        }
        (Err(e), None) => Err(parse_failure(e, &state.duplicate, &bad_utf8)),
        (Ok(()), None) => {
            let mut problems = state.validator.problems;
            if state.unknown_version && problems.is_empty() {
                // As in `validate`: an unknown version can never pass.
                problems.push(Problem {
                    pointer: "/version".to_string(),
                    reason: Reason::Internal("unknown I/O schema version".to_string()),
                });
            }
            if problems.is_empty() {
                Ok(Walked::Done(state.objects))
            } else {
                Err(StreamError::Rejected(Rejection::Schema {
                    version: state.validator.version,
                    problems,
                }))
            }
        }
    }
}

fn parse_failure<E>(
    e: serde_json::Error,
    duplicate: &RefCell<Option<String>>,
    bad_utf8: &Cell<Option<u64>>,
) -> StreamError<E> {
    if let Some(offset) = bad_utf8.get() {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        return StreamError::Rejected(ParseError::InvalidUtf8 { offset }.into());
    }
    if e.is_io() {
        return StreamError::Io(io::Error::other(e.to_string()));
    }
    if e.is_eof() && e.line() == 1 && e.column() == 0 {
        return StreamError::Rejected(ParseError::Empty.into());
    }
    let error = match duplicate.take() {
        Some(key) => ParseError::DuplicateKey {
            key,
            line: e.line(),
            column: e.column(),
        },
        None => syntax(&e),
    };
    StreamError::Rejected(error.into())
}

/// The first pass when `version` is not the first key: its value, everything else skipped.
fn find_version<R: Read, E>(reader: R) -> Result<SchemaVersion, StreamError<E>> {
    struct FindVersion<'a>(&'a RefCell<Option<String>>);
    impl<'de> Visitor<'de> for FindVersion<'_> {
        type Value = Option<Value>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a submission object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
            let mut version = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == "version" {
                    version = Some(map.next_value_seed(StrictValue { duplicate: self.0 })?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(version)
        }
    }
    let duplicate = RefCell::new(None);
    let bad_utf8 = Cell::new(None);
    let mut de = serde_json::Deserializer::from_reader(utf8_checked(reader, &bad_utf8));
    let version = de::Deserializer::deserialize_map(&mut de, FindVersion(&duplicate))
        .map_err(|e| parse_failure(e, &duplicate, &bad_utf8))?;
    match decide(version.as_ref()) {
        Decision::Stream { version, .. } => Ok(version),
        // An older version: the second walk hands over to the in-memory path.
        Decision::Whole => Ok(SchemaVersion::LATEST),
        Decision::Obsolete(r) => Err(StreamError::Rejected(r)),
    }
}

struct DocumentSeed<'s, 'a, E, F>(&'s mut Walk<'a, E, F>);

impl<'de, E, F: FnMut(usize, AnyObject) -> Result<(), E>> DeserializeSeed<'de>
    for DocumentSeed<'_, '_, E, F>
{
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, E, F: FnMut(usize, AnyObject) -> Result<(), E>> Visitor<'de>
    for DocumentSeed<'_, '_, E, F>
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a submission object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        let root = Loc::Root;
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                let message = format!("duplicate key {key:?}");
                *state.duplicate.borrow_mut() = Some(key);
                return Err(de::Error::custom(message));
            }
            let at = root.key(&key);
            if key == "version" {
                let value = map.next_value_seed(StrictValue {
                    duplicate: &state.duplicate,
                })?;
                if state.given.is_none() {
                    match decide(Some(&value)) {
                        Decision::Stream { version, unknown } => {
                            state.validator.version = version;
                            state.unknown_version = unknown;
                        }
                        Decision::Whole => return halt(state, Halt::WholeDocument),
                        Decision::Obsolete(r) => return halt(state, Halt::Rejected(r)),
                    }
                } else if let Decision::Whole = decide(Some(&value)) {
                    return halt(state, Halt::WholeDocument);
                }
                state.validator.version_object(&value, &at);
            } else if seen.len() == 1 && state.given.is_none() {
                return halt(state, Halt::VersionNotFirst);
            } else if let Some((name, ty)) = top_level_lists(state.validator.version)
                .iter()
                .find(|(name, _)| *name == key)
            {
                map.next_value_seed(ListSeed {
                    state: &mut *state,
                    name,
                    ty: *ty,
                })?;
            } else {
                map.next_value_seed(StrictValue {
                    duplicate: &state.duplicate,
                })?;
                let version = state.validator.version;
                state.validator.report(
                    &at,
                    Reason::Unknown {
                        property: key.clone(),
                        version,
                    },
                );
            }
            check_count(state)?;
        }
        if !seen.contains("version") {
            if state.given.is_none() {
                // No version at all: validated against the latest schema, which fails.
                state.unknown_version = true;
            }
            state.validator.report(
                &root,
                Reason::Missing {
                    property: "version",
                },
            );
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        not_an_object(self.0, Value::Array(Vec::new()))
    }

    fn visit_str<Er: de::Error>(self, _: &str) -> Result<(), Er> {
        not_an_object(self.0, Value::String(String::new()))
    }

    fn visit_bool<Er: de::Error>(self, v: bool) -> Result<(), Er> {
        not_an_object(self.0, Value::Bool(v))
    }

    fn visit_i64<Er: de::Error>(self, v: i64) -> Result<(), Er> {
        not_an_object(self.0, Value::from(v))
    }

    fn visit_u64<Er: de::Error>(self, v: u64) -> Result<(), Er> {
        not_an_object(self.0, Value::from(v))
    }

    fn visit_f64<Er: de::Error>(self, v: f64) -> Result<(), Er> {
        not_an_object(self.0, Value::from(v))
    }

    fn visit_unit<Er: de::Error>(self) -> Result<(), Er> {
        not_an_object(self.0, Value::Null)
    }
}

/// The document is not an object: one problem, as [`crate::validate()`] reports it.
fn not_an_object<E, F, Er>(state: &mut Walk<'_, E, F>, found: Value) -> Result<(), Er> {
    state
        .validator
        .wrong_type(&Loc::Root, JsonType::Object, &found);
    Ok(())
}

fn halt<E, F, Er: de::Error>(state: &mut Walk<'_, E, F>, why: Halt<E>) -> Result<(), Er> {
    state.halt = Some(why);
    Err(Er::custom("halted"))
}

fn check_count<E, F, Er: de::Error>(state: &mut Walk<'_, E, F>) -> Result<(), Er> {
    if state.validator.problems.len() > state.max_problems {
        return halt(state, Halt::TooMany);
    }
    Ok(())
}

/// A top-level list: each element parsed, validated, converted and handed over.
struct ListSeed<'s, 'a, E, F> {
    state: &'s mut Walk<'a, E, F>,
    name: &'static str,
    ty: ObjectType,
}

impl<'de, E, F: FnMut(usize, AnyObject) -> Result<(), E>> DeserializeSeed<'de>
    for ListSeed<'_, '_, E, F>
{
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<E, F> ListSeed<'_, '_, E, F> {
    fn not_an_array<Er>(self, found: Value) -> Result<(), Er> {
        let root = Loc::Root;
        let at = root.key(self.name);
        self.state
            .validator
            .wrong_type(&at, JsonType::Array, &found);
        Ok(())
    }
}

impl<'de, E, F: FnMut(usize, AnyObject) -> Result<(), E>> Visitor<'de> for ListSeed<'_, '_, E, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.state;
        let root = Loc::Root;
        let list = root.key(self.name);
        let mut index = 0usize;
        while let Some(value) = seq.next_element_seed(StrictValue {
            duplicate: &state.duplicate,
        })? {
            let at = list.index(index);
            state.validator.object(self.ty, &value, &at);
            if state.validator.problems.is_empty() {
                match AnyObject::from_value(self.name, value) {
                    Ok(object) => {
                        if let Err(e) = (state.each)(index, object) {
                            return halt(state, Halt::Stopped(e));
                        }
                    }
                    Err(e) => state.validator.report(
                        &at,
                        Reason::Internal(format!("typed conversion failed: {e}")),
                    ),
                }
            }
            state.objects += 1;
            index += 1;
            check_count(state)?;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.not_an_array(Value::Object(Map::new()))
    }

    fn visit_str<Er: de::Error>(self, _: &str) -> Result<(), Er> {
        self.not_an_array(Value::String(String::new()))
    }

    fn visit_bool<Er: de::Error>(self, v: bool) -> Result<(), Er> {
        self.not_an_array(Value::Bool(v))
    }

    fn visit_i64<Er: de::Error>(self, v: i64) -> Result<(), Er> {
        self.not_an_array(Value::from(v))
    }

    fn visit_u64<Er: de::Error>(self, v: u64) -> Result<(), Er> {
        self.not_an_array(Value::from(v))
    }

    fn visit_f64<Er: de::Error>(self, v: f64) -> Result<(), Er> {
        self.not_an_array(Value::from(v))
    }

    fn visit_unit<Er: de::Error>(self) -> Result<(), Er> {
        self.not_an_array(Value::Null)
    }
}

/// `reader`, buffered, failing at the first byte that is not UTF-8 (its offset is put in
/// `bad`), so that a streamed document is refused at the decode stage as in [`crate::parse`].
fn utf8_checked<R: Read>(reader: R, bad: &Cell<Option<u64>>) -> BufReader<Utf8Checked<'_, R>> {
    BufReader::with_capacity(
        1 << 16,
        Utf8Checked {
            inner: reader,
            buf: vec![0; 1 << 16],
            pos: 0,
            ready: 0,
            len: 0,
            offset: 0,
            eof: false,
            bad,
        },
    )
}

/// A reader that only passes on valid UTF-8 (see [`utf8_checked`]).
struct Utf8Checked<'a, R> {
    inner: R,
    buf: Vec<u8>,
    /// `buf[pos..ready]`: checked, not yet handed out; `buf[ready..len]`: an incomplete
    /// sequence waiting for its next bytes.
    pos: usize,
    ready: usize,
    len: usize,
    /// Offset in the input of `buf[0]`.
    offset: u64,
    eof: bool,
    bad: &'a Cell<Option<u64>>,
}

impl<R: Read> Utf8Checked<'_, R> {
    fn invalid(&self, at: usize) -> io::Error {
        self.bad.set(Some(self.offset + at as u64));
        io::Error::new(io::ErrorKind::InvalidData, "invalid UTF-8")
    }

    /// Makes `buf[pos..ready]` non-empty, or reaches the end.
    fn refill(&mut self) -> io::Result<()> {
        // Keep the incomplete tail (at most 3 bytes) at the front.
        let tail = self.len - self.ready;
        self.buf.copy_within(self.ready..self.len, 0);
        self.offset += self.ready as u64;
        self.pos = 0;
        self.ready = 0;
        self.len = tail;
        loop {
            if self.len > 0 {
                match std::str::from_utf8(&self.buf[..self.len]) {
                    Ok(_) => self.ready = self.len,
                    // Hand out the valid part; a bad byte after it is found at the next
                    // refill, at the front.
                    Err(e) if e.valid_up_to() > 0 => self.ready = e.valid_up_to(),
                    Err(e) if e.error_len().is_some() => return Err(self.invalid(0)),
                    // An incomplete sequence at the front (at most 3 bytes): read on.
                    Err(_) => {}
                }
                if self.ready > 0 {
                    return Ok(());
                }
            }
            if self.eof {
                return if self.len > 0 {
                    Err(self.invalid(0))
                } else {
                    Ok(())
                };
            }
            match self.inner.read(&mut self.buf[self.len..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> Read for Utf8Checked<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.ready {
            self.refill()?;
        }
        let n = out.len().min(self.ready - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
