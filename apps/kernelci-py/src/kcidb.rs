//! KCIDB I/O: validate, load, upgrade, submit (kernelci-kcidb).

use std::time::Duration;

use kernelci_kcidb::client::{Client, ClientError, Retry};
use kernelci_kcidb::{Problem, Rejection, SchemaVersion, Stage};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use serde_json::{Value, json};

use crate::convert::{doc_bytes, error, to_py};

/// One problem as a dict: `pointer`, `message`, `stage`, `stricter_than_kcidb_io`.
fn problem_json(problem: &Problem, stage: Stage) -> Value {
    json!({
        "pointer": problem.pointer,
        "message": problem.reason.to_string(),
        "stage": stage.as_str(),
        "stricter_than_kcidb_io": problem.reason.stricter_than_kcidb_io(),
    })
}

/// Every problem of a rejection; a parse error (which has no pointer) is one problem at the
/// document (`""`).
fn problems_json(rejection: &Rejection) -> Vec<Value> {
    let stage = rejection.stage();
    match rejection {
        Rejection::Parse(err) => vec![json!({
            "pointer": "",
            "message": err.to_string(),
            "stage": stage.as_str(),
            "stricter_than_kcidb_io": false,
        })],
        _ => rejection
            .problems()
            .iter()
            .map(|p| problem_json(p, stage))
            .collect(),
    }
}

fn problems_list<'py>(py: Python<'py>, rejection: &Rejection) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for problem in problems_json(rejection) {
        list.append(to_py(py, &problem)?)?;
    }
    Ok(list)
}

/// `kernelci.errors.InvalidSubmission(message, problems, stage)`.
fn invalid(py: Python<'_>, rejection: &Rejection) -> PyErr {
    match problems_list(py, rejection) {
        Ok(problems) => error(
            py,
            "InvalidSubmission",
            (
                rejection.to_string(),
                problems,
                rejection.stage().as_str().to_string(),
            ),
        ),
        Err(err) => err,
    }
}

/// Every problem of a document (parse, schema, upgrade), empty when valid.
#[pyfunction]
pub fn kcidb_validate<'py>(
    py: Python<'py>,
    doc: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let doc = doc_bytes(doc)?;
    let bytes = doc.bytes();
    match py.detach(|| kernelci_kcidb::check(bytes)) {
        Ok(_) => Ok(PyList::empty(py)),
        Err(rejection) => problems_list(py, &rejection),
    }
}

/// The verdict only: True when valid (no problem list is built).
#[pyfunction]
pub fn kcidb_is_valid(py: Python<'_>, doc: &Bound<'_, PyAny>) -> PyResult<bool> {
    let doc = doc_bytes(doc)?;
    let bytes = doc.bytes();
    Ok(py.detach(|| kernelci_kcidb::check(bytes)).is_ok())
}

/// The typed v5.3 submission as a dict (validated, upgraded, serialized back to KCIDB JSON).
#[pyfunction]
pub fn kcidb_load<'py>(py: Python<'py>, doc: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let doc = doc_bytes(doc)?;
    let bytes = doc.bytes();
    match py.detach(|| kernelci_kcidb::load(bytes).map(|s| s.to_value())) {
        Ok(value) => to_py(py, &value),
        Err(rejection) => Err(invalid(py, &rejection)),
    }
}

/// The document upgraded to v5.3 as a JSON tree (validated first; v5.3 comes back as is).
#[pyfunction]
pub fn kcidb_upgrade<'py>(py: Python<'py>, doc: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let doc = doc_bytes(doc)?;
    let bytes = doc.bytes();
    let upgraded = py.detach(|| -> Result<Value, Rejection> {
        let value = kernelci_kcidb::parse(bytes)?;
        let version = kernelci_kcidb::validate(&value)?;
        if version == SchemaVersion::LATEST {
            Ok(value)
        } else {
            kernelci_kcidb::upgrade(value, version)
        }
    });
    match upgraded {
        Ok(value) => to_py(py, &value),
        Err(rejection) => Err(invalid(py, &rejection)),
    }
}

