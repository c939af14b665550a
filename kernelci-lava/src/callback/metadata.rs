//! The `metadata` mapping of the job definition a callback carries, as text.
//!
//! LAVA stores the definition re-dumped by PyYAML (YAML 1.1), so a node id such as
//! `123e4567890123456789012` is written plain: a string for PyYAML, a float for a YAML 1.2
//! reader. The values are therefore taken as written — the scalar's own text — for every
//! scalar; collections and null are left out. The document is parsed twice: once to check
//! it is YAML and find which values are scalars, once to read those scalars' text.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_yaml_ng::Value as Yaml;

use crate::scalar::Text;

/// Reads `metadata` from a definition's YAML text; `Err` with the parser's message when the
/// text is not YAML.
pub fn read(text: &str) -> Result<BTreeMap<String, String>, String> {
    let doc: Yaml = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let Some(Yaml::Mapping(meta)) = doc.get("metadata") else {
        return Ok(BTreeMap::new());
    };
    let scalar_keys: HashSet<String> = meta
        .iter()
        .filter(|(_, v)| matches!(v, Yaml::String(_) | Yaml::Number(_) | Yaml::Bool(_)))
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .collect();
    if scalar_keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    DocSeed(&scalar_keys)
        .deserialize(de)
        .map_err(|e| e.to_string())
}

struct DocSeed<'a>(&'a HashSet<String>);

impl<'de> DeserializeSeed<'de> for DocSeed<'_> {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_> {
    type Value = BTreeMap<String, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a job definition")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<Text>()? {
            if key.0.as_deref() == Some("metadata") {
                out = map.next_value_seed(MetaSeed(self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

struct MetaSeed<'a>(&'a HashSet<String>);

impl<'de> DeserializeSeed<'de> for MetaSeed<'_> {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetaSeed<'_> {
    type Value = BTreeMap<String, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the metadata mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<Text>()? {
            match key.0 {
                Some(k) if self.0.contains(&k) => {
                    let RawText(text) = map.next_value()?;
                    out.insert(k, text);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// A scalar's text as written (serde_yaml_ng's `deserialize_str` does not resolve types).
struct RawText(String);

impl<'de> serde::Deserialize<'de> for RawText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawText, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawText, E> {
                Ok(RawText(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_their_text() {
        let text = "actions: [{deploy: {to: tmpfs}}]\nmetadata:\n  node_id: 123e4567890123456789012\n  \
                    plain: 007\n  quoted: '0123'\n  flag: true\n  nested: {a: 1}\n  empty: ~\n";
        let meta = read(text).unwrap();
        assert_eq!(
            meta.get("node_id").map(String::as_str),
            Some("123e4567890123456789012")
        );
        assert_eq!(meta.get("plain").map(String::as_str), Some("007"));
        assert_eq!(meta.get("quoted").map(String::as_str), Some("0123"));
        assert_eq!(meta.get("flag").map(String::as_str), Some("true"));
        assert!(!meta.contains_key("nested") && !meta.contains_key("empty"));
    }

    #[test]
    fn no_metadata_and_bad_yaml() {
        assert!(read("job_name: x\n").unwrap().is_empty());
        assert!(read("- a\n").unwrap().is_empty());
        assert!(read("metadata: [1]\n").unwrap().is_empty());
        assert!(read("a: [").is_err());
    }
}
