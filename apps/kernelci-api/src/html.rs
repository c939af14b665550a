//! The built-in web pages (`/viewer`, `/dashboard`, `/manage`, `/analytics`, `/stats`, the
//! invite forms) and their static files, embedded in the binary. The pages are small
//! JavaScript clients of the JSON API itself; the assets live in `../assets/`.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;

const LAYOUT: &str = include_str!("../assets/page.html");

/// A page: its title (upstream's marker text), body, and whether it forbids caching.
struct Page {
    title: &'static str,
    body: &'static str,
    no_cache: bool,
}

const VIEWER: Page = Page {
    title: "Maestro API Viewer",
    body: include_str!("../assets/viewer.html"),
    no_cache: true,
};
const DASHBOARD: Page = Page {
    title: "KernelCI Dashboard",
    body: include_str!("../assets/dashboard.html"),
    no_cache: true,
};
const MANAGE: Page = Page {
    title: "Maestro API Manage",
    body: include_str!("../assets/manage.html"),
    no_cache: true,
};
const ANALYTICS: Page = Page {
    title: "KernelCI Pipeline Analytics",
    body: include_str!("../assets/analytics.html"),
    no_cache: true,
};
const STATS: Page = Page {
    title: "KernelCI API Statistics",
    body: include_str!("../assets/stats.html"),
    no_cache: true,
};
const INVITE: Page = Page {
    title: "Invite a user",
    body: include_str!("../assets/invite.html"),
    no_cache: false,
};
const ACCEPT_INVITE: Page = Page {
    title: "Accept an invitation",
    body: include_str!("../assets/accept-invite.html"),
    no_cache: false,
};

fn render(page: &Page) -> Response {
    let html = LAYOUT
        .replace("{{TITLE}}", page.title)
        .replace("{{BODY}}", page.body);
    let mut resp = Html(html).into_response();
    if page.no_cache {
        let h = resp.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, must-revalidate"),
        );
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    }
    resp
}

/// `GET /viewer`.
pub(crate) async fn viewer() -> Response {
    render(&VIEWER)
}
/// `GET /dashboard`.
pub(crate) async fn dashboard() -> Response {
    render(&DASHBOARD)
}
/// `GET /manage`.
pub(crate) async fn manage() -> Response {
    render(&MANAGE)
}
/// `GET /analytics`.
pub(crate) async fn analytics() -> Response {
    render(&ANALYTICS)
}
/// `GET /stats`.
pub(crate) async fn stats() -> Response {
    render(&STATS)
}
/// `GET /user/invite`: the invite form.
pub(crate) async fn invite_form() -> Response {
    render(&INVITE)
}
/// `GET /user/accept-invite`: the form that sets a password from an invite token.
pub(crate) async fn accept_invite_form() -> Response {
    render(&ACCEPT_INVITE)
}

/// Whether `name` is `[A-Za-z0-9_.-]+` followed by `.ext`.
fn safe_name(name: &str, ext: &str) -> bool {
    name.strip_suffix(ext).is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    })
}

fn file(content_type: &'static str, cache: bool, bytes: &'static [u8]) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
    if cache {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
    }
    resp
}

/// `GET /icons/{name}`: `ok.png`, `bad.png`, `warning.png`.
pub(crate) async fn icon(Path(name): Path<String>) -> Result<Response, ApiError> {
    if !safe_name(&name, ".png") {
        return Err(ApiError::bad_request("Invalid icon name"));
    }
    let bytes: &'static [u8] = match name.as_str() {
        "ok.png" => include_bytes!("../assets/icons/ok.png"),
        "bad.png" => include_bytes!("../assets/icons/bad.png"),
        "warning.png" => include_bytes!("../assets/icons/warning.png"),
        _ => {
            return Err(ApiError::Detail(
                StatusCode::NOT_FOUND,
                "File not found".into(),
            ));
        }
    };
    Ok(file("image/png", false, bytes))
}

/// `GET /static/css/{file}`.
pub(crate) async fn css(Path(name): Path<String>) -> Result<Response, ApiError> {
    if !safe_name(&name, ".css") {
        return Err(ApiError::bad_request("Invalid filename"));
    }
    match name.as_str() {
        "kci.css" => Ok(file(
            "text/css; charset=utf-8",
            true,
            include_bytes!("../assets/kci.css"),
        )),
        _ => Err(ApiError::Detail(
            StatusCode::NOT_FOUND,
            "File not found".into(),
        )),
    }
}

/// `GET /static/js/{file}`.
pub(crate) async fn js(Path(name): Path<String>) -> Result<Response, ApiError> {
    if !safe_name(&name, ".js") {
        return Err(ApiError::bad_request("Invalid filename"));
    }
    match name.as_str() {
        "kci.js" => Ok(file(
            "text/javascript; charset=utf-8",
            true,
            include_bytes!("../assets/kci.js"),
        )),
        _ => Err(ApiError::Detail(
            StatusCode::NOT_FOUND,
            "File not found".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_are_checked() {
        assert!(safe_name("ok.png", ".png"));
        assert!(safe_name("a-b_c.d.png", ".png"));
        assert!(!safe_name(".png", ".png"));
        assert!(!safe_name("../x.png", ".png"));
        assert!(!safe_name("x.png.exe", ".png"));
        assert!(!safe_name("x y.png", ".png"));
    }
}
