//! KCIDB tokens: JWT HS256 carrying the submitter's `origin`.
//!
//! Claims: `origin` (required, `^[a-z0-9_]+$`), `exp` (required, checked with 60 s of leeway,
//! as upstream's jsonwebtoken default), optional `permissions`, a list of strings. The
//! permission [`ADMIN_PERMISSION`] (`"kcidb:admin"`) lets a token submit objects of any
//! origin (e.g. the logspec-worker, which files issues under the analysed build's origin).
//! Other claims are ignored; a token with an `aud` claim is refused (as upstream).
//! A second ("unified") secret is tried when the first does not verify the signature.

use kernelci_model::jwt;
use serde_json::{Value, json};

/// The permission that lifts the origin restriction.
pub const ADMIN_PERMISSION: &str = "kcidb:admin";

/// Leeway on `exp`, seconds.
const LEEWAY: i64 = 60;

/// Who is submitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitter {
    /// The token's origin (`none` when authentication is disabled).
    pub origin: String,
    /// Whether the token may submit for any origin.
    pub admin: bool,
}

/// Why a token was refused (the text goes into the 401 body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization` header.
    #[error("JWT is required")]
    Missing,
    /// The header is not visible ASCII, or has no token after the scheme word.
    #[error("Missing or invalid JWT (Bearer)")]
    Malformed,
    /// Not three base64url segments of JSON.
    #[error("InvalidToken")]
    InvalidToken,
    /// `alg` is not HS256.
    #[error("InvalidAlgorithm")]
    InvalidAlgorithm,
    /// Signature does not match either secret.
    #[error("InvalidSignature")]
    InvalidSignature,
    /// `exp` is in the past.
    #[error("ExpiredSignature")]
    Expired,
    /// A required claim is missing or has the wrong type.
    #[error("Missing required claim: {0}")]
    MissingClaim(&'static str),
    /// `origin` does not match `^[a-z0-9_]+$`.
    #[error("invalid origin claim {0:?} (must match ^[a-z0-9_]+$)")]
    BadOrigin(String),
    /// The token carries an audience, which this service does not accept.
    #[error("InvalidAudience")]
    Audience,
}

/// The verification keys: a primary secret and an optional second one.
#[derive(Clone)]
pub struct Verifier {
    primary: Vec<u8>,
    secondary: Option<Vec<u8>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secondary", &self.secondary.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether `s` is a valid KCIDB origin.
pub fn valid_origin(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Verifier {
    /// Keys from the primary secret (non-empty) and an optional second secret (ignored
    /// when empty).
    pub fn new(primary: &str, secondary: Option<&str>) -> Verifier {
        Verifier {
            primary: primary.as_bytes().to_vec(),
            secondary: secondary
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec()),
        }
    }

    /// A token for `origin`, valid for `days` days, signed with the primary secret.
    pub fn issue(&self, origin: &str, admin: bool, days: i64) -> String {
        let mut claims = json!({"origin": origin, "exp": now() + days * 86_400});
        if admin {
            claims["permissions"] = json!([ADMIN_PERMISSION]);
        }
        sign(&self.primary, &claims)
    }

    /// Verifies an `Authorization` header value (`Bearer <token>`; like upstream, the
    /// scheme word is not checked).
    pub fn verify_header(&self, header: Option<&[u8]>) -> Result<Submitter, TokenError> {
        let header = header.ok_or(TokenError::Missing)?;
        let text = std::str::from_utf8(header).map_err(|_| TokenError::Malformed)?;
        if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(TokenError::Malformed);
        }
        let token = text
            .split(' ')
            .nth(1)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Malformed)?;
        self.verify(token)
    }

    /// Verifies a token: the primary secret, then the second one.
    pub fn verify(&self, token: &str) -> Result<Submitter, TokenError> {
        let mut secrets: Vec<&[u8]> = vec![&self.primary];
        if let Some(second) = &self.secondary {
            secrets.push(second);
        }
        let claims = jwt::verify(&secrets, token).map_err(|e| match e {
            jwt::JwtError::Malformed => TokenError::InvalidToken,
            jwt::JwtError::Algorithm => TokenError::InvalidAlgorithm,
            jwt::JwtError::Signature => TokenError::InvalidSignature,
        })?;
        check_claims(&claims)
    }
}

/// Signs `claims` with HS256.
pub fn sign(secret: &[u8], claims: &Value) -> String {
    jwt::sign(secret, claims)
}

fn check_claims(claims: &Value) -> Result<Submitter, TokenError> {
    let exp = claims
        .get("exp")
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .ok_or(TokenError::MissingClaim("exp"))?;
    if exp + LEEWAY < now() {
        return Err(TokenError::Expired);
    }
    if claims.get("aud").is_some() {
        return Err(TokenError::Audience);
    }
    let origin = claims
        .get("origin")
        .and_then(Value::as_str)
        .ok_or(TokenError::MissingClaim("origin"))?;
    if !valid_origin(origin) {
        return Err(TokenError::BadOrigin(origin.to_string()));
    }
    let admin = claims
        .get("permissions")
        .and_then(Value::as_array)
        .is_some_and(|p| p.iter().any(|v| v.as_str() == Some(ADMIN_PERMISSION)));
    Ok(Submitter {
        origin: origin.to_string(),
        admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_verify() {
        let v = Verifier::new("s3cret", Some("other"));
        let t = v.issue("lab", false, 1);
        assert_eq!(
            v.verify(&t),
            Ok(Submitter {
                origin: "lab".into(),
                admin: false
            })
        );
        let a = v.issue("lab", true, 1);
        assert!(v.verify(&a).is_ok_and(|s| s.admin));
        // Signed with the second secret.
        let t2 = Verifier::new("other", None).issue("x", false, 1);
        assert!(v.verify(&t2).is_ok());
        assert_eq!(
            Verifier::new("nope", None).verify(&t),
            Err(TokenError::InvalidSignature)
        );
        assert_eq!(v.verify("abc"), Err(TokenError::InvalidToken));
        let expired = sign(b"s3cret", &json!({"origin": "lab", "exp": now() - 3600}));
        assert_eq!(v.verify(&expired), Err(TokenError::Expired));
        let no_exp = sign(b"s3cret", &json!({"origin": "lab"}));
        assert_eq!(v.verify(&no_exp), Err(TokenError::MissingClaim("exp")));
        let bad = sign(b"s3cret", &json!({"origin": "Lab!", "exp": now() + 60}));
        assert!(matches!(v.verify(&bad), Err(TokenError::BadOrigin(_))));
        assert_eq!(v.verify_header(None), Err(TokenError::Missing));
        assert_eq!(v.verify_header(Some(b"Bearer")), Err(TokenError::Malformed));
        let header = format!("Bearer {t}");
        assert!(v.verify_header(Some(header.as_bytes())).is_ok());
    }
}
