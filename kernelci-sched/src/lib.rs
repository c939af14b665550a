//! Pipeline configuration, scheduling rules, job templates and the `Runtime` trait.
//!
//! Pure: no async runtime, no network. The pipeline roles in `apps/kernelci-pipeline` feed
//! it events and nodes and act on what it decides.
//!
//! - [`yaml`] / [`config`]: the upstream kernelci-pipeline YAML (anchors, chained merge
//!   keys, a folder of files merged as kernelci-core does) into typed configuration.
//! - [`rules`]: `should_create_node` (tree/branch, versions, any field through ancestors).
//! - [`matching`]: event x configuration -> jobs to schedule (edge-triggered), jobfilter and
//!   platform_filter.
//! - [`template`]: job definitions rendered with minijinja.
//! - [`runtime`]: the `Runtime` trait and the shell runtime.

pub mod bisect;
pub mod config;
pub mod health;
pub mod matching;
pub mod rules;
pub mod runtime;
pub mod template;
pub mod yaml;
