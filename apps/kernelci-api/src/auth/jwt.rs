//! Hand-written HS256 JSON Web Tokens, wire-compatible with fastapi-users (PyJWT) and
//! python-jose.
//!
//! A token is `base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256)`, unpadded.
//! The header is always `{"alg":"HS256","typ":"JWT"}` (PyJWT sorts header keys) and claims are
//! serialised compactly in insertion order, so for the same clock second the tokens issued here
//! are byte-identical to the ones fastapi-users issues.

use kernelci_model::ObjectId;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

type Claims = Map<String, Value>;

/// fastapi-users' default audience for access tokens.
const ACCESS_AUDIENCE: &str = "fastapi-users:auth";
/// fastapi-users' default audience for password reset tokens.
const RESET_AUDIENCE: &str = "fastapi-users:reset";
/// fastapi-users' default lifetime of a password reset token.
const RESET_TTL_SECS: i64 = 3600;
/// The `purpose` claim of invite tokens.
const INVITE_PURPOSE: &str = "invite";

/// Why a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments, or the header or claims are not JSON objects, or a claim
    /// has the wrong type.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than HS256.
    #[error("unsupported token algorithm, only HS256 is accepted")]
    BadAlgorithm,
    /// The signature does not match any configured secret.
    #[error("invalid token signature")]
    BadSignature,
    /// The `exp` claim is in the past.
    #[error("token has expired")]
    Expired,
    /// The `aud` claim is missing or does not name the expected audience.
    #[error("token audience is missing or not accepted")]
    BadAudience,
    /// There is no `sub` claim.
    #[error("token has no subject")]
    MissingSubject,
    /// The `sub` claim is not a user id.
    #[error("token subject is not a valid user id")]
    InvalidSubject,
    /// A claim this kind of token needs is missing (or not a string).
    #[error("token has no '{0}' claim")]
    MissingClaim(&'static str),
    /// The token was made for something else (e.g. not an invite).
    #[error("token has the wrong purpose")]
    WrongPurpose,
}

/// The signing secrets: a primary one, used for everything issued here, and an optional second
/// ("unified") one also accepted when verifying access tokens.
#[derive(Clone)]
pub struct JwtKeys {
    primary: Vec<u8>,
    unified: Option<Vec<u8>>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("primary", &"<redacted>")
            .field("unified", &self.unified.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What a valid invite token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteClaims {
    /// The invited (not yet active) user.
    pub user_id: ObjectId,
    /// The address the invite was sent to.
    pub email: String,
}

/// What a valid password reset token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetClaims {
    /// The user whose password may be reset.
    pub user_id: ObjectId,
    /// [`password_fingerprint`] of the user's hashed password when the token was issued; the
    /// reset must be refused if it no longer matches.
    pub password_fingerprint: String,
}

/// Hex SHA-256 of a stored password hash, used as the `password_fgpt` claim so that a reset
/// token stops working once the password has changed.
pub fn password_fingerprint(hashed_password: &str) -> String {
    Sha256::digest(hashed_password.as_bytes()).iter().fold(
        String::with_capacity(64),
        |mut hex, byte| {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
            hex
        },
    )
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Sign `claims` with `secret`.
fn encode(secret: &[u8], claims: &Value) -> String {
    kernelci_model::jwt::sign(secret, claims)
}

/// Check the structure, algorithm, signature and expiry of `token` and return its claims.
fn decode(secret: &[u8], token: &str) -> Result<Claims, TokenError> {
    use kernelci_model::jwt::{JwtError, verify};
    let claims = match verify(&[secret], token) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(JwtError::Malformed) => return Err(TokenError::Malformed),
        Err(JwtError::Algorithm) => return Err(TokenError::BadAlgorithm),
        Err(JwtError::Signature) => return Err(TokenError::BadSignature),
    };
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_f64().ok_or(TokenError::Malformed)?;
        // PyJWT: expired when `exp <= now`.
        if exp <= now() as f64 {
            return Err(TokenError::Expired);
        }
    }
    Ok(claims)
}

/// The `aud` claim must be `audience` or a list containing it (PyJWT's rule).
fn check_audience(claims: &Claims, audience: &str) -> Result<(), TokenError> {
    let accepted = match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(audience)),
        _ => false,
    };
    accepted.then_some(()).ok_or(TokenError::BadAudience)
}

