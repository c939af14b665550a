//! Request extractors with upstream-shaped errors: JSON bodies (422 with the parse error,
//! 413 past the size limit), forms, query pairs, and the authenticated user.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use kernelci_model::User;
use kernelci_model::error::{FieldError, Loc};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Largest accepted request body (upstream's ingress allows 32 MB for result hierarchies).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

async fn read_body(req: Request) -> ApiResult<axum::body::Bytes> {
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::Detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body too large (limit {MAX_BODY_BYTES} bytes)"),
            )
        })
}

/// A JSON request body as a value.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req).await?;
        if bytes.is_empty() {
            return Err(ApiError::invalid_field(
                &["body"],
                "missing",
                "Field required",
                Value::Null,
            ));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::invalid_field(
                &["body", &e.column().to_string()],
                "json_invalid",
                &format!("JSON decode error: {e}"),
                Value::Object(Default::default()),
            )
        })?;
        reject_nul(&value, &mut vec![Loc::Key("body".into())])?;
        Ok(JsonBody(value))
    }
}

/// PostgreSQL text cannot hold NUL characters, so no input may carry one (on any backend):
/// a 422 naming the first offending string or key.
pub(crate) fn reject_nul(v: &Value, at: &mut Vec<Loc>) -> ApiResult<()> {
    let fail = |at: &[Loc], input: &Value| {
        Err(ApiError::Validation(vec![FieldError::at(
            "string_nul",
            at.to_vec(),
            "String should not contain NUL characters",
            input.clone(),
        )]))
    };
    match v {
        Value::String(s) if s.contains('\0') => fail(at, v),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Loc::Index(i));
                reject_nul(item, at)?;
                at.pop();
            }
            Ok(())
        }
        Value::Object(m) => {
            for (k, item) in m {
                at.push(Loc::Key(k.clone()));
                if k.contains('\0') {
                    return fail(at, &Value::from(k.as_str()));
                }
                reject_nul(item, at)?;
                at.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// An `application/x-www-form-urlencoded` body as ordered pairs.
pub struct FormBody(pub Vec<(String, String)>);

impl FormBody {
    /// The last value of a field.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A required field, or the FastAPI 422.
    pub fn require(&self, key: &str) -> ApiResult<&str> {
        self.get(key).ok_or_else(|| {
            ApiError::invalid_field(&["body", key], "missing", "Field required", Value::Null)
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req).await?;
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        for (k, v) in &pairs {
            let mut at = vec![Loc::Key("body".into()), Loc::Key(k.clone())];
            reject_nul(&Value::from(v.as_str()), &mut at)?;
        }
        Ok(FormBody(pairs))
    }
}

/// The query string as decoded pairs, in order.
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    /// The last value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Pairs except the given keys.
    pub fn without<'a>(&'a self, skip: &'a [&str]) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .iter()
            .filter(move |(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// An optional integer query parameter with a minimum (422 otherwise, as FastAPI).
    pub fn int(&self, key: &str, min: i64) -> ApiResult<Option<i64>> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        let n: i64 = raw.trim().parse().map_err(|_| {
            ApiError::invalid_field(
                &["query", key],
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
                Value::from(raw),
            )
        })?;
        if n < min {
            return Err(ApiError::invalid_field(
                &["query", key],
                "greater_than_equal",
                &format!("Input should be greater than or equal to {min}"),
                Value::from(raw),
            ));
        }
        Ok(Some(n))
    }

    /// An optional boolean query parameter (`true/1/yes/on`, `false/0/no/off`; 422 otherwise).
    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Some(true)),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(Some(false)),
            _ => Err(ApiError::invalid_field(
                &["query", key],
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
                Value::from(raw),
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(QueryPairs(
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ))
    }
}

/// The bearer token of a request, if any (`Authorization: Bearer <jwt>`, scheme case-insensitive).
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// An active user authenticated by a bearer token (401 otherwise).
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let id = state
            .keys
            .verify_access(token)
            .map_err(|_| ApiError::unauthorized())?;
        let user = match state.users.get(&id) {
            Some(user) => Some(user),
            None => {
                let user = state.store.get_user(&id).await?;
                if let Some(u) = &user {
                    state.users.put(u);
                }
                user
            }
        };
        match user {
            Some(user) if user.is_active => Ok(CurrentUser(user)),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// Extractors for an authenticated user who must also pass a check (403 otherwise).
macro_rules! user_with {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        pub struct $name(pub User);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
                let check: fn(&User) -> bool = $check;
                if !check(&user) {
                    return Err(ApiError::forbidden());
                }
                Ok($name(user))
            }
        }
    };
}

user_with!(
    /// An active and verified user (403 if unverified).
    VerifiedUser,
    |u| u.is_verified
);
user_with!(
    /// An active superuser (403 otherwise).
    AdminUser,
    |u| u.is_superuser
);
