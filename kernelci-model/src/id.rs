//! 12-byte identifiers rendered as 24 hex characters, the shape of MongoDB ObjectIds that
//! upstream clients and stored references expect.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// An identifier for nodes, users, groups and events: 4 bytes of seconds since the epoch,
/// 5 bytes random per process, 3 bytes of a counter. Sorting ids sorts them by creation second.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 12]);

/// The text was not 24 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid ObjectId, it must be a 12-byte input or a 24-character hex string")]
pub struct InvalidObjectId(pub String);

fn process_random() -> [u8; 5] {
    static RANDOM: OnceLock<[u8; 5]> = OnceLock::new();
    *RANDOM.get_or_init(|| {
        let mut bytes = [0u8; 5];
        if getrandom::fill(&mut bytes).is_err() {
            // Without an OS random source fall back to the pid and time: still unique enough
            // within one process, and the counter keeps ids apart.
            let pid = std::process::id().to_be_bytes();
            bytes[..4].copy_from_slice(&pid);
        }
        bytes
    })
}

impl ObjectId {
    /// A new id, unique within this process and (with overwhelming probability) across processes.
    pub fn generate() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let secs = chrono::Utc::now().timestamp() as u32;
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&secs.to_be_bytes());
        b[4..9].copy_from_slice(&process_random());
        b[9..].copy_from_slice(&count.to_be_bytes()[1..]);
        ObjectId(b)
    }

    /// Parse a 24-character hex string (either case).
    pub fn parse(s: &str) -> Result<Self, InvalidObjectId> {
        let err = || InvalidObjectId(s.to_string());
        if s.len() != 24 || !s.is_ascii() {
            return Err(err());
        }
        let mut b = [0u8; 12];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(|_| err())?;
            b[i] = u8::from_str_radix(hex, 16).map_err(|_| err())?;
        }
        Ok(ObjectId(b))
    }

    /// The raw bytes.
    pub fn bytes(&self) -> [u8; 12] {
        self.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl std::str::FromStr for ObjectId {
    type Err = InvalidObjectId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectId::parse(s)
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ObjectId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Fill `buf` with random bytes; all zeros if the OS has no random source.
pub fn random_bytes(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        buf.fill(0);
    }
}

/// A random version-4 UUID in its hyphenated text form (CloudEvent ids).
pub fn uuid4() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders() {
        let a = ObjectId::generate();
        let b = ObjectId::generate();
        assert_ne!(a, b);
        assert_eq!(ObjectId::parse(&a.to_string()), Ok(a));
        assert_eq!(a.to_string().len(), 24);
        assert!(ObjectId::parse("65a1355EE98651d0fe81e500").is_ok());
    }

    #[test]
    fn rejects_bad_text_with_upstream_message() {
        let e = ObjectId::parse("xyz").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'xyz' is not a valid ObjectId, it must be a 12-byte input or a 24-character hex string"
        );
        assert!(ObjectId::parse("65a1355ee98651d0fe81e50g").is_err());
        assert!(ObjectId::parse("é5a1355ee98651d0fe81e50").is_err());
    }

    #[test]
    fn uuid_shape() {
        let u = uuid4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
