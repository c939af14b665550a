//! The dashboard API client: where its base comes from, requests with kci's exit codes,
//! links to the web dashboard.

use serde_json::Value;

use crate::Global;
use crate::maestro::{ApiError, Service};
use crate::output::{Paint, Spinner};

/// Why a command stopped: the exit code and the message for stderr.
#[derive(Debug)]
pub struct Fail {
    /// 2 bad input or unknown id, 3 unreachable.
    pub code: u8,
    /// What happened.
    pub message: String,
}

impl Fail {
    /// Bad input (exit 2).
    pub fn input(message: impl Into<String>) -> Fail {
        Fail {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for Fail {
    fn from(e: anyhow::Error) -> Fail {
        Fail::input(format!("{e:#}"))
    }
}

/// The server's `{"error": "..."}`, or the text as it is.
fn server_message(detail: &str) -> String {
    serde_json::from_str::<Value>(detail)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| detail.to_string())
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Fail {
        match e {
            ApiError::Unavailable { url, reason } => Fail {
                code: 3,
                message: format!("the dashboard API is unavailable: {url}: {reason}"),
            },
            ApiError::Refused {
                url,
                status: 404,
                detail,
            } => Fail::input(format!("not found: {} ({url})", server_message(&detail))),
            ApiError::Refused {
                url,
                status,
                detail,
            } => Fail::input(format!(
                "the dashboard API refused the request (HTTP {status}): {} ({url})",
                server_message(&detail)
            )),
            ApiError::BadReply { url, reason } => {
                Fail::input(format!("unexpected reply from {url}: {reason}"))
            }
        }
    }
}

/// Percent-encodes a path part (ids keep their `/` and `:`, as kci-dev sends them).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The dashboard API of the chosen instance.
pub struct Dash {
    svc: Service,
    web: Option<String>,
    /// Colors for standard output.
    pub paint: Paint,
}

impl Dash {
    /// Resolves the API base: `--dashboard-api`, the instance's `dashboard_api`, the
    /// settings' top-level one.
    pub fn open(global: &Global, flag: Option<&str>) -> Result<Dash, Fail> {
        let settings = global.settings()?;
        // An unknown --instance is an error; no instance at all is fine (top-level key).
        let instance = match global.instance.as_deref() {
            Some(name) => Some(settings.instance(Some(name))?.1.clone()),
            None => settings.instance(None).ok().map(|(_, i)| i.clone()),
        };
        let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
        let base = flag
            .map(String::from)
            .or_else(|| instance.as_ref().and_then(|i| nonempty(&i.dashboard_api)))
            .or_else(|| nonempty(&settings.dashboard_api));
        let Some(base) = base else {
            let file = settings
                .path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the settings file (`kci config` writes one)".into());
            return Err(Fail::input(format!(
                "no dashboard API configured: set `dashboard_api = \"http://HOST:PORT/api/\"` \
                 in the instance of {file}, or pass --dashboard-api URL"
            )));
        };
        Ok(Dash {
            svc: Service::new(&base, None)?,
            web: instance
                .and_then(|i| nonempty(&i.dashboard))
                .map(|w| w.trim_end_matches('/').to_string()),
            paint: Paint::stdout(),
        })
    }

    /// `GET path?query`; a 200 reply `{"error": ...}` (upstream's way of saying "none")
    /// is an error too.
    pub fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, Fail> {
        let _spinner = Spinner::start(path);
        let v = self.svc.get(path, query)?;
        match v.get("error").and_then(Value::as_str) {
            Some(e) if v.as_object().is_some_and(|m| m.len() == 1) => {
                Err(Fail::input(format!("{e} ({})", self.svc.url(path))))
            }
            _ => Ok(v),
        }
    }

    /// `GET path?query` as it comes, a 200 `{"error": ...}` included.
    pub fn get_raw(&self, path: &str, query: &[(String, String)]) -> Result<Value, Fail> {
        let _spinner = Spinner::start(path);
        Ok(self.svc.get(path, query)?)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Fail> {
        let _spinner = Spinner::start(path);
        Ok(self.svc.post(path, body)?)
    }

    /// The web dashboard's page of `kind` (`build`, `test`, `issue`, `tree`) `id`.
    pub fn link(&self, kind: &str, id: &str) -> Option<String> {
        self.web.as_ref().map(|w| format!("{w}/{kind}/{}", enc(id)))
    }
}

/// Query pairs from `(&str, String)`.
pub fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The string at `key`, `-` when absent or null.
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The list in `v` (a bare list, or the list at `key`).
pub fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.as_array()
        .or_else(|| v.get(key).and_then(Value::as_array))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_ids() {
        assert_eq!(enc("arm:build/kF SX+y"), "arm:build/kF%20SX%2By");
        assert_eq!(
            server_message("{\"error\":\"Build not found\"}"),
            "Build not found"
        );
        assert_eq!(server_message("oops"), "oops");
    }
}
