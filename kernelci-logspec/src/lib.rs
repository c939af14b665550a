//! Log analysis: compiler errors, panics, BUG/WARNING and friends, with upstream-identical
//! signatures.
//!
//! Reserved for the logspec work. The crate exists now so that the workspace layout of
//! DESIGN.md §3 is fixed from the start; it has no public API yet and depends on nothing of
//! ours (an invariant in ARCHITECTURE.md).
