//! Node models (kernelci-model): a stored node, and request bodies checked as the API does.

use kernelci_model::{InputError, NodeInput, time};
use pyo3::exceptions::{PyAttributeError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyList;
use serde_json::Value;

use crate::convert::{doc_bytes, error, serialize_to_py, to_py};

/// A document given as bytes, str or a JSON-able object, parsed as JSON.
fn json_value(py: Python<'_>, doc: &Bound<'_, PyAny>) -> PyResult<Value> {
    let doc = doc_bytes(doc)?;
    serde_json::from_slice(doc.bytes()).map_err(|e| {
        error(
            py,
            "InvalidNode",
            (format!("not JSON: {e}"), 400u16, PyList::empty(py)),
        )
    })
}

/// `kernelci.errors.InvalidNode(message, status, errors)`: 422 with FastAPI's error list, or
/// 400 with the API's `detail` text.
fn invalid_node(py: Python<'_>, err: &InputError) -> PyErr {
    match err {
        InputError::Body(errors) => match serialize_to_py(py, errors) {
            Ok(list) => error(py, "InvalidNode", (err.to_string(), 422u16, list)),
            Err(e) => e,
        },
        InputError::Invalid(detail) => error(
            py,
            "InvalidNode",
            (detail.clone(), 400u16, PyList::empty(py)),
        ),
    }
}

/// The API's 422 `detail` list for a node body (POST/PUT), empty when the body has the
/// generic shape.
#[pyfunction]
pub fn model_validate_node<'py>(
    py: Python<'py>,
    body: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let body = json_value(py, body)?;
    match NodeInput::from_json(&body, time::now()) {
        Ok(_) | Err(InputError::Invalid(_)) => Ok(PyList::empty(py).into_any()),
        Err(InputError::Body(errors)) => serialize_to_py(py, &errors),
    }
}

/// A node: the 23 upstream keys, read as attributes (`node.name`, `node.state`, ...).
#[pyclass(frozen, module = "kernelci.model", name = "Node")]
pub struct Node {
    inner: kernelci_model::Node,
}

impl Node {
    fn value(&self) -> PyResult<Value> {
        serde_json::to_value(&self.inner).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
}

#[pymethods]
impl Node {
    /// A stored node as the API returns it (`GET /node/{id}`: all 23 keys).
    #[staticmethod]
    fn from_json(py: Python<'_>, doc: &Bound<'_, PyAny>) -> PyResult<Node> {
        let value = json_value(py, doc)?;
        match serde_json::from_value::<kernelci_model::Node>(value) {
            Ok(inner) => Ok(Node { inner }),
            Err(e) => Err(error(
                py,
                "InvalidNode",
                (format!("not a stored node: {e}"), 400u16, PyList::empty(py)),
            )),
        }
    }

    /// The node `POST /node` would store for this body, owned by `owner` (a fresh id,
    /// defaults applied, kind-specific `data` checked). Raises InvalidNode (422 or 400).
    #[staticmethod]
    fn create(py: Python<'_>, body: &Bound<'_, PyAny>, owner: &str) -> PyResult<Node> {
        let body = json_value(py, body)?;
        let now = time::now();
        NodeInput::from_json(&body, now)
            .and_then(|input| input.into_new_node(owner, now))
            .map(|inner| Node { inner })
            .map_err(|err| invalid_node(py, &err))
    }

    /// The node as a dict (the API's JSON).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.value()?)
    }

    /// The node as JSON text.
    fn to_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// Whether the state may go from this node's state to `state` (upstream's table).
    fn can_transition_to(&self, state: &str) -> bool {
        kernelci_model::State::parse(state).is_some_and(|s| self.inner.state.can_transition_to(s))
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let value = self.value()?;
        match value.get(name) {
            Some(item) => to_py(py, item),
            None => Err(PyAttributeError::new_err(format!(
                "'Node' object has no attribute '{name}'"
            ))),
        }
    }

    fn __dir__(&self) -> PyResult<Vec<String>> {
        let mut names: Vec<String> = match self.value()? {
            Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        names.extend(
            [
                "from_json",
                "create",
                "to_dict",
                "to_json",
                "can_transition_to",
            ]
            .map(String::from),
        );
        Ok(names)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Node>()
            .is_ok_and(|other| other.get().inner == self.inner)
    }

    fn __repr__(&self) -> String {
        format!(
            "Node(id={:?}, kind={:?}, name={:?}, state={:?})",
            self.inner.id.to_string(),
            self.inner.kind.as_str(),
            self.inner.name,
            self.inner.state.as_str()
        )
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let from_json = py.get_type::<Node>().getattr("from_json")?;
        Ok((from_json, (self.to_json()?,)))
    }
}
