//! LAVA job definitions and callback parsing.
//!
//! Reserved for the LAVA work. The crate exists now so that the workspace layout of
//! DESIGN.md §3 is fixed from the start; it has no public API yet.
