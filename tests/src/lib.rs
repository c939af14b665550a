//! Integration tests live in `tests/tests/`; see README "Tests".
