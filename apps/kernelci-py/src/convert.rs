//! Python values <-> JSON: documents in (bytes, str or any `json.dumps`-able object), plain
//! Python objects out (dict, list, str, int, float, bool, None), and the package's own
//! exception classes.

use std::borrow::Cow;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyList, PyString};
use serde_json::Value;

/// A document's bytes, borrowed from a `bytes` object when possible.
pub enum Doc<'a> {
    /// Borrowed from an immutable `bytes` object (kept alive by the caller's reference).
    Borrowed(&'a [u8]),
    /// Copied: a `str`'s UTF-8, a `bytearray`, or the JSON text of another object.
    Owned(Vec<u8>),
}

impl Doc<'_> {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Doc::Borrowed(b) => b,
            Doc::Owned(v) => v,
        }
    }
}

/// The bytes of a document given as `bytes`, `bytearray`, `str` (UTF-8) or any other object,
/// which is serialized with `json.dumps` (so a dict is checked exactly as the JSON text
/// Python would send; `NaN` and lone surrogates stay visible to the strict parser).
pub fn doc_bytes<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Doc<'a>> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Doc::Borrowed(bytes.as_bytes()));
    }
    if let Ok(array) = obj.cast::<PyByteArray>() {
        return Ok(Doc::Owned(array.to_vec()));
    }
    if let Ok(text) = obj.cast::<PyString>() {
        return Ok(Doc::Owned(str_of(text)?.into_owned().into_bytes()));
    }
    let py = obj.py();
    let text = py
        .import("json")?
        .getattr("dumps")?
        .call1((obj,))
        .map_err(|e| {
            PyTypeError::new_err(format!(
                "expected bytes, str or a JSON-serializable object: {}",
                e.value(py)
            ))
        })?;
    let text = text.cast_into::<PyString>()?;
    Ok(Doc::Owned(str_of(&text)?.into_owned().into_bytes()))
}

/// A `str` as UTF-8. A lone surrogate (which UTF-8 cannot carry) is an error.
pub fn str_of<'a>(text: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, str>> {
    text.to_cow()
}

/// A log's text: `str` as is, `bytes`/`bytearray` as they are (decoded lossily later).
pub enum Text<'a> {
    /// Text.
    Str(Cow<'a, str>),
    /// Bytes.
    Bytes(Cow<'a, [u8]>),
}

/// A log given as `str`, `bytes` or `bytearray`.
pub fn text_of<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Text<'a>> {
    if let Ok(text) = obj.cast::<PyString>() {
        // A str with lone surrogates cannot be UTF-8: keep what can be read, like a file
        // opened with errors="replace".
        return Ok(match text.to_cow() {
            Ok(s) => Text::Str(s),
            Err(_) => Text::Str(Cow::Owned(text.to_string_lossy().into_owned())),
        });
    }
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Text::Bytes(Cow::Borrowed(bytes.as_bytes())));
    }
    if let Ok(array) = obj.cast::<PyByteArray>() {
        return Ok(Text::Bytes(Cow::Owned(array.to_vec())));
    }
    Err(PyTypeError::new_err(format!(
        "expected str or bytes, not {}",
        obj.get_type().name()?
    )))
}

/// A JSON value as plain Python objects, as `json.loads` would give them.
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Any serializable value as Python objects.
pub fn serialize_to_py<'py, T: serde::Serialize>(
    py: Python<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(value)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    to_py(py, &value)
}

/// An instance of the exception class `name` of `kernelci.errors`, built with `args`.
pub fn error<'py>(py: Python<'py>, name: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    let made = py
        .import("kernelci.errors")
        .and_then(|module| module.getattr(name))
        .and_then(|class| class.call1(args));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(err) => err,
    }
}
