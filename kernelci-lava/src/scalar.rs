//! Lenient reading of LAVA's YAML values: any scalar as text, anything else ignored.
//!
//! LAVA writes numbers as quoted strings (`id: '18'`) and missing values as the string
//! `None`, but nothing guarantees it: a field we read may be a number, a boolean, null, or
//! (in the log) a mapping. [`Text`] takes any scalar as its text and turns collections and
//! tagged values into `None` without failing, so that one odd field never rejects a payload.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A YAML value read as text: `Some` for a string or another scalar, `None` for null, a
/// collection or a tagged value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub Option<String>);

impl Text {
    /// The text, `None` also for empty strings and LAVA's `None`.
    pub fn meaningful(self) -> Option<String> {
        self.0.filter(|s| !s.is_empty() && s != "None")
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(Some(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
        Ok(Text(Some(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
        Ok(Text(Some(v.to_string())))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
        Ok(Text(Some(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
        Ok(Text(Some(v.to_string())))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Text, E> {
        Ok(Text(Some(v.to_string())))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Text, E> {
        Ok(Text(Some(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
        Ok(Text(Some(v.to_string())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
        Ok(Text(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Text, E> {
        Ok(Text(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text, D::Error> {
        Text::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Text, A::Error> {
        // A tagged value (`!tag value`): consumed and ignored.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(Text(None))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_become_text_collections_none() {
        let v: Vec<Text> =
            serde_yaml_ng::from_str("['18', 18, 1.5, true, ~, None, [1], {a: 1}, !t x]").unwrap();
        let texts: Vec<Option<String>> = v.into_iter().map(|t| t.0).collect();
        assert_eq!(
            texts,
            vec![
                Some("18".into()),
                Some("18".into()),
                Some("1.5".into()),
                Some("true".into()),
                None,
                Some("None".into()),
                None,
                None,
                None,
            ]
        );
        assert_eq!(Text(Some("None".into())).meaningful(), None);
        assert_eq!(Text(Some(String::new())).meaningful(), None);
        assert_eq!(Text(Some("x".into())).meaningful(), Some("x".into()));
    }
}
