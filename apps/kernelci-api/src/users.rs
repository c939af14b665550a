//! Users, authentication and user groups (fastapi-users compatible): login and logout,
//! invites, password reset and change, user lookup and update, and the admin-only
//! `/user-groups` routes.
//!
//! Bodies are validated by hand into FastAPI-shaped 422s; password hashing (argon2, slow and
//! memory-hungry) runs on the blocking pool. Users and groups are few, so list filters are
//! applied in memory.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use kernelci_model::{FieldError, ObjectId, User, UserGroup, UserRead};
use kernelci_store::StoreError;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::AppState;
use crate::auth::{self, TokenError};
use crate::error::{ApiError, ApiResult};
use crate::extract::{AdminUser, CurrentUser, FormBody, JsonBody, QueryPairs, VerifiedUser};
use crate::mail::Mail;

// fastapi-users error codes and fixed messages.
const BAD_CREDENTIALS: &str = "LOGIN_BAD_CREDENTIALS";
const NOT_VERIFIED: &str = "LOGIN_USER_NOT_VERIFIED";
const BAD_RESET_TOKEN: &str = "RESET_PASSWORD_BAD_TOKEN";
const EMAIL_TAKEN: &str = "UPDATE_USER_EMAIL_ALREADY_EXISTS";
const USER_EXISTS: &str = "REGISTER_USER_ALREADY_EXISTS";
const REGISTRATION_DISABLED: &str = "User registration is disabled; use /user/invite instead.";
const GROUP_IN_USE: &str =
    "User group is assigned to users and cannot be deleted. Remove it from users first.";

/// The user and user-group routes (mounted under `/latest` and `/v0` by the caller).
///
/// Static `/user/...` paths also answer GET/PATCH/DELETE like `/user/{id}` would with that
/// segment as the id (FastAPI falls through to the `{id}` route when the method does not
/// match; axum would answer 405), so e.g. `GET /user/me` is upstream's 404.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/user/login", with_user_id_methods(post(login)))
        .route("/user/logout", with_user_id_methods(post(logout)))
        .route("/user/register", with_user_id_methods(post(register)))
        .route(
            "/user/invite",
            post(invite)
                .get(crate::html::invite_form)
                .patch(update_user)
                .delete(delete_user),
        )
        .route("/user/invite/url", get(invite_url))
        .route(
            "/user/accept-invite",
            post(accept_invite)
                .get(crate::html::accept_invite_form)
                .patch(update_user)
                .delete(delete_user),
        )
        .route(
            "/user/forgot-password",
            with_user_id_methods(post(forgot_password)),
        )
        .route(
            "/user/reset-password",
            with_user_id_methods(post(reset_password)),
        )
        .route(
            "/user/update-password",
            with_user_id_methods(post(update_password)),
        )
        .route(
            "/user/me",
            get(get_user).patch(update_me).delete(delete_user),
        )
        .route(
            "/user/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/whoami", get(whoami))
        .route("/users", get(list_users))
        .route("/user-groups", get(list_groups).post(create_group))
        .route(
            "/user-groups/{group_id}",
            get(get_group).delete(delete_group),
        )
}

/// Adds the `/user/{id}` GET, PATCH and DELETE handlers to a static `/user/...` POST route.
fn with_user_id_methods(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.get(get_user).patch(update_user).delete(delete_user)
}

// ---------------------------------------------------------------------------------------------
// Response shapes

/// `POST /user/login` answer.
#[derive(Serialize)]
struct AccessToken {
    access_token: String,
    token_type: &'static str,
}

/// `GET /user/invite/url` answer.
#[derive(Serialize)]
struct InviteUrls {
    public_base_url: String,
    accept_invite_url: String,
}

/// `POST /user/invite` answer (`UserInviteResponse`).
#[derive(Serialize)]
struct InviteResponse {
    user: UserRead,
    email_sent: bool,
    public_base_url: String,
    accept_invite_url: String,
    invite_url: Option<String>,
    token: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Request validation

/// Whether a body field must be present, may be null, or has a default (absent is fine, null
/// is a type error), as pydantic distinguishes them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Nullable,
    Defaulted,
}

/// Reads the fields of a JSON object body, collecting FastAPI-style 422 errors.
struct BodyReader<'a> {
    body: &'a Value,
    fields: Option<&'a Map<String, Value>>,
    errors: Vec<FieldError>,
}

impl<'a> BodyReader<'a> {
    fn new(body: &'a Value) -> Self {
        let fields = body.as_object();
        let mut errors = Vec::new();
        if fields.is_none() {
            errors.push(FieldError::new(
                "model_attributes_type",
                vec!["body".into()],
                "Input should be a valid dictionary or object to extract fields from",
                body.clone(),
            ));
        }
        BodyReader {
            body,
            fields,
            errors,
        }
    }

