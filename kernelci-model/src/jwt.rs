//! HS256 JSON Web Tokens: signing and signature checking, shared by every role that issues
//! or accepts tokens. Claim rules (expiry, audience, permissions) belong to the caller.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url segments of JSON objects.
    #[error("malformed token")]
    Malformed,
    /// The header names another algorithm than HS256.
    #[error("unsupported algorithm (only HS256 is accepted)")]
    Algorithm,
    /// The signature does not match any of the secrets.
    #[error("invalid signature")]
    Signature,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: this cannot fail.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any size"),
    }
}

/// Sign `claims` with HS256.
pub fn sign(secret: &[u8], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn segment(s: &str) -> Result<Value, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(JwtError::Malformed),
    }
}

/// The claims of `token` if its HS256 signature matches one of `secrets` (tried in order).
pub fn verify(secrets: &[&[u8]], token: &str) -> Result<Value, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header = segment(h)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(JwtError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let ok = secrets.iter().any(|secret| {
        let mut m = mac(secret);
        m.update(h.as_bytes());
        m.update(b".");
        m.update(p.as_bytes());
        m.verify_slice(&signature).is_ok()
    });
    if !ok {
        return Err(JwtError::Signature);
    }
    segment(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_refusals() {
        let t = sign(b"s1", &json!({"sub": "x"}));
        assert_eq!(verify(&[b"s1"], &t).unwrap()["sub"], "x");
        assert_eq!(verify(&[b"other", b"s1"], &t).unwrap()["sub"], "x");
        assert_eq!(verify(&[b"other"], &t), Err(JwtError::Signature));
        assert_eq!(verify(&[b"s1"], "a.b"), Err(JwtError::Malformed));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#)
        );
        assert_eq!(verify(&[b"s1"], &none), Err(JwtError::Algorithm));
    }
}
