//! logspec: parse a log, return upstream's result dict (kernelci-logspec).

use kernelci_logspec::{LogspecError, Options, Parser, parse_bytes, parse_str};
use pyo3::exceptions::{PyNotImplementedError, PyValueError};
use pyo3::prelude::*;

use crate::convert::{Text, text_of, to_py};

/// Parses a log with one of upstream's parsers; returns the dict `logspec.py -o json`
/// prints (with `full`: `--json-full`, the `_` keys included).
#[pyfunction]
#[pyo3(signature = (text, parser, *, full=false))]
pub fn logspec_parse<'py>(
    py: Python<'py>,
    text: &Bound<'py, PyAny>,
    parser: &str,
    full: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let parser = Parser::from_name(parser).map_err(|err| match err {
        LogspecError::ParserNotImplemented(_) => PyNotImplementedError::new_err(err.to_string()),
        _ => PyValueError::new_err(err.to_string()),
    })?;
    let text = text_of(text)?;
    let output = py.detach(|| {
        let result = match &text {
            Text::Str(s) => parse_str(s, parser),
            Text::Bytes(b) => parse_bytes(b, parser, &Options::default()),
        };
        if full {
            result.output_full()
        } else {
            result.output()
        }
    });
    to_py(py, &output)
}

/// The names of the implemented parsers.
#[pyfunction]
pub fn logspec_parsers() -> Vec<&'static str> {
    Parser::ALL.iter().map(|p| p.name()).collect()
}