    fn fail(&mut self, loc: &[&str], kind: &str, msg: &str, input: Value) {
        let loc = std::iter::once("body")
            .chain(loc.iter().copied())
            .map(String::from)
            .collect();
        self.errors.push(FieldError::new(kind, loc, msg, input));
    }

    /// The field's value, or None when absent (an error if required) or null and nullable.
    fn field(&mut self, name: &str, need: Need) -> Option<&'a Value> {
        match self.fields?.get(name) {
            None => {
                if need == Need::Required {
                    self.fail(&[name], "missing", "Field required", self.body.clone());
                }
                None
            }
            Some(Value::Null) if need == Need::Nullable => None,
            Some(value) => Some(value),
        }
    }

    fn string(&mut self, name: &str, need: Need) -> Option<String> {
        match self.field(name, need)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.fail(
                    &[name],
                    "string_type",
                    "Input should be a valid string",
                    other.clone(),
                );
                None
            }
        }
    }

    /// A string that must be an e-mail address; the domain is lowercased like pydantic's
    /// `EmailStr` does.
    fn email(&mut self, name: &str, need: Need) -> Option<String> {
        let email = self.string(name, need)?;
        match email_problem(&email) {
            None => Some(normalize_email(&email)),
            Some(reason) => {
                let msg = format!("value is not a valid email address: {reason}");
                self.fail(&[name], "value_error", &msg, Value::String(email));
                None
            }
        }
    }

    /// A boolean in pydantic's lax mode (also `0`/`1` and strings like `"yes"`).
    fn boolean(&mut self, name: &str, need: Need) -> Option<bool> {
        let value = self.field(name, need)?;
        let parsed = match value {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => match n.as_f64() {
                Some(0.0) => Some(false),
                Some(1.0) => Some(true),
                _ => None,
            },
            Value::String(s) => parse_lax_bool(s),
            other => {
                self.fail(
                    &[name],
                    "bool_type",
                    "Input should be a valid boolean",
                    other.clone(),
                );
                return None;
            }
        };
        if parsed.is_none() {
            let msg = "Input should be a valid boolean, unable to interpret input";
            self.fail(&[name], "bool_parsing", msg, value.clone());
        }
        parsed
    }

    /// A list of unique group names (absent or null: empty).
    fn group_names(&mut self, name: &str) -> Vec<String> {
        let Some(value) = self.field(name, Need::Nullable) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.fail(
                &[name],
                "list_type",
                "Input should be a valid list",
                value.clone(),
            );
            return Vec::new();
        };
        let mut names = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => names.push(s.clone()),
                other => {
                    let index = index.to_string();
                    let msg = "Input should be a valid string";
                    self.fail(&[name, &index], "string_type", msg, other.clone());
                }
            }
        }
        if names
            .iter()
            .enumerate()
            .any(|(i, n)| names[..i].contains(n))
        {
            let msg = "Value error, Groups must have unique names.";
            self.fail(&[name], "value_error", msg, value.clone());
        }
        names
    }

    fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

fn parse_lax_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// Why `email` is not an address (exactly one `@`, a non-empty local part, a dotted domain,
/// no whitespace), in email-validator's words; None if it is fine.
fn email_problem(email: &str) -> Option<&'static str> {
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("The email address contains invalid characters.");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Some("An email address must have an @-sign.");
    };
    if domain.contains('@') {
        Some("The email address is not valid. It must have exactly one @-sign.")
    } else if local.is_empty() {
        Some("There must be something before the @-sign.")
    } else if domain.is_empty() {
        Some("There must be something after the @-sign.")
    } else if domain.starts_with('.') {
        Some("An email address cannot have a period immediately after the @-sign.")
    } else if domain.ends_with('.') {
        Some("An email address cannot end with a period.")
    } else if !domain.contains('.') {
        Some("The part after the @-sign is not valid. It should have a period.")
    } else {
        None
    }
}

/// The address with its domain lowercased.
fn normalize_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => email.to_string(),
    }
}

/// `{"token", "password"}` (accept-invite, reset-password).
struct TokenPassword {
    token: String,
    password: String,
}

impl TokenPassword {
    fn parse(body: &Value) -> ApiResult<Self> {
        let mut reader = BodyReader::new(body);
        let token = reader.string("token", Need::Required);
        let password = reader.string("password", Need::Required);
        reader.finish()?;
        Ok(TokenPassword {
            token: token.unwrap_or_default(),
            password: password.unwrap_or_default(),
        })
    }
}

