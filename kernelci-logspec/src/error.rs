//! The typed errors of the library.

/// Everything that can go wrong when parsing a log. Parsing itself never fails on any text:
/// only the parser name and reading the input can.
#[derive(Debug, thiserror::Error)]
pub enum LogspecError {
    /// The parser name is not one of upstream's parser definitions (upstream's message).
    #[error("Definition of parser {0} not found.")]
    UnknownParser(String),
    /// Upstream defines this parser, but its states are not documented well enough to be
    /// reproduced exactly, so it is not implemented.
    #[error("parser {0} not implemented")]
    ParserNotImplemented(String),
    /// Reading the log failed.
    #[error("cannot read the log: {0}")]
    Io(#[from] std::io::Error),
}
