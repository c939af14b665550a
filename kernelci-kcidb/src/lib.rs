//! KCIDB I/O types, validation, version upgrades and merge rules.
//!
//! Reserved for the KCIDB work (issue "KCIDB: schema crate, submission REST, validated
//! ingest"). The crate exists now so that the workspace layout of DESIGN.md §3 is fixed
//! from the start; it has no public API yet.