/// `UserInviteRequest`.
struct InviteRequest {
    username: String,
    email: String,
    groups: Vec<String>,
    is_superuser: bool,
    send_email: bool,
    return_token: bool,
    resend_if_exists: bool,
}

impl InviteRequest {
    fn parse(body: &Value) -> ApiResult<Self> {
        let mut r = BodyReader::new(body);
        let username = r.string("username", Need::Required);
        let email = r.email("email", Need::Required);
        let groups = r.group_names("groups");
        let is_superuser = r.boolean("is_superuser", Need::Defaulted);
        let send_email = r.boolean("send_email", Need::Defaulted);
        let return_token = r.boolean("return_token", Need::Defaulted);
        let resend_if_exists = r.boolean("resend_if_exists", Need::Defaulted);
        r.finish()?;
        Ok(InviteRequest {
            username: username.unwrap_or_default(),
            email: email.unwrap_or_default(),
            groups,
            is_superuser: is_superuser.unwrap_or(false),
            send_email: send_email.unwrap_or(true),
            return_token: return_token.unwrap_or(false),
            resend_if_exists: resend_if_exists.unwrap_or(false),
        })
    }
}

/// `UserUpdateRequest`: every field optional.
struct UserUpdate {
    password: Option<String>,
    email: Option<String>,
    is_active: Option<bool>,
    is_superuser: Option<bool>,
    is_verified: Option<bool>,
    username: Option<String>,
    groups: Vec<String>,
}

impl UserUpdate {
    fn parse(body: &Value) -> ApiResult<Self> {
        let mut r = BodyReader::new(body);
        let update = UserUpdate {
            password: r.string("password", Need::Nullable),
            email: r.email("email", Need::Nullable),
            is_active: r.boolean("is_active", Need::Nullable),
            is_superuser: r.boolean("is_superuser", Need::Nullable),
            is_verified: r.boolean("is_verified", Need::Nullable),
            // An empty username is treated as not given (upstream's `if user.username`).
            username: r
                .string("username", Need::Nullable)
                .filter(|name| !name.is_empty()),
            groups: r.group_names("groups"),
        };
        r.finish()?;
        Ok(update)
    }

    /// The self-service subset: status flags are ignored.
    fn safe(self) -> Self {
        UserUpdate {
            is_active: None,
            is_superuser: None,
            is_verified: None,
            ..self
        }
    }
}

/// Checks the body of the disabled `/user/register` (`UserCreate`) so that a bad body still
/// gives upstream's 422.
fn check_register_body(body: &Value) -> ApiResult<()> {
    let mut r = BodyReader::new(body);
    r.email("email", Need::Required);
    r.string("password", Need::Required);
    r.string("username", Need::Required);
    r.boolean("is_active", Need::Nullable);
    r.boolean("is_superuser", Need::Nullable);
    r.boolean("is_verified", Need::Nullable);
    r.group_names("groups");
    r.finish()
}

/// The named form fields, all required (one 422 listing every missing field).
fn require_form<'f, const N: usize>(
    form: &'f FormBody,
    names: [&str; N],
) -> ApiResult<[&'f str; N]> {
    let mut errors = Vec::new();
    let values = names.map(|name| {
        form.require(name).unwrap_or_else(|e| {
            errors.push(e);
            ""
        })
    });
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(merge_errors(errors))
    }
}

/// Several 422s as one (any other error wins as is).
fn merge_errors(errors: Vec<ApiError>) -> ApiError {
    let mut fields = Vec::new();
    for error in errors {
        match error {
            ApiError::Validation(list) => fields.extend(list),
            other => return other,
        }
    }
    ApiError::Validation(fields)
}

// ---------------------------------------------------------------------------------------------
// Extractors

/// The id segment of `/user/{id}` or `/user-groups/{group_id}`; on a static `/user/...` route,
/// the last path segment.
struct IdSegment(String);

impl<S: Send + Sync> FromRequestParts<S> for IdSegment {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(Path(id)) = Path::<String>::from_request_parts(parts, state).await {
            return Ok(IdSegment(id));
        }
        let last = parts.uri.path().rsplit('/').next().unwrap_or_default();
        Ok(IdSegment(last.to_string()))
    }
}

/// The public base URL invite links start with: `public_base_url` from the settings (without
/// a trailing `/`), else the request's own base, honouring `Forwarded` /
/// `X-Forwarded-Host` / `X-Forwarded-Proto` only from a private or loopback peer.
struct PublicBase(String);

impl FromRequestParts<AppState> for PublicBase {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let configured = state
            .config
            .public_base_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        Ok(PublicBase(match configured {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => request_base(parts),
        }))
    }
}

