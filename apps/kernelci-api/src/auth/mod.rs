//! Authentication primitives compatible with the Python Maestro API, which is built on
//! fastapi-users.
//!
//! - [`JwtKeys`] issues and verifies HS256 JSON Web Tokens byte-compatible with fastapi-users
//!   (PyJWT): access tokens carry `{"sub", "aud": ["fastapi-users:auth"], "exp"}` and password
//!   reset tokens `{"sub", "password_fgpt", "aud": "fastapi-users:reset", "exp"}`. Invite
//!   tokens follow the python-jose shape the Maestro API uses (`purpose: "invite"`, no audience).
//!   Access tokens signed with an optional second ("unified") secret are accepted too, so tokens
//!   shared with a sibling deployment keep working.
//! - [`hash_password`] / [`verify_password`] speak pwdlib's formats: new hashes are argon2id
//!   with pwdlib's parameters, legacy bcrypt hashes still verify and come back with an argon2id
//!   rehash, as fastapi-users upgrades them on login.
//!
//! Everything here is pure (no IO) and never panics on untrusted input.

mod jwt;
mod password;

pub use jwt::{InviteClaims, JwtKeys, ResetClaims, TokenError, password_fingerprint};
pub use password::{PasswordError, Verified, hash_password, random_password, verify_password};