/// The `sub` claim as a user id.
fn subject(claims: &Claims) -> Result<ObjectId, TokenError> {
    match claims.get("sub") {
        None | Some(Value::Null) => Err(TokenError::MissingSubject),
        Some(Value::String(sub)) => ObjectId::parse(sub).map_err(|_| TokenError::InvalidSubject),
        Some(_) => Err(TokenError::InvalidSubject),
    }
}

/// A required string claim.
fn string_claim(claims: &Claims, name: &'static str) -> Result<String, TokenError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(TokenError::MissingClaim(name))
}

impl JwtKeys {
    /// Keys from the primary secret and an optional unified secret; an empty unified secret
    /// means none.
    pub fn new(primary: &str, unified: Option<&str>) -> JwtKeys {
        JwtKeys {
            primary: primary.as_bytes().to_vec(),
            unified: unified
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec()),
        }
    }

    /// A fastapi-users access token for `user_id`: claims exactly
    /// `{"sub": "<24-hex id>", "aud": ["fastapi-users:auth"], "exp": now + ttl}`, signed with the
    /// primary secret. With `ttl_secs` `None` there is no `exp` claim and the token never
    /// expires.
    pub fn issue_access(&self, user_id: &ObjectId, ttl_secs: Option<i64>) -> String {
        let mut claims = json!({"sub": user_id.to_string(), "aud": [ACCESS_AUDIENCE]});
        if let (Some(ttl), Value::Object(map)) = (ttl_secs, &mut claims) {
            map.insert("exp".into(), now().saturating_add(ttl).into());
        }
        encode(&self.primary, &claims)
    }

    /// Verify an access token and return its user id.
    ///
    /// The token is checked against the primary secret and, on any failure, again against the
    /// unified secret if one is configured. It must be HS256, its `aud` must be (or contain)
    /// `fastapi-users:auth`, its `exp` (if any) in the future and its `sub` a user id; other
    /// claims are ignored.
    pub fn verify_access(&self, token: &str) -> Result<ObjectId, TokenError> {
        let verify = |secret: &[u8]| {
            let claims = decode(secret, token)?;
            check_audience(&claims, ACCESS_AUDIENCE)?;
            subject(&claims)
        };
        match (verify(&self.primary), &self.unified) {
            (Ok(id), _) => Ok(id),
            (Err(primary_err), None) => Err(primary_err),
            // Report why the unified attempt failed, unless it merely did not sign the token.
            (Err(primary_err), Some(unified)) => match verify(unified) {
                Err(TokenError::BadSignature) => Err(primary_err),
                other => other,
            },
        }
    }

    /// An invite token (python-jose shape, no audience):
    /// `{"sub": id, "email": email, "purpose": "invite", "iat": now, "exp": now + ttl}`, signed
    /// with the primary secret.
    pub fn issue_invite(&self, user_id: &ObjectId, email: &str, ttl_secs: i64) -> String {
        let now = now();
        let claims = json!({
            "sub": user_id.to_string(),
            "email": email,
            "purpose": INVITE_PURPOSE,
            "iat": now,
            "exp": now.saturating_add(ttl_secs),
        });
        encode(&self.primary, &claims)
    }

    /// Verify an invite token: signature (primary secret only), expiry, `purpose` (must be
    /// `"invite"`, else [`TokenError::WrongPurpose`]), `sub` and `email`.
    pub fn verify_invite(&self, token: &str) -> Result<InviteClaims, TokenError> {
        let claims = decode(&self.primary, token)?;
        if claims.get("purpose").and_then(Value::as_str) != Some(INVITE_PURPOSE) {
            return Err(TokenError::WrongPurpose);
        }
        Ok(InviteClaims {
            user_id: subject(&claims)?,
            email: string_claim(&claims, "email")?,
        })
    }

    /// A fastapi-users password reset token valid for an hour:
    /// `{"sub": id, "password_fgpt": fingerprint, "aud": "fastapi-users:reset", "exp": ...}`,
    /// where `password_fingerprint` comes from [`password_fingerprint`].
    pub fn issue_reset(&self, user_id: &ObjectId, password_fingerprint: &str) -> String {
        let claims = json!({
            "sub": user_id.to_string(),
            "password_fgpt": password_fingerprint,
            "aud": RESET_AUDIENCE,
            "exp": now().saturating_add(RESET_TTL_SECS),
        });
        encode(&self.primary, &claims)
    }

    /// Verify a password reset token (primary secret only, audience `fastapi-users:reset`).
    /// The caller must still compare the fingerprint with the user's current password hash.
    pub fn verify_reset(&self, token: &str) -> Result<ResetClaims, TokenError> {
        let claims = decode(&self.primary, token)?;
        check_audience(&claims, RESET_AUDIENCE)?;
        Ok(ResetClaims {
            user_id: subject(&claims)?,
            password_fingerprint: string_claim(&claims, "password_fgpt")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};

    fn mac(secret: &[u8]) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(secret).expect("any key length")
    }

    fn json_object(segment: &str) -> Result<Claims, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| TokenError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(TokenError::Malformed),
        }
    }

    const SUB: &str = "6526448e7d140ee220971a0e";
    /// Made with Python's standard library (json.dumps with compact separators, hmac, hashlib,
    /// base64.urlsafe_b64encode stripped of "="), secret "s3cret", claims
    /// {"sub": SUB, "aud": ["fastapi-users:auth"]}.
    const PYTHON_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJzdWIiOiI2NTI2NDQ4ZTdkMTQwZWUyMjA5NzFhMGUiLCJhdWQiOlsiZmFzdGFwaS11c2VyczphdXRoIl19.\
        N0MoXEWnk-Oeef9AuVq-OSCYyYUbWiGLKiw_dy7PtRo";

    fn id() -> ObjectId {
        ObjectId::parse(SUB).expect("valid id")
    }

    fn keys() -> JwtKeys {
        JwtKeys::new("s3cret", None)
    }

    #[test]
    fn access_round_trip() {
        let keys = keys();
        assert_eq!(
            keys.verify_access(&keys.issue_access(&id(), Some(3600))),
            Ok(id())
        );
        assert_eq!(
            keys.verify_access(&keys.issue_access(&id(), None)),
            Ok(id())
        );
    }

    #[test]
    fn access_claims_are_exactly_fastapi_users() {
        let token = keys().issue_access(&id(), Some(60));
        let payload = token.split('.').nth(1).expect("payload");
        let claims = json_object(payload).expect("claims");
        let keys: Vec<&str> = claims.keys().map(String::as_str).collect();
        assert_eq!(keys, ["sub", "aud", "exp"]);
        assert_eq!(claims["aud"], json!(["fastapi-users:auth"]));
        let exp = claims["exp"].as_i64().expect("integer exp");
        assert!((exp - now() - 60).abs() <= 1);
    }

    #[test]
    fn python_token_verifies_and_matches() {
        assert_eq!(keys().verify_access(PYTHON_TOKEN), Ok(id()));
        // Same claims, same bytes: without exp our token is identical to the reference.
        assert_eq!(keys().issue_access(&id(), None), PYTHON_TOKEN);
    }

    #[test]
    fn unified_secret() {
        let token = JwtKeys::new("other", None).issue_access(&id(), Some(60));
        assert_eq!(
            JwtKeys::new("s3cret", Some("other")).verify_access(&token),
            Ok(id())
        );
        assert_eq!(keys().verify_access(&token), Err(TokenError::BadSignature));
        // An empty unified secret is no unified secret.
        let empty_signed = JwtKeys::new("", None).issue_access(&id(), None);
        let keys = JwtKeys::new("s3cret", Some(""));
        assert_eq!(
            keys.verify_access(&empty_signed),
            Err(TokenError::BadSignature)
        );
        // Invites and resets only trust the primary secret.
        let unified = JwtKeys::new("s3cret", Some("other"));
        let invite = JwtKeys::new("other", None).issue_invite(&id(), "a@b.c", 60);
        assert_eq!(
            unified.verify_invite(&invite),
            Err(TokenError::BadSignature)
        );
        let reset = JwtKeys::new("other", None).issue_reset(&id(), "f");
        assert_eq!(unified.verify_reset(&reset), Err(TokenError::BadSignature));
    }

    #[test]
    fn unified_errors_are_informative() {
        let claims = json!({"sub": SUB, "aud": ACCESS_AUDIENCE, "exp": now() - 10});
        let keys = JwtKeys::new("s3cret", Some("other"));
        assert_eq!(
            keys.verify_access(&encode(b"other", &claims)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            keys.verify_access(&encode(b"s3cret", &claims)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            keys.verify_access(&encode(b"x", &claims)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn wrong_secret_fails() {
        let token = keys().issue_access(&id(), None);
        assert_eq!(
            JwtKeys::new("nope", None).verify_access(&token),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expiry() {
        let keys = keys();
        assert_eq!(
            keys.verify_access(&keys.issue_access(&id(), Some(-1))),
            Err(TokenError::Expired)
        );
        let expired = json!({"sub": SUB, "aud": [ACCESS_AUDIENCE], "exp": now()});
        assert_eq!(
            keys.verify_access(&encode(b"s3cret", &expired)),
            Err(TokenError::Expired)
        );
        let float = json!({"sub": SUB, "aud": [ACCESS_AUDIENCE], "exp": now() as f64 + 100.5});
        assert_eq!(keys.verify_access(&encode(b"s3cret", &float)), Ok(id()));
        let text = json!({"sub": SUB, "aud": [ACCESS_AUDIENCE], "exp": "soon"});
        assert_eq!(
            keys.verify_access(&encode(b"s3cret", &text)),
            Err(TokenError::Malformed)
        );
        // Huge lifetimes saturate instead of overflowing.
        assert_eq!(
            keys.verify_access(&keys.issue_access(&id(), Some(i64::MAX))),
            Ok(id())
        );
    }

    #[test]
    fn audience() {
        let keys = keys();
        let verify = |aud: Value| {
            let claims = json!({"sub": SUB, "aud": aud});
            keys.verify_access(&encode(b"s3cret", &claims))
        };
        assert_eq!(verify(json!(ACCESS_AUDIENCE)), Ok(id()));
        assert_eq!(verify(json!(["x", ACCESS_AUDIENCE])), Ok(id()));
        assert_eq!(
            verify(json!("fastapi-users:reset")),
            Err(TokenError::BadAudience)
        );
        assert_eq!(verify(json!(["x"])), Err(TokenError::BadAudience));
        assert_eq!(verify(json!(null)), Err(TokenError::BadAudience));
        assert_eq!(verify(json!(7)), Err(TokenError::BadAudience));
        let no_aud = encode(b"s3cret", &json!({"sub": SUB}));
        assert_eq!(keys.verify_access(&no_aud), Err(TokenError::BadAudience));
        // A reset token is not an access token and vice versa.
        let reset = keys.issue_reset(&id(), "f");
        assert_eq!(keys.verify_access(&reset), Err(TokenError::BadAudience));
        let access = keys.issue_access(&id(), None);
        assert_eq!(keys.verify_reset(&access), Err(TokenError::BadAudience));
    }

    #[test]
    fn subject_rules() {
        let keys = keys();
        let verify = |claims: Value| keys.verify_access(&encode(b"s3cret", &claims));
        assert_eq!(
            verify(json!({"aud": ACCESS_AUDIENCE})),
            Err(TokenError::MissingSubject)
        );
        let bad = json!({"sub": "not-an-id", "aud": ACCESS_AUDIENCE});
        assert_eq!(verify(bad), Err(TokenError::InvalidSubject));
        assert_eq!(
            verify(json!({"sub": 5, "aud": ACCESS_AUDIENCE})),
            Err(TokenError::InvalidSubject)
        );
        let extra = json!({"sub": SUB, "aud": ACCESS_AUDIENCE, "iat": 1, "foo": {"bar": [1]}});
        assert_eq!(verify(extra), Ok(id()));
    }

    #[test]
    fn malformed_tokens_never_panic() {
        let keys = JwtKeys::new("s3cret", Some("other"));
        let good = keys.issue_access(&id(), None);
        let (header, rest) = good.split_once('.').expect("dot");
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let cases = [
            ("", TokenError::Malformed),
            ("a", TokenError::Malformed),
            ("a.b", TokenError::Malformed),
            ("a.b.c", TokenError::Malformed),
            ("..", TokenError::Malformed),
            ("é.é.é", TokenError::Malformed),
            (&format!("{good}.x"), TokenError::Malformed),
            (&format!("{good}=="), TokenError::Malformed),
            (&format!("{none_header}.{rest}"), TokenError::BadAlgorithm),
            (&format!("{header}.{rest}x"), TokenError::BadSignature),
            (&format!("{header}.{rest}!"), TokenError::Malformed),
            (
                &format!("{header}.e30.{}", rest.split('.').nth(1).expect("sig")),
                TokenError::BadSignature,
            ),
        ];
        for (token, err) in cases {
            assert_eq!(keys.verify_access(token), Err(err.clone()), "{token}");
            assert_eq!(keys.verify_invite(token), Err(err.clone()), "{token}");
            assert_eq!(keys.verify_reset(token), Err(err), "{token}");
        }
        // A non-object payload with a valid signature.
        let array = {
            let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode("[1]"));
            let mut mac = mac(b"s3cret");
            mac.update(input.as_bytes());
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        };
        assert_eq!(keys.verify_access(&array), Err(TokenError::Malformed));
    }

    #[test]
    fn invite_round_trip() {
        let keys = keys();
        let token = keys.issue_invite(&id(), "user@example.org", 600);
        let claims = keys.verify_invite(&token).expect("valid invite");
        assert_eq!(
            claims,
            InviteClaims {
                user_id: id(),
                email: "user@example.org".into()
            }
        );
        let payload = json_object(token.split('.').nth(1).expect("payload")).expect("claims");
        assert_eq!(payload["purpose"], "invite");
        assert!(!payload.contains_key("aud"));
        assert_eq!(
            payload["exp"].as_i64(),
            payload["iat"].as_i64().map(|iat| iat + 600)
        );
    }

    #[test]
    fn invite_rejections() {
        let keys = keys();
        let expired = keys.issue_invite(&id(), "a@b.c", -5);
        assert_eq!(keys.verify_invite(&expired), Err(TokenError::Expired));
        let access = keys.issue_access(&id(), None);
        assert_eq!(keys.verify_invite(&access), Err(TokenError::WrongPurpose));
        let other = encode(
            b"s3cret",
            &json!({"sub": SUB, "email": "a@b.c", "purpose": "reset"}),
        );
        assert_eq!(keys.verify_invite(&other), Err(TokenError::WrongPurpose));
        let no_email = encode(b"s3cret", &json!({"sub": SUB, "purpose": "invite"}));
        assert_eq!(
            keys.verify_invite(&no_email),
            Err(TokenError::MissingClaim("email"))
        );
        let no_sub = encode(b"s3cret", &json!({"email": "a@b.c", "purpose": "invite"}));
        assert_eq!(keys.verify_invite(&no_sub), Err(TokenError::MissingSubject));
        // An invite is not an access token.
        let invite = keys.issue_invite(&id(), "a@b.c", 60);
        assert_eq!(keys.verify_access(&invite), Err(TokenError::BadAudience));
    }

    #[test]
    fn reset_round_trip() {
        let keys = keys();
        let fgpt = password_fingerprint("$argon2id$v=19$m=65536,t=3,p=4$salt$hash");
        let token = keys.issue_reset(&id(), &fgpt);
        let claims = keys.verify_reset(&token).expect("valid reset");
        assert_eq!(
            claims,
            ResetClaims {
                user_id: id(),
                password_fingerprint: fgpt
            }
        );
        let payload = json_object(token.split('.').nth(1).expect("payload")).expect("claims");
        assert_eq!(payload["aud"], RESET_AUDIENCE);
        let exp = payload["exp"].as_i64().expect("exp");
        assert!((exp - now() - 3600).abs() <= 1);
        let no_fgpt = encode(b"s3cret", &json!({"sub": SUB, "aud": RESET_AUDIENCE}));
        assert_eq!(
            keys.verify_reset(&no_fgpt),
            Err(TokenError::MissingClaim("password_fgpt"))
        );
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        assert_eq!(
            password_fingerprint("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(password_fingerprint("a"), password_fingerprint("b"));
    }

    #[test]
    fn debug_hides_secrets() {
        let text = format!("{:?}", JwtKeys::new("s3cret", Some("other")));
        assert!(
            !text.contains("s3cret") && !text.contains("other"),
            "{text}"
        );
    }
}
