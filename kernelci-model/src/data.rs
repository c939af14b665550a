//! Kind-specific validation of a node's `data` (upstream's `CheckoutData`, `KbuildData`,
//! `TestData`, `RegressionData`). Unknown keys are allowed; known keys must have the right
//! type. Every problem is reported, each with its path under `data`.

use serde_json::{Map, Value};

use crate::error::InputError;
use crate::id::ObjectId;
use crate::node::{Kind, Node};

/// The exact error codes upstream accepts in `data.error_code` (build, job, test, regression).
pub const ERROR_CODES: [&str; 15] = [
    "invalid_job_params",
    "submit_error",
    "node_timeout",
    "Infrastructure",
    "Canceled",
    "Job",
    "Bug",
    "Test",
    "Configuration",
    "LAVATimeout",
    "MultinodeTimeout",
    "ObjectNotPersisted",
    "Unexisting permission codename.",
    "job_generation_error",
    "kbuild_internal_error",
];

/// Error codes a checkout may carry.
pub const CHECKOUT_ERROR_CODES: [&str; 2] = ["node_timeout", "git_checkout_failure"];

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    StrList,
    Object,
    Revision,
    ErrorCode,
    CheckoutErrorCode,
    Id,
    IdList,
    Url,
}

const BUILD_FIELDS: &[(&str, Ty)] = &[
    ("kernel_revision", Ty::Revision),
    ("arch", Ty::Str),
    ("defconfig", Ty::Str),
    ("compiler", Ty::Str),
    ("error_code", Ty::ErrorCode),
    ("error_msg", Ty::Str),
    ("fragments", Ty::StrList),
    ("config_full", Ty::Str),
    ("platform", Ty::Str),
    ("runtime", Ty::Str),
    ("job_id", Ty::Str),
    ("job_context", Ty::Str),
    ("kernel_type", Ty::Str),
    ("regression", Ty::Id),
];

const TEST_FIELDS: &[(&str, Ty)] = &[
    ("error_code", Ty::ErrorCode),
    ("error_msg", Ty::Str),
    ("test_source", Ty::Url),
    ("test_revision", Ty::Revision),
    ("platform", Ty::Str),
    ("device", Ty::Str),
    ("runtime", Ty::Str),
    ("job_id", Ty::Str),
    ("job_context", Ty::Str),
    ("regression", Ty::Id),
    ("kernel_revision", Ty::Revision),
    ("arch", Ty::Str),
    ("defconfig", Ty::Str),
    ("config_full", Ty::Str),
    ("compiler", Ty::Str),
    ("kernel_type", Ty::Str),
    ("misc", Ty::Object),
];

const CHECKOUT_FIELDS: &[(&str, Ty)] = &[
    ("kernel_revision", Ty::Revision),
    ("error_code", Ty::CheckoutErrorCode),
    ("error_msg", Ty::Str),
    ("architecture_filter", Ty::StrList),
];

const REGRESSION_FIELDS: &[(&str, Ty)] = &[
    ("fail_node", Ty::Id),
    ("pass_node", Ty::Id),
    ("node_sequence", Ty::IdList),
    ("error_code", Ty::ErrorCode),
    ("error_msg", Ty::Str),
    ("failed_kernel_revision", Ty::Revision),
    ("arch", Ty::Str),
    ("defconfig", Ty::Str),
    ("config_full", Ty::Str),
    ("compiler", Ty::Str),
    ("platform", Ty::Str),
    ("device", Ty::Str),
];

const REVISION_REQUIRED: [&str; 4] = ["tree", "url", "branch", "commit"];

/// Validate `node.data` against the model for `node.kind` (HTTP 400 on failure).
pub fn validate_node_data(node: &Node) -> Result<(), InputError> {
    let fields = match node.kind {
        Kind::Checkout => CHECKOUT_FIELDS,
        Kind::Kbuild => BUILD_FIELDS,
        Kind::Job | Kind::Test => TEST_FIELDS,
        Kind::Regression => REGRESSION_FIELDS,
        Kind::Process => return Ok(()),
    };
    let Some(Value::Object(data)) = &node.data else {
        return Ok(());
    };
    let mut errors = Vec::new();
    check_fields(data, fields, "data", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InputError::Invalid(format!(
            "{} validation error{} for {} node data\n{}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            node.kind.as_str(),
            errors.join("\n")
        )))
    }
}

fn check_fields(
    obj: &Map<String, Value>,
    fields: &[(&str, Ty)],
    at: &str,
    errors: &mut Vec<String>,
) {
    for (key, ty) in fields {
        if let Some(v) = obj.get(*key) {
            check(v, *ty, &format!("{at}.{key}"), errors);
        }
    }
}

