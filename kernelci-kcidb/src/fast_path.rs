//! The fast path: validation while parsing, without building a JSON tree.
//!
//! Most submissions are valid v5.x documents that start with their `version`. For those,
//! [`fast_check`] walks the JSON text once with serde visitors that apply the same rules as
//! [`crate::validate()`] (the same [`crate::schema`] tables, [`Rule`](crate::Rule) and
//! [`Format`](crate::Format) matchers), borrowing strings instead of allocating a
//! `serde_json::Value`. It only answers "certainly valid" (`Some(version)`); on any doubt
//! (a problem, a syntax error, an older version, `version` not first) it answers `None` and
//! the caller takes the full path, which finds and explains every problem. So the fast path
//! can make valid documents faster, never change a verdict (the tests check both paths
//! agree on every fixture and on random documents).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::schema::{
    Kind, LOG_EXCERPT_MAX, MAX_ISSUE_VERSION, ObjectType, PREFIXES, statuses, top_level_lists,
};
use crate::version::SchemaVersion;

/// `Some(version)` when `text` is certainly a valid document of a v5.x `version` (stated
/// first); `None` when the full path must decide.
pub(crate) fn fast_check(text: &str) -> Option<SchemaVersion> {
    let mut de = serde_json::Deserializer::from_str(text);
    let version = Document.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(version)
}

/// Any error: the fast path gives up and the full path explains.
fn no<T, E: de::Error>() -> Result<T, E> {
    Err(E::custom("not on the fast path"))
}

/// A map key, borrowed from the input when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The document: `version` first, then the lists of that version, each at most once.
struct Document;

impl<'de> DeserializeSeed<'de> for Document {
    type Value = SchemaVersion;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document {
    type Value = SchemaVersion;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a submission")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SchemaVersion, A::Error> {
        match map.next_key_seed(Key)? {
            Some(key) if key == "version" => {}
            _ => return no(),
        }
        let version = map.next_value_seed(VersionObject)?;
        let lists = top_level_lists(version);
        let mut seen = 0u32;
        while let Some(key) = map.next_key_seed(Key)? {
            let Some(i) = lists.iter().position(|(name, _)| *name == key) else {
                return no();
            };
            if seen & (1 << i) != 0 {
                return no();
            }
            seen |= 1 << i;
            map.next_value_seed(List(Kind::Object(lists[i].1), version))?;
        }
        Ok(version)
    }
}

/// `{"major": 5, "minor": m}` of a known v5 version, nothing else.
struct VersionObject;

impl<'de> DeserializeSeed<'de> for VersionObject {
    type Value = SchemaVersion;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for VersionObject {
    type Value = SchemaVersion;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a version")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SchemaVersion, A::Error> {
        let (mut major, mut minor) = (None, None);
        while let Some(key) = map.next_key_seed(Key)? {
            let slot = match key.as_ref() {
                "major" => &mut major,
                "minor" => &mut minor,
                _ => return no(),
            };
            if slot.is_some() {
                return no();
            }
            *slot = Some(map.next_value_seed(Unsigned)?);
        }
        let major = major.map_or_else(no, Ok)?;
        match SchemaVersion::known(major, minor.unwrap_or(0)) {
            Some(v) if v.major() == SchemaVersion::LATEST.major() => Ok(v),
            _ => no(),
        }
    }
}

/// A JSON integer of at least 0 (not a float: the full path treats those).
struct Unsigned;

impl<'de> DeserializeSeed<'de> for Unsigned {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for Unsigned {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an unsigned integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
}

/// An array whose items are of one kind.
struct List(Kind, SchemaVersion);

impl<'de> DeserializeSeed<'de> for List {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for List {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Value(self.0, self.1))?.is_some() {}
        Ok(())
    }
}

/// A value of a property of the given kind.
#[derive(Clone, Copy)]
struct Value(Kind, SchemaVersion);