/// `scheme://host` of the request.
fn request_base(parts: &Parts) -> String {
    let trusted = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| is_local_address(peer.ip()));
    let direct_host = header_value(&parts.headers, header::HOST.as_str())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let (mut scheme, mut host) = (None, None);
    if trusted {
        (scheme, host) = forwarded_first_hop(&parts.headers);
        if host.is_none() {
            host = first_item(&parts.headers, "x-forwarded-host");
        }
        if scheme.is_none() {
            scheme = first_item(&parts.headers, "x-forwarded-proto");
        }
    }
    let scheme = scheme
        .filter(|s| *s == "http" || *s == "https")
        .unwrap_or("http");
    let host = host
        .or(direct_host)
        .filter(|h| is_plausible_host(h))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// `(proto, host)` of the first hop of an RFC 7239 `Forwarded` header.
fn forwarded_first_hop(headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    let Some(first) = first_item(headers, header::FORWARDED.as_str()) else {
        return (None, None);
    };
    let (mut proto, mut host) = (None, None);
    for pair in first.split(';') {
        if let Some((key, value)) = pair.trim().split_once('=') {
            let value = value.trim().trim_matches('"');
            if key.trim().eq_ignore_ascii_case("proto") {
                proto = Some(value);
            } else if key.trim().eq_ignore_ascii_case("host") {
                host = Some(value);
            }
        }
    }
    (proto, host)
}

fn header_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The first comma-separated item of a header.
fn first_item<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    header_value(headers, name)?
        .split(',')
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A host[:port] with nothing that could bend a URL built from it.
fn is_plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c))
}

