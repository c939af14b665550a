//! Password hashing compatible with fastapi-users' pwdlib helper.
//!
//! New hashes are argon2id PHC strings with pwdlib's (argon2-cffi's) default parameters
//! (`m=65536, t=3, p=4`, 16-byte salt, 32-byte output). Hashes from older deployments are
//! bcrypt (`$2a$`, `$2b$`, `$2y$`); they still verify, and a successful check returns an
//! argon2id rehash to store, as fastapi-users does on login.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kernelci_model::id::random_bytes;

/// pwdlib's argon2 memory cost, in KiB.
const MEMORY_KIB: u32 = 65536;
/// pwdlib's argon2 number of passes.
const TIME_COST: u32 = 3;
/// pwdlib's argon2 parallelism.
const PARALLELISM: u32 = 4;
/// Stored argon2 hashes asking for more memory than this (KiB) are refused rather than run: an
/// absurd `m` would make verification allocate terabytes.
const MAX_MEMORY_KIB: u32 = 1 << 20;
/// Stored argon2 hashes asking for more passes than this are refused rather than run.
const MAX_TIME_COST: u32 = 64;

/// Hashing a password failed (argon2 rejected its input).
#[derive(Debug, thiserror::Error)]
#[error("could not hash the password: {0}")]
pub struct PasswordError(argon2::password_hash::Error);

/// The outcome of [`verify_password`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The password matches the hash.
    pub ok: bool,
    /// A fresh argon2id hash of the password to store instead of the old one: set when a
    /// legacy bcrypt hash verified.
    pub rehash: Option<String>,
}

/// Hash `password` as an argon2id PHC string (`$argon2id$v=19$m=65536,t=3,p=4$...`) with a
/// random 16-byte salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let params = Params::new(MEMORY_KIB, TIME_COST, PARALLELISM, None)
        .map_err(|e| PasswordError(e.into()))?;
    let mut salt = [0u8; 16];
    random_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError)?;
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(PasswordError)?;
    Ok(hash.to_string())
}

/// Check `password` against a stored bcrypt or argon2 hash. Anything else, including a
/// malformed hash, gives `ok: false`; this never panics.
pub fn verify_password(password: &str, hashed: &str) -> Verified {
    let failed = Verified {
        ok: false,
        rehash: None,
    };
    if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| hashed.starts_with(prefix))
    {
        // Truncating verify on purpose: passlib/pwdlib hashed the first 72 bytes.
        if bcrypt::verify(password, hashed).unwrap_or(false) {
            Verified {
                ok: true,
                rehash: hash_password(password).ok(),
            }
        } else {
            failed
        }
    } else if hashed.starts_with("$argon2") {
        Verified {
            ok: verify_argon2(password, hashed),
            rehash: None,
        }
    } else {
        failed
    }
}

fn verify_argon2(password: &str, hashed: &str) -> bool {
    let Ok(hash) = PasswordHash::new(hashed) else {
        return false;
    };
    let within = |name: &str, max: u32| hash.params.get_decimal(name).is_some_and(|v| v <= max);
    // The hash carries its own algorithm, version and parameters; Argon2::default() uses them.
    within("m", MAX_MEMORY_KIB)
        && within("t", MAX_TIME_COST)
        && Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
}

/// A random password for accounts created without one: 32 random bytes, base64url without
/// padding (43 characters), like Python's `secrets.token_urlsafe(32)`.
pub fn random_password() -> String {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bcrypt.hashpw(b"hello", bcrypt.gensalt(12))` from Python's bcrypt.
    const BCRYPT_HELLO: &str = "$2b$12$WBdOn6ObODnu86JElMT95.cwb9Lk2qk2gQGLGghe3F0XJFzw2D8yO";
    /// `PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("hello")` from
    /// argon2-cffi.
    const ARGON2_HELLO: &str = "$argon2id$v=19$m=65536,t=3,p=4$CxI+UD+Ho5h8Ct55ZRQcbg$CNfylfTfGWsCx+VFFEmlnV4vb5+MP1MBDenmtM9h2Y4";

    #[test]
    fn hash_round_trip() {
        let hash = hash_password("s3cret pässword").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
            "{hash}"
        );
        assert_eq!(
            verify_password("s3cret pässword", &hash),
            Verified {
                ok: true,
                rehash: None
            }
        );
        assert!(!verify_password("s3cret password", &hash).ok);
        // Random salts: hashing twice differs.
        assert_ne!(hash, hash_password("s3cret pässword").expect("hash"));
    }

    #[test]
    fn argon2_reference() {
        assert_eq!(
            verify_password("hello", ARGON2_HELLO),
            Verified {
                ok: true,
                rehash: None
            }
        );
        assert!(!verify_password("hellO", ARGON2_HELLO).ok);
        assert!(!verify_password("", ARGON2_HELLO).ok);
    }

    #[test]
    fn bcrypt_reference_and_upgrade() {
        let verified = verify_password("hello", BCRYPT_HELLO);
        assert!(verified.ok);
        let rehash = verified.rehash.expect("bcrypt hashes are upgraded");
        assert!(
            rehash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
            "{rehash}"
        );
        assert_eq!(
            verify_password("hello", &rehash),
            Verified {
                ok: true,
                rehash: None
            }
        );
        assert_eq!(
            verify_password("hellO", BCRYPT_HELLO),
            Verified {
                ok: false,
                rehash: None
            }
        );
        for prefix in ["$2a$", "$2y$"] {
            let variant = BCRYPT_HELLO.replacen("$2b$", prefix, 1);
            assert!(verify_password("hello", &variant).ok, "{variant}");
        }
    }

    #[test]
    fn garbage_hashes_fail() {
        let huge_memory = ARGON2_HELLO.replace("m=65536", "m=4294967295");
        let huge_time = ARGON2_HELLO.replace("t=3", "t=4294967295");
        let cases = [
            "",
            "hello",
            "$2b$",
            "$2b$12$short",
            "$2b$99$WBdOn6ObODnu86JElMT95.cwb9Lk2qk2gQGLGghe3F0XJFzw2D8yO",
            "$2b$12$WBdOn6ObODnu86JElMT95.cwb9Lk2qk2gQGLGghe3F0XJFzw2D8yé",
            "$2x$12$WBdOn6ObODnu86JElMT95.cwb9Lk2qk2gQGLGghe3F0XJFzw2D8yO",
            "$argon2",
            "$argon2id$",
            "$argon2id$v=19$m=65536,t=3,p=4$!!!$???",
            "$argon2id$v=19$m=1,t=1,p=1$CxI+UD+Ho5h8Ct55ZRQcbg$CNfylfTfGWsCx+VFFEmlnV4vb5+MP1MBDenmtM9h2Y4",
            "$argon2xx$v=19$m=65536,t=3,p=4$CxI+UD+Ho5h8Ct55ZRQcbg$CNfylfTfGWsCx+VFFEmlnV4vb5+MP1MBDenmtM9h2Y4",
            &huge_memory,
            &huge_time,
            "$pbkdf2-sha256$29000$abc$def",
        ];
        for hash in cases {
            assert_eq!(
                verify_password("hello", hash),
                Verified {
                    ok: false,
                    rehash: None
                },
                "{hash}"
            );
        }
    }

    #[test]
    fn random_passwords() {
        let a = random_password();
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{a}"
        );
        assert_ne!(a, random_password());
    }
}