impl<'de> DeserializeSeed<'de> for Value {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0 {
            Kind::Object(ty) => d.deserialize_map(Object(ty, self.1)),
            Kind::List(item) => d.deserialize_seq(List(*item, self.1)),
            Kind::Misc => d.deserialize_map(Misc),
            Kind::Bool => d.deserialize_bool(self),
            _ if self.0.is_string() || matches!(self.0, Kind::Status | Kind::Prefix) => {
                d.deserialize_str(self)
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Value {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        if self.0 == Kind::Bool { Ok(()) } else { no() }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match self.0 {
            Kind::Number => Ok(()),
            Kind::Count if v <= MAX_ISSUE_VERSION as u64 => Ok(()),
            _ => no(),
        }
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        // serde_json only calls this for negative integers.
        if self.0 == Kind::Number { Ok(()) } else { no() }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match self.0 {
            Kind::Number => Ok(()),
            Kind::Count if v.fract() == 0.0 && (0.0..=MAX_ISSUE_VERSION as f64).contains(&v) => {
                Ok(())
            }
            _ => no(),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<(), E> {
        // Borrowed: no escapes, so no NUL (raw control characters are not JSON).
        if self.string_ok(s, false) {
            Ok(())
        } else {
            no()
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        if self.string_ok(s, true) {
            Ok(())
        } else {
            no()
        }
    }
}

impl Value {
    fn string_ok(self, s: &str, may_hold_nul: bool) -> bool {
        let (kind, version) = (self.0, self.1);
        match kind {
            _ if !kind.is_string() && !matches!(kind, Kind::Status | Kind::Prefix) => false,
            Kind::Status => statuses(version).contains(&s),
            Kind::Prefix => PREFIXES.contains(&s),
            _ => {
                kind.format().is_none_or(|f| f.matches(s))
                    && kind
                        .rule(version)
                        .is_none_or(|r| r.matches_with(s, may_hold_nul))
                    && (kind != Kind::LogExcerpt
                        || s.len() <= LOG_EXCERPT_MAX
                        || s.chars().count() <= LOG_EXCERPT_MAX)
            }
        }
    }
}

/// An object of the schema: known properties at most once each, the required ones present.
struct Object(ObjectType, SchemaVersion);

impl<'de> Visitor<'de> for Object {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (ty, version) = (self.0, self.1);
        let fields = ty.fields();
        let mut seen = 0u64;
        while let Some(key) = map.next_key_seed(Key)? {
            let Some(i) = ty.field_index(&key, version) else {
                return no();
            };
            if seen & (1 << i) != 0 {
                return no();
            }
            seen |= 1 << i;
            map.next_value_seed(Value(fields[i].kind, version))?;
        }
        let missing = fields
            .iter()
            .enumerate()
            .any(|(i, f)| f.required && seen & (1 << i) == 0 && f.exists_in(version));
        if missing { no() } else { Ok(()) }
    }
}

/// Free-form `misc` data: anything but NUL characters and duplicate keys.
struct Misc;

impl<'de> DeserializeSeed<'de> for Misc {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Misc {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("misc data")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<(), E> {
        // No escapes, so no NUL.
        Ok(())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        if s.contains('\0') { no() } else { Ok(()) }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Misc)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Duplicate keys: a linear search over the few keys of a typical misc object, a hash
        // set beyond that (so that a huge object cannot make this quadratic).
        const LINEAR: usize = 16;
        let mut few: Vec<Cow<'de, str>> = Vec::new();
        let mut many: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if matches!(&key, Cow::Owned(k) if k.contains('\0')) {
                return no();
            }
            map.next_value_seed(Misc)?;
            let duplicate = if few.len() < LINEAR {
                let duplicate = few.contains(&key);
                few.push(key);
                duplicate
            } else {
                if many.is_empty() {
                    many.extend(few.iter().cloned());
                }
                !many.insert(key)
            };
            if duplicate {
                return no();
            }
        }
        Ok(())
    }
}
