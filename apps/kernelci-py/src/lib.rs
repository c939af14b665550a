//! `kernelci._native`: the Rust half of the `kernelci` Python package (see README.md).
//!
//! Thin: each function takes Python values, hands them to a pure crate (kernelci-kcidb,
//! kernelci-logspec, kernelci-model) with the GIL released where the work is long, and turns
//! the result into plain Python values. The public API, its documentation and the exception
//! classes live in the pure-Python package (`python/kernelci/`); the exceptions are raised
//! from here by importing `kernelci.errors`, so they are ordinary Python classes.
//!
//! Nothing here panics on input: every failure is a Python exception.

mod convert;
mod kcidb;
mod logspec;
mod model;

use pyo3::prelude::*;

/// The extension module, imported as `kernelci._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LOGSPEC_VERSION", kernelci_logspec::LOGSPEC_VERSION)?;
    m.add(
        "KCIDB_SCHEMA_VERSION",
        kernelci_kcidb::SchemaVersion::LATEST.to_string(),
    )?;
    m.add_function(wrap_pyfunction!(kcidb::kcidb_validate, m)?)?;
    m.add_function(wrap_pyfunction!(kcidb::kcidb_is_valid, m)?)?;
    m.add_function(wrap_pyfunction!(kcidb::kcidb_load, m)?)?;
    m.add_function(wrap_pyfunction!(kcidb::kcidb_upgrade, m)?)?;
    m.add_function(wrap_pyfunction!(kcidb::kcidb_submit, m)?)?;
    m.add_function(wrap_pyfunction!(kcidb::kcidb_status, m)?)?;
    m.add_function(wrap_pyfunction!(logspec::logspec_parse, m)?)?;
    m.add_function(wrap_pyfunction!(logspec::logspec_parsers, m)?)?;
    m.add_function(wrap_pyfunction!(model::model_validate_node, m)?)?;
    m.add_class::<model::Node>()?;
    Ok(())
}
