//! Pipeline configuration, scheduling rules, job templates and the `Runtime` trait.
//!
//! Reserved for the pipeline work. The crate exists now so that the workspace layout of
//! DESIGN.md §3 is fixed from the start; it has no public API yet.