/// Private, loopback, link-local, shared or unspecified addresses (Python's "not global").
fn is_local_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (a == 100 && (b & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local_address(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

/// `{base}/user/accept-invite`.
fn accept_invite_url(base: &str) -> String {
    format!("{base}/user/accept-invite")
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// argon2id hash of `password`, computed on the blocking pool.
async fn hash_blocking(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing task failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// [`auth::verify_password`] on the blocking pool.
async fn verify_blocking(password: String, hashed: String) -> ApiResult<auth::Verified> {
    tokio::task::spawn_blocking(move || auth::verify_password(&password, &hashed))
        .await
        .map_err(|e| ApiError::Internal(format!("password check task failed: {e}")))
}

/// A user by e-mail: exact match first, then case-insensitively (fastapi-users' Beanie
/// adapter looks e-mails up case-insensitively).
async fn find_by_email(state: &AppState, email: &str) -> ApiResult<Option<User>> {
    if let Some(user) = state.store.get_user_by_email(email).await? {
        return Ok(Some(user));
    }
    let users = state.store.list_users().await?;
    Ok(users
        .into_iter()
        .find(|u| u.email.eq_ignore_ascii_case(email)))
}

/// A user by username, then by e-mail (the login name may be either).
async fn find_by_login(state: &AppState, login: &str) -> ApiResult<Option<User>> {
    match state.store.get_user_by_username(login).await? {
        Some(user) => Ok(Some(user)),
        None => find_by_email(state, login).await,
    }
}

/// The user these credentials belong to (any status), storing an argon2 rehash of a legacy
/// bcrypt hash; None for an unknown login or a wrong password.
async fn authenticate(state: &AppState, login: &str, password: &str) -> ApiResult<Option<User>> {
    let Some(mut user) = find_by_login(state, login).await? else {
        // Hash anyway so that unknown logins take as long as wrong passwords.
        hash_blocking(password.to_string()).await?;
        return Ok(None);
    };
    let verified = verify_blocking(password.to_string(), user.hashed_password.clone()).await?;
    if !verified.ok {
        return Ok(None);
    }
    if let Some(rehash) = verified.rehash {
        user.hashed_password = rehash;
        state.store.update_user(&user).await?;
        state.users.forget(&user.id);
    }
    Ok(Some(user))
}

/// Active user for these credentials, or 400 `LOGIN_BAD_CREDENTIALS`.
async fn authenticate_active(state: &AppState, login: &str, password: &str) -> ApiResult<User> {
    authenticate(state, login, password)
        .await?
        .filter(|user| user.is_active)
        .ok_or_else(|| ApiError::bad_request(BAD_CREDENTIALS))
}

/// The named groups, in order; 400 for the first that does not exist.
async fn resolve_groups(state: &AppState, names: &[String]) -> ApiResult<Vec<UserGroup>> {
    let mut groups = Vec::with_capacity(names.len());
    for name in names {
        let group = state.store.get_group_by_name(name).await?.ok_or_else(|| {
            ApiError::bad_request(format!("User group does not exist with name: {name}"))
        })?;
        groups.push(group);
    }
    Ok(groups)
}

/// Query pairs other than the pagination ones (each must match).
fn filters(query: &QueryPairs) -> Vec<(&str, &str)> {
    query.without(&["limit", "offset"]).collect()
}

fn id_matches(id: &ObjectId, value: &str) -> bool {
    ObjectId::parse(value).is_ok_and(|wanted| wanted == *id)
}

fn flag_matches(flag: bool, value: &str) -> bool {
    match value.to_ascii_lowercase().as_str() {
        "true" => flag,
        "false" => !flag,
        _ => false,
    }
}

/// Exact-match filter on a user field; unknown keys match nothing.
fn user_matches(user: &User, key: &str, value: &str) -> bool {
    match key {
        "id" | "_id" => id_matches(&user.id, value),
        "username" => user.username == value,
        "email" => user.email == value,
        "is_active" => flag_matches(user.is_active, value),
        "is_superuser" => flag_matches(user.is_superuser, value),
        "is_verified" => flag_matches(user.is_verified, value),
        "groups.name" => user.groups.iter().any(|g| g.name == value),
        "groups.id" | "groups._id" => user.groups.iter().any(|g| id_matches(&g.id, value)),
        _ => false,
    }
}

/// Exact-match filter on a group field; unknown keys match nothing.
fn group_matches(group: &UserGroup, key: &str, value: &str) -> bool {
    match key {
        "id" | "_id" => id_matches(&group.id, value),
        "name" => group.name == value,
        _ => false,
    }
}

/// 400 if `wanted` is another user's username.
async fn ensure_username_free(
    state: &AppState,
    user: &User,
    wanted: Option<&str>,
) -> ApiResult<()> {
    let Some(name) = wanted.filter(|name| *name != user.username) else {
        return Ok(());
    };
    match state.store.get_user_by_username(name).await? {
        Some(other) if other.id != user.id => Err(ApiError::bad_request(format!(
            "Username already exists: {name}"
        ))),
        _ => Ok(()),
    }
}

/// Applies an update (status flags as given: pass [`UserUpdate::safe`] for self-service) and
/// `groups` when non-empty, then stores the user. A new e-mail must be free and resets
/// `is_verified` unless the update sets it.
async fn save_update(
    state: &AppState,
    mut user: User,
    update: UserUpdate,
    groups: Vec<UserGroup>,
) -> ApiResult<User> {
    if let Some(email) = update.email.filter(|email| *email != user.email) {
        if find_by_email(state, &email)
            .await?
            .is_some_and(|other| other.id != user.id)
        {
            return Err(ApiError::bad_request(EMAIL_TAKEN));
        }
        user.email = email;
        user.is_verified = false;
    }
    if let Some(password) = update.password {
        user.hashed_password = hash_blocking(password).await?;
    }
    user.is_active = update.is_active.unwrap_or(user.is_active);
    user.is_superuser = update.is_superuser.unwrap_or(user.is_superuser);
    user.is_verified = update.is_verified.unwrap_or(user.is_verified);
    if let Some(username) = update.username {
        user.username = username;
    }
    if !groups.is_empty() {
        user.groups = groups;
    }
    state
        .store
        .update_user(&user)
        .await
        .map_err(|e| update_conflict(e, &user.username))?;
    state.users.forget(&user.id);
    Ok(user)
}

/// A unique-index violation on update as upstream's 400s.
fn update_conflict(error: StoreError, username: &str) -> ApiError {
    match error {
        StoreError::Conflict(field) if field == "username" => {
            ApiError::bad_request(format!("Username already exists: {username}"))
        }
        StoreError::Conflict(field) if field == "email" => ApiError::bad_request(EMAIL_TAKEN),
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// `POST /user/login`: OAuth2 password form; the username may also be the e-mail.
async fn login(State(state): State<AppState>, form: FormBody) -> ApiResult<Json<AccessToken>> {
    let [username, password] = require_form(&form, ["username", "password"])?;
    let user = authenticate_active(&state, username, password).await?;
    if !user.is_verified {
        return Err(ApiError::bad_request(NOT_VERIFIED));
    }
    Ok(Json(AccessToken {
        access_token: state
            .keys
            .issue_access(&user.id, state.config.access_token_ttl),
        token_type: "bearer",
    }))
}

/// `POST /user/logout`: tokens are stateless, nothing to revoke.
async fn logout(VerifiedUser(_): VerifiedUser) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `POST /user/register`: disabled upstream; admins get a 404 pointing at invites.
async fn register(AdminUser(_): AdminUser, JsonBody(body): JsonBody) -> ApiResult<StatusCode> {
    check_register_body(&body)?;
    Err(ApiError::not_found(REGISTRATION_DISABLED))
}

/// `POST /user/update-password`: form `username`, `password`, `new_password` (without
/// `new_password` nothing changes, as upstream); 200 `null`.
async fn update_password(State(state): State<AppState>, form: FormBody) -> ApiResult<Json<Value>> {
    let [username, password] = require_form(&form, ["username", "password"])?;
    let mut user = authenticate_active(&state, username, password).await?;
    if let Some(new_password) = form.get("new_password") {
        user.hashed_password = hash_blocking(new_password.to_string()).await?;
        state.store.update_user(&user).await?;
        state.users.forget(&user.id);
    }
    Ok(Json(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// Invites

/// `POST /user/invite`: create (or re-invite) an unverified user and hand out an invite link.
async fn invite(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    PublicBase(base): PublicBase,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<InviteResponse>> {
    let request = InviteRequest::parse(&body)?;
    let groups = resolve_groups(&state, &request.groups).await?;
    let user = match existing_invitee(&state, &request).await? {
        Some(user) => user,
        None => create_invitee(&state, &request, groups).await?,
    };
    let token = state
        .keys
        .issue_invite(&user.id, &user.email, state.config.invite_token_ttl);
    let accept_invite_url = accept_invite_url(&base);
    let invite_url = format!("{accept_invite_url}?token={token}");
    let email_sent = request.send_email && send_invite_mail(&state, &user, &invite_url).await;
    Ok(Json(InviteResponse {
        user: user.read(),
        email_sent,
        public_base_url: base,
        accept_invite_url,
        invite_url: request.return_token.then_some(invite_url),
        token: request.return_token.then_some(token),
    }))
}

/// The user an invite may be re-sent to (by username, then e-mail), or None to create one.
async fn existing_invitee(state: &AppState, request: &InviteRequest) -> ApiResult<Option<User>> {
    let found = match state.store.get_user_by_username(&request.username).await? {
        Some(user) => Some(user),
        None => find_by_email(state, &request.email).await?,
    };
    let Some(user) = found else { return Ok(None) };
    let refusal = if !request.resend_if_exists {
        Some("User already exists")
    } else if user.is_verified {
        Some("User already verified")
    } else if user.username != request.username {
        Some("Existing user has a different username")
    } else if !user.email.eq_ignore_ascii_case(&request.email) {
        Some("Existing user has a different email")
    } else {
        None
    };
    match refusal {
        Some(msg) => Err(ApiError::bad_request(msg)),
        None => Ok(Some(user)),
    }
}

/// A new unverified user with a random password.
async fn create_invitee(
    state: &AppState,
    request: &InviteRequest,
    groups: Vec<UserGroup>,
) -> ApiResult<User> {
    let user = User {
        id: ObjectId::generate(),
        email: request.email.clone(),
        hashed_password: hash_blocking(auth::random_password()).await?,
        is_active: true,
        is_superuser: request.is_superuser,
        is_verified: false,
        username: request.username.clone(),
        groups,
    };
    match state.store.insert_user(&user).await {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict(_)) => Err(ApiError::bad_request(USER_EXISTS)),
        Err(e) => Err(e.into()),
    }
}

/// Mail the invite link; whether it went out (failures are logged, never an error).
async fn send_invite_mail(state: &AppState, user: &User, invite_url: &str) -> bool {
    let hours = state.config.invite_token_ttl / 3600;
    let mail = Mail {
        to: user.email.clone(),
        subject: "KernelCI API invitation".into(),
        body: format!(
            "Hello {},\n\nYou have been invited to the KernelCI API. Choose a password to \
             activate your account:\n\n{invite_url}\n\nThe link expires in {hours} hours.\n",
            user.username
        ),
    };
    match state.mailer.send(&mail).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("invite mail to {} failed: {e}", user.email);
            false
        }
    }
}

/// `GET /user/invite/url`: where invite links point.
async fn invite_url(AdminUser(_): AdminUser, PublicBase(base): PublicBase) -> Json<InviteUrls> {
    Json(InviteUrls {
        accept_invite_url: accept_invite_url(&base),
        public_base_url: base,
    })
}

/// `POST /user/accept-invite`: set the password of an invited user and mark them verified.
async fn accept_invite(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<UserRead>> {
    let TokenPassword { token, password } = TokenPassword::parse(&body)?;
    let claims = state
        .keys
        .verify_invite(&token)
        .map_err(invite_token_error)?;
    let mut user = state
        .store
        .get_user(&claims.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("User not found"))?;
    check_invitee(&user, &claims.email)?;
    user.hashed_password = hash_blocking(password).await?;
    user.is_verified = true;
    state.store.update_user(&user).await?;
    state.users.forget(&user.id);
    Ok(Json(user.read()))
}

/// A rejected invite token as upstream words it.
fn invite_token_error(error: TokenError) -> ApiError {
    match error {
        TokenError::WrongPurpose
        | TokenError::MissingSubject
        | TokenError::InvalidSubject
        | TokenError::MissingClaim(_) => ApiError::bad_request("Invalid invite token"),
        _ => ApiError::bad_request("Invalid or expired invite token"),
    }
}

/// The invited user must be active, still have the invited e-mail and not be verified yet.
fn check_invitee(user: &User, invited_email: &str) -> ApiResult<()> {
    if !user.is_active {
        Err(ApiError::bad_request("User is inactive"))
    } else if user.email != invited_email {
        Err(ApiError::bad_request("Invalid invite token"))
    } else if user.is_verified {
        Err(ApiError::bad_request("Invite already accepted"))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Password reset

/// `POST /user/forgot-password`: mail a reset token to an active user; always 202 `null`.
async fn forgot_password(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut reader = BodyReader::new(&body);
    let email = reader.email("email", Need::Required);
    reader.finish()?;
    let email = email.unwrap_or_default();
    if let Some(user) = find_by_email(&state, &email)
        .await?
        .filter(|user| user.is_active)
    {
        let fingerprint = auth::password_fingerprint(&user.hashed_password);
        let token = state.keys.issue_reset(&user.id, &fingerprint);
        state
            .mailer
            .send(&reset_mail(&user, &token))
            .await
            .map_err(|e| {
                tracing::warn!("password reset mail to {} failed: {e}", user.email);
                ApiError::Detail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Failed to send email".into(),
                )
            })?;
    }
    Ok((StatusCode::ACCEPTED, Json(Value::Null)))
}

fn reset_mail(user: &User, token: &str) -> Mail {
    Mail {
        to: user.email.clone(),
        subject: "KernelCI API password reset".into(),
        body: format!(
            "Hello {},\n\nA password reset was requested for your KernelCI API account. \
             Send this token with a new password to /user/reset-password within one hour:\n\n\
             {token}\n\nIf you did not ask for this, ignore this message.\n",
            user.username
        ),
    }
}

/// `POST /user/reset-password`: set a new password with a reset token; 200 `null`.
async fn reset_password(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let TokenPassword { token, password } = TokenPassword::parse(&body)?;
    let mut user = reset_target(&state, &token)
        .await?
        .ok_or_else(|| ApiError::bad_request(BAD_RESET_TOKEN))?;
    user.hashed_password = hash_blocking(password).await?;
    state.store.update_user(&user).await?;
    state.users.forget(&user.id);
    notify_password_changed(&state, &user).await;
    Ok(Json(Value::Null))
}

/// The active user a valid reset token was issued to, if the password has not changed since.
async fn reset_target(state: &AppState, token: &str) -> ApiResult<Option<User>> {
    let Ok(claims) = state.keys.verify_reset(token) else {
        return Ok(None);
    };
    let user = state.store.get_user(&claims.user_id).await?;
    Ok(user.filter(|user| {
        user.is_active
            && auth::password_fingerprint(&user.hashed_password) == claims.password_fingerprint
    }))
}

/// Best-effort confirmation mail after a reset (a failure is only logged).
async fn notify_password_changed(state: &AppState, user: &User) {
    let mail = Mail {
        to: user.email.clone(),
        subject: "KernelCI API password changed".into(),
        body: format!(
            "Hello {},\n\nThe password of your KernelCI API account has been reset.\n",
            user.username
        ),
    };
    if let Err(e) = state.mailer.send(&mail).await {
        tracing::warn!("password change notice to {} failed: {e}", user.email);
    }
}

// ---------------------------------------------------------------------------------------------
// Users

/// `GET /whoami`.
async fn whoami(VerifiedUser(user): VerifiedUser) -> Json<UserRead> {
    Json(user.read())
}

/// `GET /users`: exact-match filters on user fields, paginated.
async fn list_users(
    CurrentUser(_): CurrentUser,
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<crate::paging::PageModel<UserRead>>> {
    let params = crate::paging::params(&query)?;
    let filters = filters(&query);
    let users: Vec<UserRead> = state
        .store
        .list_users()
        .await?
        .iter()
        .filter(|user| {
            filters
                .iter()
                .all(|(key, value)| user_matches(user, key, value))
        })
        .map(User::read)
        .collect();
    Ok(Json(crate::paging::slice(users, params)))
}

/// `GET /user/{id}`: 404 `Not Found` for an unknown or malformed id.
async fn get_user(
    CurrentUser(_): CurrentUser,
    State(state): State<AppState>,
    IdSegment(raw): IdSegment,
) -> ApiResult<Json<UserRead>> {
    let user = match ObjectId::parse(&raw) {
        Ok(id) => state.store.get_user(&id).await?,
        Err(_) => None,
    };
    user.map(|user| Json(user.read()))
        .ok_or_else(|| ApiError::not_found("Not Found"))
}

/// `PATCH /user/me`: self-service update (no groups, status flags ignored).
async fn update_me(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<UserRead>> {
    let update = UserUpdate::parse(&body)?;
    if !update.groups.is_empty() {
        return Err(ApiError::bad_request(
            "User groups can only be updated by an admin user",
        ));
    }
    ensure_username_free(&state, &user, update.username.as_deref()).await?;
    let user = save_update(&state, user, update.safe(), Vec::new()).await?;
    Ok(Json(user.read()))
}

/// `PATCH /user/{user_id}` (admin): full update; a non-empty `groups` replaces the groups.
async fn update_user(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    IdSegment(raw): IdSegment,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<UserRead>> {
    let update = UserUpdate::parse(&body)?;
    let id = ObjectId::parse(&raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let user = state
        .store
        .get_user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("User not found with id: {raw}")))?;
    ensure_username_free(&state, &user, update.username.as_deref()).await?;
    let groups = resolve_groups(&state, &update.groups).await?;
    let user = save_update(&state, user, update, groups).await?;
    Ok(Json(user.read()))
}

/// `DELETE /user/{id}` (admin): 204, or 404 `Not Found`.
async fn delete_user(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    IdSegment(raw): IdSegment,
) -> ApiResult<StatusCode> {
    let deleted = match ObjectId::parse(&raw) {
        Ok(id) => {
            let deleted = state.store.delete_user(&id).await?;
            state.users.forget(&id);
            deleted
        }
        Err(_) => false,
    };
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("Not Found"))
    }
}

// ---------------------------------------------------------------------------------------------
// User groups

/// `GET /user-groups` (admin): exact-match filters (`name`, `id`), paginated.
async fn list_groups(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    query: QueryPairs,
) -> ApiResult<Json<crate::paging::PageModel<UserGroup>>> {
    let params = crate::paging::params(&query)?;
    let filters = filters(&query);
    let groups: Vec<UserGroup> = state
        .store
        .list_groups()
        .await?
        .into_iter()
        .filter(|group| {
            filters
                .iter()
                .all(|(key, value)| group_matches(group, key, value))
        })
        .collect();
    Ok(Json(crate::paging::slice(groups, params)))
}

/// The group with this id: 400 for a malformed id, 404 if there is none.
async fn find_group(state: &AppState, raw: &str) -> ApiResult<UserGroup> {
    let id = ObjectId::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .store
        .get_group(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("User group not found with id: {raw}")))
}

/// `GET /user-groups/{group_id}` (admin).
async fn get_group(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    IdSegment(raw): IdSegment,
) -> ApiResult<Json<UserGroup>> {
    Ok(Json(find_group(&state, &raw).await?))
}

/// `POST /user-groups` (admin): `{"name"}`; 400 if the name is taken.
async fn create_group(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<UserGroup>> {
    let mut reader = BodyReader::new(&body);
    let name = reader.string("name", Need::Required);
    reader.finish()?;
    let name = name.unwrap_or_default();
    let taken = || ApiError::bad_request(format!("User group already exists with name: {name}"));
    if state.store.get_group_by_name(&name).await?.is_some() {
        return Err(taken());
    }
    let group = UserGroup {
        id: ObjectId::generate(),
        name: name.clone(),
    };
    match state.store.insert_group(&group).await {
        Ok(()) => Ok(Json(group)),
        Err(StoreError::Conflict(_)) => Err(taken()),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /user-groups/{group_id}` (admin): 204; 409 while any user is in the group.
async fn delete_group(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    IdSegment(raw): IdSegment,
) -> ApiResult<StatusCode> {
    let group = find_group(&state, &raw).await?;
    let in_use = state.store.list_users().await?.iter().any(|user| {
        user.groups
            .iter()
            .any(|g| g.id == group.id || g.name == group.name)
    });
    if in_use {
        return Err(ApiError::Detail(StatusCode::CONFLICT, GROUP_IN_USE.into()));
    }
    if state.store.delete_group(&group.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "User group not found with id: {raw}"
        )))
    }
}