/// `kernelci.errors.SubmitError(message, status, reply)`.
fn submit_error(py: Python<'_>, err: &ClientError) -> PyErr {
    let (status, reply) = match err {
        ClientError::Refused { status, reply, .. } => (Some(*status), Some(reply.clone())),
        ClientError::ServerError { status, body, .. } => {
            (Some(*status), Some(Value::String(body.clone())))
        }
        _ => (None, None),
    };
    let reply = match reply.map(|r| to_py(py, &r)).transpose() {
        Ok(reply) => reply,
        Err(err) => return err,
    };
    error(py, "SubmitError", (err.to_string(), status, reply))
}

fn client(url: &str, token: &str, tries: u32, delay: f64) -> Result<Client, ClientError> {
    let first_delay = Duration::try_from_secs_f64(delay).unwrap_or(Duration::ZERO);
    Ok(Client::new(url, token)?.with_retry(Retry {
        tries: tries.max(1),
        first_delay,
    }))
}

fn seconds(value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{value} is not a number of seconds")))
}

/// Posts a document to a KCIDB `/submit` URL; optionally waits for it to be processed.
#[pyfunction]
#[pyo3(signature = (url, token, doc, *, wait=None, tries=3, retry_delay=1.0))]
pub fn kcidb_submit<'py>(
    py: Python<'py>,
    url: &str,
    token: &str,
    doc: &Bound<'py, PyAny>,
    wait: Option<f64>,
    tries: u32,
    retry_delay: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let doc = doc_bytes(doc)?;
    let body = doc.bytes().to_vec();
    let wait = wait.map(seconds).transpose()?;
    let result = py.detach(|| {
        let client = client(url, token, tries, retry_delay)?;
        let receipt = client.submit_bytes(body)?;
        match wait {
            Some(timeout) => client.wait(&receipt.id, timeout),
            None => Ok(receipt),
        }
    });
    match result {
        Ok(receipt) => to_py(py, &receipt_json(receipt)),
        Err(err) => Err(submit_error(py, &err)),
    }
}

/// The status of a submission (`/status?id=` beside the `/submit` URL).
#[pyfunction]
#[pyo3(signature = (url, token, id, *, tries=3, retry_delay=1.0))]
pub fn kcidb_status<'py>(
    py: Python<'py>,
    url: &str,
    token: &str,
    id: &str,
    tries: u32,
    retry_delay: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let result = py.detach(|| client(url, token, tries, retry_delay)?.status(id));
    match result {
        Ok(receipt) => to_py(py, &receipt_json(receipt)),
        Err(err) => Err(submit_error(py, &err)),
    }
}

/// The receiver's reply when it is an object, else `{"id", "status", "message"}`.
fn receipt_json(receipt: kernelci_kcidb::client::Receipt) -> Value {
    match receipt.reply {
        reply @ Value::Object(_) => reply,
        _ => json!({
            "id": receipt.id,
            "status": receipt.status,
            "message": receipt.message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_problems_keep_their_pointers_and_stage() {
        let doc = br#"{"version": {"major": 5, "minor": 3},
            "builds": [{"id": "lab:b1", "origin": "lab", "checkout_id": "lab:c1",
                        "status": "pass", "start_time": "yesterday"}]}"#;
        let rejection = kernelci_kcidb::check(doc).expect_err("invalid");
        let problems = problems_json(&rejection);
        let pointers: Vec<_> = problems.iter().map(|p| p["pointer"].clone()).collect();
        assert_eq!(
            pointers,
            [json!("/builds/0/status"), json!("/builds/0/start_time")]
        );
        assert!(problems.iter().all(|p| p["stage"] == "schema"));
    }

    #[test]
    fn a_parse_error_is_one_problem_at_the_document() {
        let rejection = kernelci_kcidb::check(b"\xff").expect_err("not UTF-8");
        let problems = problems_json(&rejection);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0]["pointer"], "");
        assert_eq!(problems[0]["stage"], "decode");
    }

    #[test]
    fn a_receipt_that_is_not_an_object_gets_the_three_keys() {
        let receipt = kernelci_kcidb::client::Receipt {
            id: "x".into(),
            status: "ok".into(),
            message: "m".into(),
            reply: Value::String("text".into()),
        };
        assert_eq!(
            receipt_json(receipt),
            json!({"id": "x", "status": "ok", "message": "m"})
        );
    }
}