fn check(v: &Value, ty: Ty, at: &str, errors: &mut Vec<String>) {
    if v.is_null() {
        return; // every data field is optional
    }
    let mut fail = |what: &str| errors.push(format!("{at}: {what}"));
    match ty {
        Ty::Str if !v.is_string() => fail("Input should be a valid string"),
        Ty::Int if !(v.is_i64() || v.is_u64()) => fail("Input should be a valid integer"),
        Ty::Bool if !v.is_boolean() => fail("Input should be a valid boolean"),
        Ty::Object if !v.is_object() => fail("Input should be a valid dictionary"),
        Ty::StrList => match v.as_array() {
            Some(items) if items.iter().all(Value::is_string) => {}
            _ => fail("Input should be a valid list of strings"),
        },
        Ty::ErrorCode | Ty::CheckoutErrorCode => {
            let allowed: &[&str] = if matches!(ty, Ty::ErrorCode) {
                &ERROR_CODES
            } else {
                &CHECKOUT_ERROR_CODES
            };
            match v.as_str() {
                Some(s) if allowed.contains(&s) => {}
                _ => fail(&format!("Input should be one of {}", quoted(allowed))),
            }
        }
        Ty::Id => match v.as_str().map(ObjectId::parse) {
            Some(Ok(_)) => {}
            Some(Err(e)) => fail(&e.to_string()),
            None => fail("Input should be an ObjectId string"),
        },
        Ty::IdList => match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(item, Ty::Id, &format!("{at}.{i}"), errors);
                }
            }
            None => fail("Input should be a valid list"),
        },
        Ty::Url => match v.as_str().map(url::Url::parse) {
            Some(Ok(_)) => {}
            _ => fail("Input should be a valid URL"),
        },
        Ty::Revision => check_revision(v, at, errors),
        _ => {}
    }
}

fn check_revision(v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(rev) = v.as_object() else {
        errors.push(format!("{at}: Input should be a valid dictionary"));
        return;
    };
    for key in REVISION_REQUIRED {
        match rev.get(key) {
            None | Some(Value::Null) => errors.push(format!("{at}.{key}: Field required")),
            Some(v) if !v.is_string() => {
                errors.push(format!("{at}.{key}: Input should be a valid string"))
            }
            _ => {}
        }
    }
    check_fields(
        rev,
        &[
            ("describe", Ty::Str),
            ("patchset", Ty::Str),
            ("commit_tags", Ty::StrList),
            ("commit_message", Ty::Str),
            ("tip_of_branch", Ty::Bool),
        ],
        at,
        errors,
    );
    if let Some(version) = rev.get("version").filter(|v| !v.is_null()) {
        let vat = format!("{at}.version");
        let Some(ver) = version.as_object() else {
            errors.push(format!("{vat}: Input should be a valid dictionary"));
            return;
        };
        for key in ["version", "patchlevel"] {
            if ver.get(key).is_none_or(Value::is_null) {
                errors.push(format!("{vat}.{key}: Field required"));
            }
        }
        check_fields(
            ver,
            &[
                ("version", Ty::Int),
                ("patchlevel", Ty::Int),
                ("sublevel", Ty::Int),
                ("extra", Ty::Str),
                ("name", Ty::Str),
            ],
            &vat,
            errors,
        );
    }
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeInput;
    use serde_json::json;

    fn node(kind: &str, data: Value) -> Result<Node, InputError> {
        let now = crate::time::now();
        let body = json!({"kind": kind, "name": "n", "path": ["n"], "data": data});
        NodeInput::from_json(&body, now)?.into_new_node("u", now)
    }

    #[test]
    fn accepts_valid_and_unknown_keys() {
        assert!(node("kbuild", json!({"arch": "x86_64", "whatever": [1]})).is_ok());
        assert!(node("process", json!({"anything": 1})).is_ok());
        assert!(node("test", json!({"error_code": "Infrastructure", "misc": {}})).is_ok());
    }

    #[test]
    fn reports_every_problem() {
        let e = node(
            "kbuild",
            json!({"arch": 5, "error_code": "nope",
                   "kernel_revision": {"tree": "t", "version": {"version": "x"}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("data.arch: Input should be a valid string"),
            "{e}"
        );
        assert!(e.contains("data.error_code: Input should be one of"), "{e}");
        assert!(
            e.contains("data.kernel_revision.url: Field required"),
            "{e}"
        );
        assert!(
            e.contains("data.kernel_revision.version.version: Input should be a valid integer"),
            "{e}"
        );
        assert!(
            e.contains("data.kernel_revision.version.patchlevel: Field required"),
            "{e}"
        );
    }

    #[test]
    fn checkout_error_codes_differ() {
        assert!(node("checkout", json!({"error_code": "git_checkout_failure"})).is_ok());
        assert!(node("checkout", json!({"error_code": "Infrastructure"})).is_err());
        assert!(node("regression", json!({"fail_node": "zz"})).is_err());
    }
}
